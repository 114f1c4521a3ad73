package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBeforeAuthHook(t *testing.T) {
	runBackends(t, []backendTest{
		{"Request", testHookRequest},
		{"Rejects", testHookRejects},
		{"AddsVarsAndUsername", testHookAddsVarsAndUsername},
		{"InvalidUsername", testHookInvalidUsername},
		{"Unavailable", testHookUnavailable},
	})
}

// hookCall is one request the fake game backend received.
type hookCall struct {
	header http.Header
	body   []byte
	req    struct {
		Provider string            `json:"provider"`
		ID       string            `json:"id"`
		Email    string            `json:"email"`
		Username string            `json:"username"`
		Create   bool              `json:"create"`
		Vars     map[string]string `json:"vars"`
		ClientIP string            `json:"client_ip"`
	}
}

// fakeHook is a game backend's before-auth endpoint that records calls and answers with
// respond (200 and no body when nil).
type fakeHook struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []hookCall
	respond func(w http.ResponseWriter, r *http.Request)
}

func newFakeHook(t *testing.T) *fakeHook {
	t.Helper()
	h := &fakeHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := hookCall{header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &c.req); err != nil {
			t.Errorf("hook received non-JSON body %q: %v", body, err)
		}
		h.mu.Lock()
		h.calls = append(h.calls, c)
		respond := h.respond
		h.mu.Unlock()
		if respond != nil {
			respond(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHook) setRespond(fn func(w http.ResponseWriter, r *http.Request)) {
	h.mu.Lock()
	h.respond = fn
	h.mu.Unlock()
}

func (h *fakeHook) takeCalls() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

// answer returns a responder writing status and body.
func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hookServer starts a node whose before-auth hook is h.
func hookServer(t *testing.T, b backend, h *fakeHook, mutate func(*hookConfig)) *testServer {
	t.Helper()
	cfg := testConfig()
	cfg.Auth.BeforeAuthURL = h.srv.URL + "/before-auth"
	hc := hookConfig{timeout: 2 * time.Second}
	if mutate != nil {
		mutate(&hc)
	}
	cfg.Auth.BeforeAuthTimeout = hc.timeout
	return startServer(t, cfg, b.stores(t))
}

type hookConfig struct{ timeout time.Duration }

func testHookRequest(t *testing.T, b backend) {
	h := newFakeHook(t)
	s := hookServer(t, b, h, nil)

	body, _ := json.Marshal(map[string]any{"id": "device-0123456789", "vars": map[string]string{"lang": "fr"}})
	mustSession(t, s.post(t, deviceRoute+"?username=hooked", string(body)))
	wantError(t, s.post(t, customRoute+"?create=false&", `{"id":"custom-123"}`), http.StatusNotFound, 5, "User account not found.")
	calls := h.takeCalls()
	if len(calls) != 2 {
		t.Fatalf("hook called %d times, want 2", len(calls))
	}
	c := calls[0]
	if got := c.header.Get("Authorization"); got != "Bearer "+testHTTPKey {
		t.Errorf("hook Authorization %q, want %q", got, "Bearer "+testHTTPKey)
	}
	if got := c.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("hook Content-Type %q, want application/json", got)
	}
	if c.req.Provider != "device" || c.req.ID != "device-0123456789" || c.req.Username != "hooked" || !c.req.Create {
		t.Errorf("hook request %+v, want provider device, the id, username hooked, create true", c.req)
	}
	if !maps.Equal(c.req.Vars, map[string]string{"lang": "fr"}) {
		t.Errorf("hook vars %v, want lang=fr", c.req.Vars)
	}
	if c.req.ClientIP != "127.0.0.1" {
		t.Errorf("hook client_ip %q, want 127.0.0.1", c.req.ClientIP)
	}
	if c := calls[1]; c.req.Provider != "custom" || c.req.ID != "custom-123" || c.req.Create {
		t.Errorf("hook request %+v, want provider custom, id custom-123, create false", c.req)
	}

	// Email: the hook sees the lowercased address and never the password.
	const pw = "my-secret-pass"
	mustSession(t, s.post(t, emailRoute+"?username=nameonly", `{"email":"Hook@Example.com","password":"`+pw+`"}`))
	mustSession(t, s.post(t, emailRoute+"?username=nameonly", `{"password":"`+pw+`"}`))
	calls = h.takeCalls()
	if len(calls) != 2 {
		t.Fatalf("hook called %d times for two email logins, want 2", len(calls))
	}
	if calls[0].req.Provider != "email" || calls[0].req.Email != "hook@example.com" || calls[0].req.Username != "nameonly" {
		t.Errorf("email hook request %+v, want provider email, email hook@example.com", calls[0].req)
	}
	if calls[1].req.Provider != "email" || calls[1].req.Username != "nameonly" || calls[1].req.Email != "" {
		t.Errorf("username-login hook request %+v", calls[1].req)
	}
	for _, c := range calls {
		if bytes.Contains(c.body, []byte(pw)) || bytes.Contains(bytes.ToLower(c.body), []byte("password")) {
			t.Errorf("hook body carries the password: %s", c.body)
		}
	}

	// Requests refused by validation never reach the hook.
	wantError(t, s.post(t, deviceRoute, `{"id":"short"}`), http.StatusBadRequest, 3, "Device ID invalid, must be 10-128 bytes.")
	wantError(t, s.do(t, http.MethodPost, deviceRoute, `{"id":"device-0123456789"}`), http.StatusUnauthorized, 16, "Server key required")
	if n := len(h.takeCalls()); n != 0 {
		t.Errorf("hook called %d times for invalid requests, want 0", n)
	}
}

func testHookRejects(t *testing.T, b backend) {
	h := newFakeHook(t)
	s := hookServer(t, b, h, nil)
	for _, tc := range []struct {
		status    int
		body, msg string
	}{
		{http.StatusForbidden, `{"message":"You are banned."}`, "You are banned."},
		{http.StatusBadRequest, `{"message":"Update your client."}`, "Update your client."},
		{http.StatusUnauthorized, "", "Authentication rejected."},
		{http.StatusNotFound, "not json", "Authentication rejected."},
		{http.StatusTooManyRequests, `{"message":""}`, "Authentication rejected."},
	} {
		h.setRespond(answer(tc.status, tc.body))
		wantError(t, s.post(t, deviceRoute, `{"id":"device-0123456789"}`), http.StatusForbidden, 7, tc.msg)
		wantError(t, s.post(t, emailRoute, `{"email":"player@example.com","password":"password1"}`), http.StatusForbidden, 7, tc.msg)
	}
	// The rejected logins created nothing.
	h.setRespond(nil)
	wantError(t, s.post(t, deviceRoute+"?create=false", `{"id":"device-0123456789"}`), http.StatusNotFound, 5, "User account not found.")
	wantError(t, s.post(t, emailRoute+"?create=false", `{"email":"player@example.com","password":"password1"}`), http.StatusNotFound, 5, "User account not found.")
	// An existing account is rejected too: the hook runs on every login.
	s.authDevice(t, "device-0123456789", "")
	h.setRespond(answer(http.StatusForbidden, `{"message":"Banned after creation."}`))
	wantError(t, s.post(t, deviceRoute, `{"id":"device-0123456789"}`), http.StatusForbidden, 7, "Banned after creation.")
}

func testHookAddsVarsAndUsername(t *testing.T, b backend) {
	h := newFakeHook(t)
	s := hookServer(t, b, h, nil)
	h.setRespond(answer(http.StatusOK, `{"vars":{"role":"admin","shared":"hook"},"username":"hookname","ignored":true}`))
	body, _ := json.Marshal(map[string]any{"id": "device-0123456789", "vars": map[string]string{"shared": "client", "mine": "1"}})
	sess := mustSession(t, s.post(t, deviceRoute+"?username=asked", string(body)))
	want := map[string]string{"role": "admin", "shared": "hook", "mine": "1"}
	c := tokenClaims(t, sess.Token)
	if !maps.Equal(c.Vars, want) {
		t.Errorf("vrs %v, want %v (hook wins on shared keys)", c.Vars, want)
	}
	if rc := tokenClaims(t, sess.RefreshToken); !maps.Equal(rc.Vars, want) {
		t.Errorf("refresh vrs %v, want %v", rc.Vars, want)
	}
	if c.Username != "hookname" {
		t.Errorf("usn %q, want the hook's hookname", c.Username)
	}
	acct, _ := s.getAccount(t, sess.Token)
	if acct.User.Username != "hookname" {
		t.Errorf("account username %q, want hookname", acct.User.Username)
	}
	// Refresh with {} keeps the hook's vars.
	if rc := tokenClaims(t, mustSession(t, s.refresh(t, sess.RefreshToken, map[string]string{})).Token); !maps.Equal(rc.Vars, want) {
		t.Errorf("vrs after refresh %v, want %v", rc.Vars, want)
	}
	// Hook vars alone, without client vars.
	h.setRespond(answer(http.StatusOK, `{"vars":{"only":"hook"}}`))
	sess = mustSession(t, s.post(t, customRoute, `{"id":"custom-123"}`))
	if got := tokenClaims(t, sess.Token).Vars; !maps.Equal(got, map[string]string{"only": "hook"}) {
		t.Errorf("vrs %v, want only=hook", got)
	}
	// A hook username that is taken is a conflict, as a requested one would be.
	h.setRespond(answer(http.StatusOK, `{"username":"hookname"}`))
	wantError(t, s.post(t, deviceRoute, `{"id":"device-another-one"}`), http.StatusConflict, 6, "Username is already in use.")
	// An empty 2xx answer, or one without fields, changes nothing.
	for _, respond := range []func(http.ResponseWriter, *http.Request){answer(http.StatusOK, ""), answer(http.StatusNoContent, ""), answer(http.StatusOK, "{}"), answer(http.StatusOK, "  \n")} {
		h.setRespond(respond)
		body, _ := json.Marshal(map[string]any{"id": "device-plain-client", "vars": map[string]string{"k": "v"}})
		sess := mustSession(t, s.post(t, deviceRoute+"?username=plain", string(body)))
		if c := tokenClaims(t, sess.Token); !maps.Equal(c.Vars, map[string]string{"k": "v"}) || c.Username != "plain" {
			t.Errorf("pass-through hook changed claims: %+v", c)
		}
	}
}

func testHookInvalidUsername(t *testing.T, b backend) {
	h := newFakeHook(t)
	s := hookServer(t, b, h, nil)
	for _, u := range []string{`bad\nname`, strings.Repeat("u", 129)} {
		h.setRespond(answer(http.StatusOK, `{"username":"`+u+`"}`))
		wantError(t, s.post(t, deviceRoute, `{"id":"device-0123456789"}`), http.StatusInternalServerError, 13,
			"Authentication hook returned an invalid username.")
	}
}

func testHookUnavailable(t *testing.T, b backend) {
	const msg = "Authentication hook unavailable."
	h := newFakeHook(t)
	s := hookServer(t, b, h, func(c *hookConfig) { c.timeout = 300 * time.Millisecond })
	for name, respond := range map[string]func(http.ResponseWriter, *http.Request){
		"500":          answer(http.StatusInternalServerError, `{"message":"boom"}`),
		"502":          answer(http.StatusBadGateway, ""),
		"503":          answer(http.StatusServiceUnavailable, ""),
		"bad JSON 200": answer(http.StatusOK, `{"vars":`),
		"wrong types":  answer(http.StatusOK, `{"vars":{"a":1}}`),
		"timeout": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
	} {
		h.setRespond(respond)
		start := time.Now()
		r := s.post(t, deviceRoute, `{"id":"device-0123456789"}`)
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503; body %s", name, r.status, r.body)
		}
		wantError(t, r, http.StatusServiceUnavailable, 14, msg)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v; the hook timeout is 300ms", name, d)
		}
	}
	// The hook failing closed created nothing.
	h.setRespond(nil)
	wantError(t, s.post(t, deviceRoute+"?create=false", `{"id":"device-0123456789"}`), http.StatusNotFound, 5, "User account not found.")

	// A hook that is down.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	cfg := testConfig()
	cfg.Auth.BeforeAuthURL = down.URL
	s2 := startServer(t, cfg, b.stores(t))
	wantError(t, s2.post(t, deviceRoute, `{"id":"device-0123456789"}`), http.StatusServiceUnavailable, 14, msg)
	wantError(t, s2.post(t, emailRoute, `{"email":"player@example.com","password":"password1"}`), http.StatusServiceUnavailable, 14, msg)
}
