package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
)

// backend is one storage implementation the HTTP suite runs against.
type backend struct {
	name string
	// stores returns fresh stores that share nothing with other tests.
	stores func(t *testing.T) gateway.Stores
	// killable, when set, returns stores on a store server of this test's own, with functions
	// that kill it and bring it back; backends that cannot fail (memory) leave it nil.
	killable func(t *testing.T) (stores gateway.Stores, kill, restart func())
}

// backendKind opens a backend once per top-level test; the Redis one starts its server there.
type backendKind struct {
	name string
	open func(t *testing.T) backend
}

// backendKinds lists every backend; backend_redis_test.go adds Redis.
var backendKinds = []backendKind{{name: "memory", open: func(*testing.T) backend {
	return backend{name: "memory", stores: func(*testing.T) gateway.Stores {
		return gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()}
	}}
}}}

// backendTest is one case of the HTTP suite; it runs once per backend.
type backendTest struct {
	name string
	fn   func(t *testing.T, b backend)
}

// runBackends runs every test of tests against every backend, in parallel within a backend.
func runBackends(t *testing.T, tests []backendTest) {
	t.Helper()
	for _, kind := range backendKinds {
		t.Run(kind.name, func(t *testing.T) {
			b := kind.open(t)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, b)
				})
			}
		})
	}
}

// Keys of the test configuration; tests that forge tokens sign with them.
const (
	testServerKey  = "test-server-key"
	testHTTPKey    = "test-http-key"
	testSessionKey = "test-session-encryption-key"
	testRefreshKey = "test-refresh-encryption-key"
	testExpiry     = 2 * time.Minute
	testRefreshExp = 3 * time.Hour
)

// testConfig is a node configuration with distinct, non-default keys and expiries, and the
// cheapest bcrypt cost so that password tests stay fast.
func testConfig() gateway.Config {
	return gateway.Config{
		ServerKey: testServerKey,
		HTTPKey:   testHTTPKey,
		// Short, so that a test stopping its server with sockets open does not wait 10s.
		DrainPeriod: 100 * time.Millisecond,
		Auth: auth.Config{
			EncryptionKey:        testSessionKey,
			RefreshEncryptionKey: testRefreshKey,
			TokenExpiry:          testExpiry,
			RefreshTokenExpiry:   testRefreshExp,
			BcryptCost:           4,
		},
	}
}

// testServer is one gateway node serving on loopback for the duration of a test.
type testServer struct {
	srv        *gateway.Server
	cfg        gateway.Config
	url        string // scheme://127.0.0.1:port of the API
	metricsURL string
	client     *http.Client
	cancel     context.CancelFunc
	done       chan error
}

// startServer runs a node with cfg over stores on fresh loopback listeners, waits until it is
// ready, and stops it (checking that Run returns nil promptly) when the test ends.
func startServer(t *testing.T, cfg gateway.Config, stores gateway.Stores) *testServer {
	t.Helper()
	return startServerTLS(t, cfg, stores, nil)
}

// startServerTLS is startServer for a node with TLS configured; clientTLS is the client's
// configuration (nil for plain HTTP).
func startServerTLS(t *testing.T, cfg gateway.Config, stores gateway.Stores, clientTLS *tls.Config) *testServer {
	t.Helper()
	srv, err := gateway.New(cfg, zerolog.Nop(), stores)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	apiLn, err := gateway.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		apiLn.Close()
		t.Fatal(err)
	}
	scheme := "http"
	if clientTLS != nil {
		scheme = "https"
	}
	transport := &http.Transport{TLSClientConfig: clientTLS, DisableCompression: true}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{
		srv:        srv,
		cfg:        srv.Config(),
		url:        scheme + "://" + apiLn.Addr().String(),
		metricsURL: "http://" + metricsLn.Addr().String(),
		client:     &http.Client{Transport: transport, Timeout: 20 * time.Second},
		cancel:     cancel,
		done:       make(chan error, 1),
	}
	go func() { s.done <- srv.Run(ctx, apiLn, metricsLn) }()
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := s.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	s.waitReady(t)
	return s
}

// stop cancels Run and waits for it, failing if it does not return within 5s.
func (s *testServer) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // later stops see the same result
		return err
	case <-time.After(5 * time.Second):
		return errors.New("did not return within 5s of cancel")
	}
}

// waitReady polls /readyz until it answers 200, for at most 5s.
func (s *testServer) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "/readyz to answer 200", func() bool {
		return s.tryStatus("/readyz") == http.StatusOK
	})
}

// tryStatus returns the status of GET path, or 0 when the request fails.
func (s *testServer) tryStatus(path string) int {
	resp, err := s.client.Get(s.url + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond every 20ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// response is a completed HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends method path with body (none when empty) and headers given as name, value pairs.
func (s *testServer) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, s.client, req, headers...)
}

// send sets headers (name, value pairs) on req, sends it with client and reads the answer.
func send(t *testing.T, client *http.Client, req *http.Request, headers ...string) response {
	t.Helper()
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// basicAuth is the Authorization header value carrying a server key, as the SDKs send it.
func basicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

func bearer(token string) string { return "Bearer " + token }

// post sends a POST authorised with the test server key.
func (s *testServer) post(t *testing.T, path, body string) response {
	t.Helper()
	return s.do(t, http.MethodPost, path, body, "Authorization", basicAuth(s.cfg.ServerKey))
}

// session is the JSON of a successful authenticate or refresh.
type session struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
	Created      *bool  `json:"created"`
	raw          []byte
}

// mustSession checks that r is a 200 token pair and decodes it.
func mustSession(t *testing.T, r response) session {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var s session
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("decoding session %s: %v", r.body, err)
	}
	if s.Token == "" || s.RefreshToken == "" {
		t.Fatalf("session without tokens: %s", r.body)
	}
	s.raw = r.body
	return s
}

// wantCreated checks the created field: true when a new account was made, omitted otherwise.
func wantCreated(t *testing.T, s session, created bool) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.raw, &m); err != nil {
		t.Fatal(err)
	}
	v, present := m["created"]
	switch {
	case created && (!present || v != true):
		t.Errorf("created = %v (present %v), want true; body %s", v, present, s.raw)
	case !created && present:
		t.Errorf("created present (%v) for an existing account, want it omitted; body %s", v, s.raw)
	}
}

// authDevice authenticates a device id (creating it by default) and returns the pair.
func (s *testServer) authDevice(t *testing.T, id, query string) session {
	t.Helper()
	return mustSession(t, s.post(t, "/v2/account/authenticate/device"+query, `{"id":`+jsonString(id)+`}`))
}

// authEmail authenticates an email and password and returns the pair.
func (s *testServer) authEmail(t *testing.T, email, password, query string) session {
	t.Helper()
	return mustSession(t, s.post(t, "/v2/account/authenticate/email"+query,
		`{"email":`+jsonString(email)+`,"password":`+jsonString(password)+`}`))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// apiError is Nakama's error body.
type apiError struct {
	Code    *int    `json:"code"`
	Message *string `json:"message"`
}

// wantError checks that r is Nakama's error shape with exactly this status, code and message,
// and, for a 401, the WWW-Authenticate header gRPC gateways set.
func wantError(t *testing.T, r response, status, code int, message string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Code == nil || *e.Code != code {
		t.Errorf("code %v, want %d; body %s", e.Code, code, r.body)
	}
	if e.Message == nil || *e.Message != message {
		t.Errorf("message %q, want %q", r.body, message)
	}
	if status == http.StatusUnauthorized {
		if got := r.header.Get("WWW-Authenticate"); got != message {
			t.Errorf("WWW-Authenticate %q, want %q", got, message)
		}
	}
}

// wantErrorPrefix is wantError for messages that end with a parser's detail.
func wantErrorPrefix(t *testing.T, r response, status, code int, prefix string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Code == nil || *e.Code != code {
		t.Errorf("code %v, want %d; body %s", e.Code, code, r.body)
	}
	if e.Message == nil || !strings.HasPrefix(*e.Message, prefix) {
		t.Errorf("message %q, want prefix %q", r.body, prefix)
	}
}

// claims are a token's JWT payload as clients decode it.
type claims struct {
	TokenID   string            `json:"tid"`
	UserID    string            `json:"uid"`
	Username  string            `json:"usn"`
	Vars      map[string]string `json:"vrs"`
	ExpiresAt int64             `json:"exp"`
	IssuedAt  int64             `json:"iat"`
}

// decodeJWT returns a token's header and payload without verifying it, as an SDK does.
func decodeJWT(t *testing.T, token string) (header map[string]any, c claims) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts, want 3", token, len(parts))
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatalf("token header: %v", err)
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	if err := json.Unmarshal(p, &c); err != nil {
		t.Fatalf("token payload %s: %v", p, err)
	}
	return header, c
}

// tokenClaims is decodeJWT's payload alone.
func tokenClaims(t *testing.T, token string) claims {
	t.Helper()
	_, c := decodeJWT(t, token)
	return c
}

// account is the JSON of GET /v2/account, as far as the tests read it.
type account struct {
	User struct {
		ID         string `json:"id"`
		Username   string `json:"username"`
		CreateTime string `json:"create_time"`
		UpdateTime string `json:"update_time"`
	} `json:"user"`
	Devices []struct {
		ID string `json:"id"`
	} `json:"devices"`
	CustomID string `json:"custom_id"`
	Email    string `json:"email"`
}

// getAccount fetches the caller's account, requiring 200.
func (s *testServer) getAccount(t *testing.T, token string) (account, []byte) {
	t.Helper()
	r := s.do(t, http.MethodGet, "/v2/account", "", "Authorization", bearer(token))
	if r.status != http.StatusOK {
		t.Fatalf("GET /v2/account: status %d, want 200; body %s", r.status, r.body)
	}
	var a account
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("decoding account %s: %v", r.body, err)
	}
	return a, r.body
}

// refresh calls the refresh route with the test server key.
func (s *testServer) refresh(t *testing.T, refreshToken string, vars map[string]string) response {
	t.Helper()
	body := map[string]any{"token": refreshToken}
	if vars != nil {
		body["vars"] = vars
	}
	b, _ := json.Marshal(body)
	return s.post(t, "/v2/account/session/refresh", string(b))
}

// logout calls the logout route as the holder of bearerToken.
func (s *testServer) logout(t *testing.T, bearerToken, token, refreshToken string) response {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"token": token, "refresh_token": refreshToken})
	return s.do(t, http.MethodPost, "/v2/session/logout", string(b), "Authorization", bearer(bearerToken))
}

// query escapes a query value.
func query(v string) string { return url.QueryEscape(v) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
