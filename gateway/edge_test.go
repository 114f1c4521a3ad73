package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
)

func TestEdge(t *testing.T) {
	runBackends(t, []backendTest{
		{"CORSDefault", testCORSDefault},
		{"CORSConfigured", testCORSConfigured},
		{"Routing", testRouting},
		{"Health", testHealth},
		{"ReadyzFollowsStores", testReadyzFollowsStores},
		{"Metrics", testMetrics},
		{"TLS", testTLS},
		{"GracefulShutdown", testGracefulShutdown},
		{"ShutdownTimeout", testShutdownTimeout},
	})
}

func preflight(t *testing.T, s *testServer, path, origin string) response {
	t.Helper()
	return s.do(t, http.MethodOptions, path, "",
		"Origin", origin,
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type")
}

func wantPreflightHeaders(t *testing.T, r response, origin string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Errorf("preflight status %d, want 200; body %s", r.status, r.body)
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
	methods := r.header.Get("Access-Control-Allow-Methods")
	for _, m := range []string{"GET", "POST"} {
		if !strings.Contains(methods, m) {
			t.Errorf("Access-Control-Allow-Methods %q lacks %s", methods, m)
		}
	}
	headers := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type"} {
		if !strings.Contains(headers, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", headers, h)
		}
	}
}

func testCORSDefault(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, path := range []string{deviceRoute, emailRoute, refreshRoute, logoutRoute, accountRoute, deviceRoute + "?create=true&"} {
		wantPreflightHeaders(t, preflight(t, s, path, "https://game.example"), "*")
	}
	// Actual requests carry the header too, on success and on error.
	r := s.do(t, http.MethodPost, deviceRoute, `{"id":"device-0123456789"}`, "Authorization", basicAuth(testServerKey), "Origin", "http://localhost:8080")
	mustSession(t, r)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin on 200: %q, want *", got)
	}
	r = s.do(t, http.MethodPost, deviceRoute, `{"id":"device-0123456789"}`, "Origin", "http://localhost:8080")
	wantError(t, r, http.StatusUnauthorized, 16, "Server key required")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin on 401: %q, want *", got)
	}
	// Without Origin there is nothing to say.
	r = s.post(t, deviceRoute, `{"id":"device-0123456789"}`)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin without Origin: %q", got)
	}
}

func testCORSConfigured(t *testing.T, b backend) {
	cfg := testConfig()
	cfg.CORSOrigins = []string{"https://game.example", "http://localhost:8080/"}
	s := startServer(t, cfg, b.stores(t))
	for _, origin := range []string{"https://game.example", "http://localhost:8080"} {
		r := preflight(t, s, deviceRoute, origin)
		wantPreflightHeaders(t, r, origin)
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Errorf("%s: Vary %q lacks Origin", origin, r.header.Values("Vary"))
		}
		r = s.do(t, http.MethodPost, deviceRoute, `{"id":"device-0123456789"}`, "Authorization", basicAuth(testServerKey), "Origin", origin)
		mustSession(t, r)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
		}
	}
	for _, origin := range []string{"https://evil.example", "https://game.example.evil", "http://game.example", "null", "*"} {
		r := preflight(t, s, deviceRoute, origin)
		wantError(t, r, http.StatusForbidden, 7, "Origin not allowed.")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: preflight Access-Control-Allow-Origin %q, want none", origin, got)
		}
		r = s.do(t, http.MethodPost, deviceRoute, `{"id":"device-0123456789"}`, "Authorization", basicAuth(testServerKey), "Origin", origin)
		wantError(t, r, http.StatusForbidden, 7, "Origin not allowed.")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want none", origin, got)
		}
	}
	// Clients that are not browsers send no Origin and are served.
	mustSession(t, s.post(t, deviceRoute, `{"id":"device-0123456789"}`))
}

func testRouting(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, path := range []string{"/v2/nope", "/v2/account/authenticate/facebook", "/v2/account/authenticate/device/extra", "/v2", "/metrics", "/V2/account"} {
		wantError(t, s.do(t, http.MethodPost, path, "{}", "Authorization", basicAuth(testServerKey)), http.StatusNotFound, 5, "Not Found")
		wantError(t, s.do(t, http.MethodGet, path, ""), http.StatusNotFound, 5, "Not Found")
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, deviceRoute},
		{http.MethodPut, deviceRoute},
		{http.MethodGet, customRoute},
		{http.MethodDelete, emailRoute},
		{http.MethodGet, refreshRoute},
		{http.MethodGet, logoutRoute},
		{http.MethodPost, accountRoute},
		{http.MethodPut, accountRoute},
		{http.MethodDelete, accountRoute},
		{http.MethodPost, "/healthz"},
		{http.MethodPost, "/readyz"},
		{http.MethodOptions, deviceRoute}, // OPTIONS without Origin is not a preflight
	} {
		wantError(t, s.do(t, tc.method, tc.path, ""), http.StatusNotImplemented, 12, "Method Not Allowed")
	}
	// Nakama's docs spell some paths with a trailing slash; both work.
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"/", `{"id":"device-0123456789"}`)), true)
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"/?create=false", `{"id":"device-0123456789"}`)), false)
	if r := s.do(t, http.MethodGet, "/", ""); r.status != http.StatusOK {
		t.Errorf("GET /: %d, want 200", r.status)
	}
	// API responses are not cacheable.
	r := s.post(t, deviceRoute, `{"id":"device-0123456789"}`)
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

func testHealth(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, path := range []string{"/healthz", "/readyz"} {
		r := s.do(t, http.MethodGet, path, "")
		if r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
			t.Errorf("GET %s: %d %s, want 200 {\"status\":\"ok\"}", path, r.status, r.body)
		}
		if r := s.do(t, http.MethodHead, path, ""); r.status != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, r.status)
		}
	}
	// Health checks need no key.
	if r := s.do(t, http.MethodGet, "/healthz", "", "Authorization", "Bearer nonsense"); r.status != http.StatusOK {
		t.Errorf("/healthz with a bad token: %d", r.status)
	}
}

// testReadyzFollowsStores kills the store server under a running node: /readyz turns 503 while
// /healthz stays 200, and it turns back to 200 once the store is back.
func testReadyzFollowsStores(t *testing.T, b backend) {
	if b.killable == nil {
		t.Skipf("the %s backend cannot fail", b.name)
	}
	stores, kill, restart := b.killable(t)
	s := startServer(t, testConfig(), stores)
	sess := s.authDevice(t, "device-0123456789", "")

	kill()
	waitFor(t, 10*time.Second, "/readyz to answer 503 with the store down", func() bool {
		return s.tryStatus("/readyz") == http.StatusServiceUnavailable
	})
	r := s.do(t, http.MethodGet, "/readyz", "")
	if !strings.Contains(string(r.body), `"status":"unavailable"`) {
		t.Errorf("/readyz body %s, want status unavailable and a reason", r.body)
	}
	if got := s.tryStatus("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz with the store down: %d, want 200", got)
	}
	// Requests that need the store fail as internal errors; token checks do not need it.
	wantError(t, s.post(t, deviceRoute, `{"id":"device-0123456789"}`), http.StatusInternalServerError, 13, "Error finding user account.")
	if r := s.do(t, http.MethodPost, logoutRoute, `{}`, "Authorization", bearer(sess.Token)); r.status != http.StatusInternalServerError {
		t.Errorf("logout with the store down: %d %s, want 500", r.status, r.body)
	}

	restart()
	waitFor(t, 15*time.Second, "/readyz to answer 200 after the store came back", func() bool {
		return s.tryStatus("/readyz") == http.StatusOK
	})
	// The node serves again. (The test server keeps no data across the restart.)
	s.authDevice(t, "device-0123456789", "")
	// The node watches revocations again: a logout made now is enforced.
	fresh := s.authDevice(t, "device-0123456789", "")
	wantLoggedOut(t, s.logout(t, fresh.Token, fresh.Token, fresh.RefreshToken))
	wantRevoked(t, s, fresh, "after store restart")
}

func testMetrics(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	s.authDevice(t, "device-0123456789", "")
	s.authDevice(t, "device-0123456789", "")
	wantError(t, s.post(t, deviceRoute+"?create=false", `{"id":"device-unknown-1"}`), http.StatusNotFound, 5, "User account not found.")
	s.authEmail(t, "metrics@example.com", "password1", "")
	wantError(t, s.post(t, emailRoute, `{"email":"metrics@example.com","password":"wrongpass"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, s.do(t, http.MethodGet, "/v2/random-path-xyz", ""), http.StatusNotFound, 5, "Not Found")
	wantError(t, s.do(t, http.MethodGet, deviceRoute, ""), http.StatusNotImplemented, 12, "Method Not Allowed")
	preflight(t, s, deviceRoute, "https://game.example")

	resp, err := s.client.Get(s.metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	text := string(body)
	for _, line := range []string{
		`sessiongate_http_requests_total{code="200",route="/v2/account/authenticate/device"} 2`,
		`sessiongate_http_requests_total{code="404",route="/v2/account/authenticate/device"} 1`,
		`sessiongate_http_requests_total{code="200",route="/v2/account/authenticate/email"} 1`,
		`sessiongate_http_requests_total{code="401",route="/v2/account/authenticate/email"} 1`,
		`sessiongate_http_requests_total{code="404",route="unmatched"} 1`,
		`sessiongate_http_requests_total{code="501",route="bad_method"} 1`,
		`sessiongate_http_requests_total{code="200",route="preflight"} 1`,
		`sessiongate_http_request_duration_seconds_count{route="/v2/account/authenticate/device"} 3`,
		`sessiongate_auth_outcomes_total{outcome="created",provider="device"} 1`,
		`sessiongate_auth_outcomes_total{outcome="existing",provider="device"} 1`,
		`sessiongate_auth_outcomes_total{outcome="not_found",provider="device"} 1`,
		`sessiongate_auth_outcomes_total{outcome="created",provider="email"} 1`,
		`sessiongate_auth_outcomes_total{outcome="invalid_credentials",provider="email"} 1`,
	} {
		if !containsLine(text, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	// Unknown paths do not become labels.
	if strings.Contains(text, "random-path-xyz") {
		t.Error("/metrics has a label for an unknown path")
	}
	// Runtime metrics are there for the load tool.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The API port does not serve metrics.
	wantError(t, s.do(t, http.MethodGet, "/metrics", ""), http.StatusNotFound, 5, "Not Found")
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir and returns their
// paths and a pool trusting the certificate.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sessiongate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func testTLS(t *testing.T, b backend) {
	certFile, keyFile, pool := selfSignedCert(t, t.TempDir())
	cfg := testConfig()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	s := startServerTLS(t, cfg, b.stores(t), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("server url %s", s.url)
	}
	sess := s.authDevice(t, "device-0123456789", "")
	s.getAccount(t, sess.Token)
	// The connection really is TLS, verified against the test certificate.
	resp, err := s.client.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || !resp.TLS.HandshakeComplete {
		t.Error("response not over a completed TLS handshake")
	}
	// Plain HTTP on the TLS port is refused.
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer plain.CloseIdleConnections()
	if resp, err := plain.Get("http://" + strings.TrimPrefix(s.url, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}

// testGracefulShutdown cancels Run while a request is in flight: the request completes, Run
// returns nil once it has, and the port stops accepting connections.
func testGracefulShutdown(t *testing.T, b backend) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	entered := make(chan struct{}, 1)
	h := newFakeHook(t)
	h.setRespond(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer releaseOnce.Do(func() { close(release) })
	cfg := testConfig()
	cfg.Auth.BeforeAuthURL = h.srv.URL
	cfg.Auth.BeforeAuthTimeout = 10 * time.Second
	s := startServer(t, cfg, b.stores(t))
	addr := strings.TrimPrefix(s.url, "http://")

	inflight := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.url+deviceRoute, strings.NewReader(`{"id":"device-0123456789"}`))
		req.Header.Set("Authorization", basicAuth(testServerKey))
		resp, err := s.client.Do(req)
		if err != nil {
			inflight <- response{status: -1, body: []byte(err.Error())}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- response{status: resp.StatusCode, body: body}
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the hook")
	}
	s.cancel()
	// Run waits for the request in flight.
	select {
	case err := <-s.done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The listener is closed: new connections are refused.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts connections during shutdown")
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case r := <-inflight:
		if r.status != http.StatusOK {
			t.Errorf("in-flight request: %d %s, want 200", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run returned %v after the last request, want promptly", d)
	}
}

// testShutdownTimeout: a request that outlives ShutdownTimeout is cut off and Run still
// returns nil, bounded by the timeout.
func testShutdownTimeout(t *testing.T, b backend) {
	entered := make(chan struct{}, 1)
	h := newFakeHook(t)
	h.setRespond(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	cfg := testConfig()
	cfg.Auth.BeforeAuthURL = h.srv.URL
	cfg.Auth.BeforeAuthTimeout = 3 * time.Second
	cfg.ShutdownTimeout = 200 * time.Millisecond
	s := startServer(t, cfg, b.stores(t))
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.url+deviceRoute, strings.NewReader(`{"id":"device-0123456789"}`))
		req.Header.Set("Authorization", basicAuth(testServerKey))
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the hook")
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to return with ShutdownTimeout 200ms", d)
	}
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("cut-off request never finished")
	}
}

// TestRunIdleStop: Run returns nil promptly after cancel with idle keep-alive connections
// open, without a metrics listener.
func TestRunIdleStop(t *testing.T) {
	srv, err := gateway.New(testConfig(), zerolog.Nop(), gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, nil) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for range 3 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
}

// TestRunServeError: a node that cannot serve (an unreadable TLS certificate) makes Run return
// the error instead of hanging.
func TestRunServeError(t *testing.T) {
	cfg := testConfig()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(t.TempDir(), "missing-cert.pem"), filepath.Join(t.TempDir(), "missing-key.pem")
	srv, err := gateway.New(cfg, zerolog.Nop(), gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background(), ln, nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "missing-cert.pem") {
			t.Errorf("Run: %v, want an error naming the certificate", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return with an unusable certificate")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	stores := gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()}
	for name, tc := range map[string]struct {
		mutate func(*gateway.Config, *gateway.Stores)
		want   string
	}{
		"same keys":           {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.RefreshEncryptionKey = c.Auth.EncryptionKey }, "must differ"},
		"no encryption key":   {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.EncryptionKey = "" }, "encryption key is required"},
		"no refresh key":      {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.RefreshEncryptionKey = "" }, "refresh encryption key is required"},
		"cert without key":    {func(c *gateway.Config, _ *gateway.Stores) { c.TLSCert = "cert.pem" }, "TLS needs both"},
		"key without cert":    {func(c *gateway.Config, _ *gateway.Stores) { c.TLSKey = "key.pem" }, "TLS needs both"},
		"negative body cap":   {func(c *gateway.Config, _ *gateway.Stores) { c.MaxRequestBytes = -1 }, "max request bytes"},
		"negative expiry":     {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.TokenExpiry = -time.Second }, "expiries must be positive"},
		"bcrypt cost 3":       {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.BcryptCost = 3 }, "bcrypt cost"},
		"bcrypt cost 32":      {func(c *gateway.Config, _ *gateway.Stores) { c.Auth.BcryptCost = 32 }, "bcrypt cost"},
		"no account store":    {func(_ *gateway.Config, s *gateway.Stores) { s.Accounts = nil }, "both stores are required"},
		"no revocation store": {func(_ *gateway.Config, s *gateway.Stores) { s.Revocations = nil }, "both stores are required"},
	} {
		cfg, st := testConfig(), stores
		tc.mutate(&cfg, &st)
		_, err := gateway.New(cfg, zerolog.Nop(), st)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want one containing %q", name, err, tc.want)
		}
	}
	// The documented defaults apply to a zero config with keys.
	srv, err := gateway.New(gateway.Config{Auth: auth.Config{EncryptionKey: "a", RefreshEncryptionKey: "b"}}, zerolog.Nop(), stores)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Config()
	if c.Addr != ":7350" || c.ServerKey != "defaultkey" || c.HTTPKey != "defaulthttpkey" || c.MaxRequestBytes != 262144 ||
		len(c.CORSOrigins) != 1 || c.CORSOrigins[0] != "*" || c.ShutdownTimeout != 10*time.Second ||
		c.Auth.TokenExpiry != time.Minute || c.Auth.RefreshTokenExpiry != time.Hour || c.Auth.BcryptCost != 10 ||
		c.Auth.LoginFailuresPerAccount != 5 || c.Auth.LoginFailuresPerIP != 20 || c.Auth.BeforeAuthTimeout != 2*time.Second || c.Auth.BeforeAuthKey != "defaulthttpkey" {
		t.Errorf("defaults %+v", c)
	}
}

// The API listener has no TCP keepalive, so a client that vanishes in the middle of a request
// is dropped by RequestReadTimeout; an upgraded socket is not bound by it.
func TestRequestReadTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.RequestReadTimeout = 300 * time.Millisecond
	s := startServer(t, cfg, gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	sess := s.authDevice(t, "device-read-timeout", "")
	ws := s.mustSocket(t, sess.Token)

	nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Headers and the first byte of a 100-byte body, then nothing: a peer gone mid-request.
	start := time.Now()
	if _, err := io.WriteString(nc, "POST /v2/account/authenticate/device HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(nc); err != nil { // an answer, if any, then the end of the stream
		t.Fatalf("the stalled request's connection was not closed by the server: %v", err)
	}
	if d := time.Since(start); d < cfg.RequestReadTimeout || d > 3*time.Second {
		t.Fatalf("the stalled request's connection ended after %v, want about %v", d, cfg.RequestReadTimeout)
	}

	time.Sleep(2 * cfg.RequestReadTimeout) // the socket outlives the request read bound
	wantPong(t, ws, "after-read-timeout")
}
