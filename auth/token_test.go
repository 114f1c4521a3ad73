package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const testTokenKey = "token-test-key"

func testClaims(now time.Time) *Claims {
	return &Claims{TokenID: uuid.NewString(), UserID: uuid.NewString(), Username: "player",
		Vars: map[string]string{"k": "v"}, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()}
}

func TestSignerRoundTrip(t *testing.T) {
	s := newSigner(testTokenKey, time.Minute)
	now := time.Now()
	for name, c := range map[string]*Claims{
		"plain":        testClaims(now),
		"no vars":      {TokenID: uuid.NewString(), UserID: uuid.NewString(), Username: "p", IssuedAt: now.Unix(), ExpiresAt: now.Unix() + 60},
		"escapes":      {TokenID: "t", UserID: uuid.NewString(), Username: "quote\"back\\slash\nnew", Vars: map[string]string{"a\"b": "c\u0001d", "é": "ü"}, IssuedAt: now.Unix(), ExpiresAt: now.Unix() + 60},
		"upper uuid":   {TokenID: "t", UserID: strings.ToUpper(uuid.NewString()), IssuedAt: now.Unix(), ExpiresAt: now.Unix() + 60},
		"empty values": {TokenID: "t", UserID: uuid.NewString(), Vars: map[string]string{"": ""}, IssuedAt: now.Unix(), ExpiresAt: now.Unix() + 60},
	} {
		tok, err := s.sign(c)
		if err != nil {
			t.Fatalf("%s: sign: %v", name, err)
		}
		got, err := s.verify(tok, now)
		if err != nil {
			t.Fatalf("%s: verify: %v", name, err)
		}
		if got.TokenID != c.TokenID || got.UserID != c.UserID || got.Username != c.Username ||
			got.IssuedAt != c.IssuedAt || got.ExpiresAt != c.ExpiresAt || !maps.Equal(got.Vars, c.Vars) {
			t.Errorf("%s: verified %+v, signed %+v", name, got, c)
		}
	}
}

// TestClaimsWireNames pins the claim names Nakama's SDKs read from the token.
func TestClaimsWireNames(t *testing.T) {
	b, err := json.Marshal(&Claims{TokenID: "t", UserID: "u", Username: "n", Vars: map[string]string{"a": "b"}, ExpiresAt: 2, IssuedAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tid":"t","uid":"u","usn":"n","vrs":{"a":"b"},"exp":2,"iat":1}`; string(b) != want {
		t.Errorf("claims JSON %s, want %s", b, want)
	}
	b, _ = json.Marshal(&Claims{TokenID: "t", UserID: "u", ExpiresAt: 2, IssuedAt: 1})
	if strings.Contains(string(b), "vrs") {
		t.Errorf("empty vars are not omitted: %s", b)
	}
	// The header is the standard HS256 one.
	tok, _ := newSigner(testTokenKey, time.Minute).sign(testClaims(time.Now()))
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var header map[string]string
	if err := json.Unmarshal(h, &header); err != nil || header["alg"] != "HS256" || header["typ"] != "JWT" || len(header) != 2 {
		t.Errorf("header %s (%v), want alg HS256 typ JWT", h, err)
	}
}

func TestSignerExpiry(t *testing.T) {
	s := newSigner(testTokenKey, time.Minute)
	base := time.Unix(1_800_000_000, 0)
	c := testClaims(base)
	tok, _ := s.sign(c)
	if _, err := s.verify(tok, base.Add(59*time.Second)); err != nil {
		t.Errorf("a second before exp: %v", err)
	}
	if _, err := s.verify(tok, base.Add(60*time.Second)); err == nil {
		t.Error("at exp: accepted, want expired")
	}
	if _, err := s.verify(tok, base.Add(time.Hour)); err == nil {
		t.Error("an hour after exp: accepted")
	}
}

func TestSignerRejects(t *testing.T) {
	s := newSigner(testTokenKey, time.Minute)
	now := time.Now()
	key := []byte(testTokenKey)
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"tid": uuid.NewString(), "uid": uuid.NewString(), "usn": "p", "exp": now.Unix() + 60, "iat": now.Unix()}
	}
	with := func(k string, v any) jwt.MapClaims { m := valid(); m[k] = v; return m }
	without := func(k string) jwt.MapClaims { m := valid(); delete(m, k); return m }
	sign := func(m jwt.SigningMethod, k any, c jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			t.Fatalf("signing %s: %v", m.Alg(), err)
		}
		return tok
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := s.sign(testClaims(now))
	parts := strings.Split(good, ".")

	// The harness signs acceptable tokens.
	if _, err := s.verify(sign(jwt.SigningMethodHS256, key, valid()), now); err != nil {
		t.Fatalf("HS256 MapClaims token refused: %v", err)
	}
	for name, tok := range map[string]string{
		"alg none":             sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid()),
		"HS384":                sign(jwt.SigningMethodHS384, key, valid()),
		"HS512":                sign(jwt.SigningMethodHS512, key, valid()),
		"ES256":                sign(jwt.SigningMethodES256, ecKey, valid()),
		"wrong key":            sign(jwt.SigningMethodHS256, []byte("other-key"), valid()),
		"expired":              sign(jwt.SigningMethodHS256, key, with("exp", now.Unix()-1)),
		"exp now":              sign(jwt.SigningMethodHS256, key, with("exp", now.Unix())),
		"no exp":               sign(jwt.SigningMethodHS256, key, without("exp")),
		"exp 0":                sign(jwt.SigningMethodHS256, key, with("exp", 0)),
		"exp negative":         sign(jwt.SigningMethodHS256, key, with("exp", -5)),
		"exp string":           sign(jwt.SigningMethodHS256, key, with("exp", "never")),
		"no tid":               sign(jwt.SigningMethodHS256, key, without("tid")),
		"empty tid":            sign(jwt.SigningMethodHS256, key, with("tid", "")),
		"no uid":               sign(jwt.SigningMethodHS256, key, without("uid")),
		"uid not a uuid":       sign(jwt.SigningMethodHS256, key, with("uid", "0123456789abcdef0123456789abcdef0123")),
		"uid without dashes":   sign(jwt.SigningMethodHS256, key, with("uid", strings.ReplaceAll(uuid.NewString(), "-", ""))),
		"vars not strings":     sign(jwt.SigningMethodHS256, key, with("vrs", map[string]any{"a": 1})),
		"tampered payload":     parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tid":"x","uid":"`+uuid.NewString()+`","exp":9999999999,"iat":1}`)) + "." + parts[2],
		"tampered header":      base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		"signature truncated":  good[:len(good)-1],
		"signature extended":   good + "A",
		"signature missing":    parts[0] + "." + parts[1] + ".",
		"signature of another": parts[0] + "." + parts[1] + "." + strings.Split(sign(jwt.SigningMethodHS256, key, valid()), ".")[2],
		"two parts":            parts[0] + "." + parts[1],
		"four parts":           good + ".x",
		"empty":                "",
		"garbage":              "garbage",
		"dots":                 "..",
	} {
		if c, err := s.verify(tok, now); err == nil {
			t.Errorf("%s: accepted with claims %+v", name, c)
		}
	}
}

func TestValidUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"123e4567-e89b-12d3-a456-426614174000":  true,
		"123E4567-E89B-12D3-A456-426614174000":  true,
		"123e4567e89b12d3a456426614174000":      false,
		"123e4567-e89b-12d3-a456-42661417400":   false,
		"123e4567-e89b-12d3-a456-4266141740000": false,
		"123e4567-e89b-12d3-a456_426614174000":  false,
		"g23e4567-e89b-12d3-a456-426614174000":  false,
		"{23e4567-e89b-12d3-a456-42661417400}":  false,
		"":                                      false,
	} {
		if got := validUUID(s); got != want {
			t.Errorf("validUUID(%q) = %v, want %v", s, got, want)
		}
	}
	if !validUUID(uuid.NewString()) {
		t.Error("uuid.NewString() not valid")
	}
}
