package auth

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// benchService is a Service over memory stores with one user's token pair, for benchmarks of
// the token hot paths.
func benchService(b *testing.B) (*Service, *Session) {
	b.Helper()
	s, err := NewService(Config{EncryptionKey: "bench-session-key", RefreshEncryptionKey: "bench-refresh-key", BcryptCost: 4},
		NewMemoryAccounts(), NewMemoryRevocations())
	if err != nil {
		b.Fatal(err)
	}
	sess, err := s.Authenticate(context.Background(), AuthRequest{Provider: ProviderDevice, ID: "bench-device-0001", Create: true,
		Vars: map[string]string{"region": "eu", "tier": "gold"}})
	if err != nil {
		b.Fatal(err)
	}
	// A few thousand revocations in force, so the lookup is measured against a populated cache.
	for i := 0; i < 4096; i++ {
		s.cache.apply(Revocation{Kind: RevokeSession, ID: "tid-" + itoaBench(i), Before: 1, Until: 1 << 40})
	}
	return s, sess
}

func itoaBench(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

// BenchmarkVerifySession is the per-request cost of checking a session token: signature,
// expiry, claims and the revocation cache. It touches no store.
func BenchmarkVerifySession(b *testing.B) {
	s, sess := benchService(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.VerifySession(sess.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySessionParallel runs the same check on every core at once, showing that the
// revocation cache's read locks do not serialise verifiers.
func BenchmarkVerifySessionParallel(b *testing.B) {
	s, sess := benchService(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.VerifySession(sess.Token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssuePair is the cost of signing a session and refresh token pair.
func BenchmarkIssuePair(b *testing.B) {
	s, sess := benchService(b)
	vars := map[string]string{"region": "eu", "tier": "gold"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.issue(sess.UserID, sess.Username, vars, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySessionGolangJWT is the baseline: the same check through golang-jwt's general
// parser (the fallback path), to show what the fast path saves.
func BenchmarkVerifySessionGolangJWT(b *testing.B) {
	s, sess := benchService(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c := new(Claims)
		if _, err := s.session.parser.ParseWithClaims(sess.Token, c, func(*jwt.Token) (any, error) { return s.session.key, nil }); err != nil {
			b.Fatal(err)
		}
		if s.cache.revoked(RevokeSession, c.TokenID, c.UserID, c.IssuedAt) {
			b.Fatal("revoked")
		}
	}
}
