package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
)

// BenchmarkAuthenticateDeviceHandler measures the gateway's own cost of authenticating an
// existing device (routing, server key, JSON in and out, account lookup, two signatures) on the
// embedded store, without the network: the part of the wrk figure that is ours to optimise.
func BenchmarkAuthenticateDeviceHandler(b *testing.B) {
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "bench-key", RefreshEncryptionKey: "bench-refresh-key", BcryptCost: 4}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		b.Fatal(err)
	}
	const body = `{"id":"bench-device-000001","vars":{"region":"eu"}}`
	do := func() int {
		req := httptest.NewRequest(http.MethodPost, "/v2/account/authenticate/device?create=true&", strings.NewReader(body))
		req.Header.Set("Authorization", "Basic ZGVmYXVsdGtleTo=")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		_, _ = io.Copy(io.Discard, w.Body)
		return w.Code
	}
	if code := do(); code != http.StatusOK {
		b.Fatalf("first authenticate: %d", code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := do(); code != http.StatusOK {
				b.Errorf("authenticate: %d", code)
				return
			}
		}
	})
}
