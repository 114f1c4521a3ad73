package auth

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzParseClaims checks that the fast claims decoder never disagrees with encoding/json:
// whenever it accepts a payload, it must produce exactly what json.Unmarshal produces.
func FuzzParseClaims(f *testing.F) {
	for _, seed := range []string{
		`{"tid":"t","uid":"u","usn":"n","vrs":{"a":"b"},"exp":10,"iat":5}`,
		`{"tid":"t","uid":"u","usn":"n","exp":10,"iat":5}`,
		`{"vrs":null,"exp":1}`,
		`{"vrs":{},"exp":-1}`,
		`{}`,
		`{"usn":"é"}`,
		`{"usn":"a\"b"}`,
		`{"exp":1.5}`,
		`{"nbf":1}`,
		`{"tid":"t",}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Claims
		if !parseClaims(b, &fast) {
			return
		}
		var slow Claims
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast decoder accepted %q that encoding/json rejects: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("decoders disagree on %q:\nfast %+v\nslow %+v", b, fast, slow)
		}
	})
}

// TestVerifyFastMatchesGeneralParser signs tokens in several shapes and checks the fast path
// and golang-jwt agree on acceptance and claims.
func TestVerifyFastMatchesGeneralParser(t *testing.T) {
	s := newSigner("fast-path-key", time.Minute)
	now := time.Now()
	exp := now.Add(time.Minute).Unix()
	cases := []struct {
		name   string
		claims jwt.Claims
		method jwt.SigningMethod
		key    any
		ok     bool
	}{
		{"ours", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", Username: "ann", Vars: map[string]string{"k": "v"}, ExpiresAt: exp, IssuedAt: now.Unix()}, jwt.SigningMethodHS256, []byte("fast-path-key"), true},
		{"escaped username", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", Username: `a"<b>`, ExpiresAt: exp}, jwt.SigningMethodHS256, []byte("fast-path-key"), true},
		{"expired", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", ExpiresAt: now.Add(-time.Second).Unix()}, jwt.SigningMethodHS256, []byte("fast-path-key"), false},
		{"no exp", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10"}, jwt.SigningMethodHS256, []byte("fast-path-key"), false},
		{"wrong key", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", ExpiresAt: exp}, jwt.SigningMethodHS256, []byte("other-key"), false},
		{"HS512", &Claims{TokenID: "t1", UserID: "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", ExpiresAt: exp}, jwt.SigningMethodHS512, []byte("fast-path-key"), false},
		// Nakama's claims type has no nbf either: only the key holder can mint one, and it is ignored.
		{"nbf ignored", jwt.MapClaims{"tid": "t1", "uid": "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", "exp": exp, "nbf": exp}, jwt.SigningMethodHS256, []byte("fast-path-key"), true},
		{"float exp", jwt.MapClaims{"tid": "t1", "uid": "0b6c2c4e-6f57-4c0e-9d68-1a6c5a3a5e10", "exp": float64(exp) + 0.5}, jwt.SigningMethodHS256, []byte("fast-path-key"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := jwt.NewWithClaims(tc.method, tc.claims).SignedString(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.verify(tok, now)
			if (err == nil) != tc.ok {
				t.Fatalf("verify: err=%v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			want, ok := tc.claims.(*Claims)
			if ok && !reflect.DeepEqual(c, want) {
				t.Fatalf("claims %+v, want %+v", c, want)
			}
		})
	}
}
