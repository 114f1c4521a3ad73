package gateway_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

const (
	testConsoleUser     = "operator"
	testConsolePassword = "console-test-password"
)

func consoleConfig() gateway.Config {
	cfg := testConfig()
	cfg.ConsoleUsername = testConsoleUser
	cfg.ConsolePassword = testConsolePassword
	return cfg
}

// consoleClient is a browser of the console: a cookie jar, and the CSRF token of its login.
type consoleClient struct {
	s      *testServer
	client *http.Client
	csrf   string
}

func newConsoleClient(t *testing.T, s *testServer) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := s.client.Transport.(*http.Transport).Clone() // the server's TLS trust, if any
	t.Cleanup(tr.CloseIdleConnections)
	return &consoleClient{s: s, client: &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}}
}

// do sends a console API request; headers are name, value pairs. A POST carries the client's
// CSRF token unless headers set X-CSRF-Token themselves.
func (c *consoleClient) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	return send(t, c.client, req, headers...)
}

func (c *consoleClient) login(t *testing.T, user, password string, headers ...string) response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	r := c.do(t, http.MethodPost, "/console/api/login", string(body), headers...)
	if r.status == http.StatusOK {
		var me struct {
			CSRFToken string `json:"csrf_token"`
		}
		decodeInto(t, r, &me)
		c.csrf = me.CSRFToken
	}
	return r
}

func (c *consoleClient) mustLogin(t *testing.T) {
	t.Helper()
	if r := c.login(t, testConsoleUser, testConsolePassword); r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
}

// sessionCookie returns the console cookie a response set, failing without one.
func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, line := range r.header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == "sessiongate_console" {
			return ck
		}
	}
	t.Fatalf("no console cookie in %v", r.header.Values("Set-Cookie"))
	return nil
}

// TestConsoleCookieSecureOverTLS: over TLS the cookie is also Secure.
func TestConsoleCookieSecureOverTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t, t.TempDir())
	cfg := consoleConfig()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	s := startServerTLS(t, cfg, memStores(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	c := newConsoleClient(t, s)
	r := c.login(t, testConsoleUser, testConsolePassword)
	if ck := sessionCookie(t, r); !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS %+v, want Secure, HttpOnly, SameSite=Strict", ck)
	}
	if r := c.do(t, http.MethodGet, "/console/api/me", ""); r.status != 200 {
		t.Errorf("me over TLS: %d %s", r.status, r.body)
	}
}

func TestConsolePasswordTooShort(t *testing.T) {
	cfg := consoleConfig()
	cfg.ConsolePassword = "short"
	if _, err := gateway.New(cfg, zerolog.Nop(), memStores()); err == nil || !strings.Contains(err.Error(), "console password must be at least 8 bytes") {
		t.Errorf("a 5-byte console password: %v", err)
	}
}

func TestConsoleDisabledWithoutPassword(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	for _, p := range []string{"/console", "/console/app.js", "/console/api/me"} {
		wantError(t, s.do(t, http.MethodGet, p, ""), 404, 5, "Not Found")
	}
}

// TestConsolePage serves the page and its modules, embedded, with a strict CSP; unknown
// assets and paths climbing out of the folder are 404.
func TestConsolePage(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	for path, ctype := range map[string]string{
		"/console": "text/html", "/console/": "text/html", "/console/app.js": "text/javascript",
		"/console/api.js": "text/javascript", "/console/chart.js": "text/javascript", "/console/style.css": "text/css",
	} {
		r := s.do(t, http.MethodGet, path, "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ctype) || len(r.body) == 0 {
			t.Errorf("%s: %d %q, %d bytes", path, r.status, r.header.Get("Content-Type"), len(r.body))
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	for _, path := range []string{"/console/nope.js", "/console/..%2fconsole.go", "/console/%2e%2e"} {
		if r := s.do(t, http.MethodGet, path, ""); r.status != 404 {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
}

// TestConsoleLogin: wrong credentials are refused without a cookie; the right ones set an
// HttpOnly, SameSite=Strict cookie scoped to /console; the session reads /me; logout needs the
// CSRF token, deletes the cookie and ends the session.
func TestConsoleLogin(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	c := newConsoleClient(t, s)
	wantError(t, c.do(t, http.MethodGet, "/console/api/me", ""), 401, 16, "Console login required.")
	for _, creds := range [][2]string{{testConsoleUser, "wrong"}, {"admin", testConsolePassword}, {"", ""}} {
		r := c.login(t, creds[0], creds[1])
		wantError(t, r, 401, 16, "Invalid credentials.")
		if len(r.header.Values("Set-Cookie")) != 0 {
			t.Errorf("failed login set %v", r.header.Values("Set-Cookie"))
		}
	}
	wantError(t, c.do(t, http.MethodPost, "/console/api/login", "{not json"), 400, 3, "Invalid request body.")

	r := c.login(t, testConsoleUser, testConsolePassword)
	if r.status != 200 || c.csrf == "" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	ck := sessionCookie(t, r)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" || ck.Secure || ck.MaxAge <= 0 || len(ck.Value) < 40 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console, not Secure over HTTP, a max age, a long value", ck)
	}
	if strings.Contains(string(r.body), ck.Value) {
		t.Error("the login body holds the session cookie's value")
	}
	var me struct {
		Username, Node string
		CSRFToken      string `json:"csrf_token"`
	}
	decodeInto(t, c.do(t, http.MethodGet, "/console/api/me", ""), &me)
	if me.Username != testConsoleUser || me.CSRFToken != c.csrf || me.Node != s.cfg.NodeID {
		t.Errorf("me %+v", me)
	}

	// A second browser's login is a session of its own.
	other := newConsoleClient(t, s)
	other.mustLogin(t)
	if other.csrf == c.csrf {
		t.Error("two logins share a CSRF token")
	}

	wantError(t, c.do(t, http.MethodPost, "/console/api/logout", "{}", "X-CSRF-Token", ""), 403, 7, "Missing or invalid CSRF token.")
	r = c.do(t, http.MethodPost, "/console/api/logout", "{}")
	if r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if ck := sessionCookie(t, r); ck.MaxAge >= 0 || ck.Value != "" {
		t.Errorf("logout cookie %+v, want it deleted", ck)
	}
	wantError(t, c.do(t, http.MethodGet, "/console/api/me", ""), 401, 16, "Console login required.")
	if r := other.do(t, http.MethodGet, "/console/api/me", ""); r.status != 200 {
		t.Errorf("the other session ended with this one: %d", r.status)
	}
}

// TestConsoleWithCORSOrigins: a node that allows only its game's origins still serves its
// own console (same-origin requests carry an Origin but are not CORS), and still refuses
// other origins.
func TestConsoleWithCORSOrigins(t *testing.T) {
	cfg := consoleConfig()
	cfg.CORSOrigins = []string{"https://game.example"}
	s := startServer(t, cfg, memStores())
	c := newConsoleClient(t, s)
	if r := c.login(t, testConsoleUser, testConsolePassword, "Origin", s.url); r.status != 200 {
		t.Fatalf("same-origin login: %d %s", r.status, r.body)
	}
	if r := c.do(t, http.MethodPost, "/console/api/logout", "{}", "Origin", s.url); r.status != 200 {
		t.Errorf("same-origin logout: %d %s", r.status, r.body)
	}
	wantError(t, c.login(t, testConsoleUser, testConsolePassword, "Origin", "https://other.example"), 403, 7, "Origin not allowed.")
}

// TestConsoleLoginRateLimit: after 5 failed logins within a minute an IP is refused with 429
// even with the right password; other IPs are not.
func TestConsoleLoginRateLimit(t *testing.T) {
	cfg := consoleConfig()
	cfg.TrustForwardedFor = true // so that the test can speak from several IPs
	s := startServer(t, cfg, memStores())
	c := newConsoleClient(t, s)
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := range 5 {
		if r := c.login(t, testConsoleUser, "wrong", from("192.0.2.1")...); r.status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.status, r.body)
		}
	}
	wantError(t, c.login(t, testConsoleUser, testConsolePassword, from("192.0.2.1")...), 429, 8, "Too many failed logins, try again later.")
	r := c.login(t, testConsoleUser, testConsolePassword, from("192.0.2.2")...)
	if r.status != 200 {
		t.Errorf("another IP: %d %s", r.status, r.body)
	}
	if sessionCookie(t, r).Secure {
		t.Error("cookie Secure over plain HTTP without X-Forwarded-Proto")
	}
	// Behind a trusted proxy that terminates TLS, the cookie is Secure.
	r = c.login(t, testConsoleUser, testConsolePassword, "X-Forwarded-For", "192.0.2.4", "X-Forwarded-Proto", "https")
	if !sessionCookie(t, r).Secure {
		t.Error("cookie not Secure behind a TLS proxy")
	}
	// A success resets nothing for the blocked IP, and four failures elsewhere stay allowed.
	for range 4 {
		c.login(t, testConsoleUser, "wrong", from("192.0.2.3")...)
	}
	if r := c.login(t, testConsoleUser, testConsolePassword, from("192.0.2.3")...); r.status != 200 {
		t.Errorf("after 4 failures: %d %s", r.status, r.body)
	}
}

// otherFirst returns token with its first character changed (a random token may start with any).
func otherFirst(token string) string {
	if token[0] == 'x' {
		return "y" + token[1:]
	}
	return "x" + token[1:]
}

// TestConsoleCSRF: an action needs a session, its own CSRF token (not another session's) and
// a same-origin Origin when one is sent; nothing happens to the socket until all hold.
func TestConsoleCSRF(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	user := newClusterUser(t, s, "device-console-csrf")
	conn := s.mustSocket(t, user.token)
	sid := waitSession(t, s, user.id)
	path := "/console/api/sessions/" + sid + "/disconnect"

	anon := newConsoleClient(t, s)
	wantError(t, anon.do(t, http.MethodPost, path, "{}"), 401, 16, "Console login required.")
	c := newConsoleClient(t, s)
	c.mustLogin(t)
	other := newConsoleClient(t, s)
	other.mustLogin(t)
	for name, h := range map[string][]string{
		"no token":              {"X-CSRF-Token", ""},
		"wrong token":           {"X-CSRF-Token", otherFirst(c.csrf)},
		"other session's token": {"X-CSRF-Token", other.csrf},
	} {
		if r := c.do(t, http.MethodPost, path, "{}", h...); r.status != 403 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	wantError(t, c.do(t, http.MethodPost, path, "{}", "Origin", "https://evil.example"), 403, 7, "Cross-origin console request refused.")
	wantError(t, c.login(t, testConsoleUser, testConsolePassword, "Origin", "https://evil.example"), 403, 7, "Cross-origin console request refused.")
	if n := len(sessionsOf(t, s, user.id)); n != 1 {
		t.Fatalf("the socket is gone after refused actions: %d sessions", n)
	}
	if r := c.do(t, http.MethodPost, path, `{"reason":"bye"}`, "Origin", s.url); r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	wantClose(t, conn, 4000, "bye")
}

// sessionsOf lists the user's sessions through the server API.
func sessionsOf(t *testing.T, s *testServer, userID string) []map[string]any {
	t.Helper()
	var body struct {
		Sessions []map[string]any `json:"sessions"`
	}
	decodeInto(t, s.serverCall(t, http.MethodGet, "/v2/server/users/"+userID+"/sessions", ""), &body)
	return body.Sessions
}

// waitSession waits for the user's one socket to be listed and returns its session id.
func waitSession(t *testing.T, s *testServer, userID string) string {
	t.Helper()
	var sid string
	waitFor(t, 5*time.Second, "the socket listed", func() bool {
		ss := sessionsOf(t, s, userID)
		if len(ss) == 1 {
			sid, _ = ss[0]["session_id"].(string)
		}
		return sid != ""
	})
	return sid
}

type consoleUsers struct {
	Users []struct {
		Account struct {
			ID           string   `json:"id"`
			Username     string   `json:"username"`
			DeviceIDs    []string `json:"device_ids"`
			PasswordHash string   `json:"password_hash"`
		} `json:"account"`
		Sessions []struct {
			SessionID string `json:"session_id"`
			Node      string `json:"node"`
		} `json:"sessions"`
		SessionsError string `json:"sessions_error"`
	} `json:"users"`
}

// TestConsoleUsersAndActions: the search finds a user by each identity with their live
// socket; the user-wide disconnect closes it, the logout revokes the user's tokens; an empty or
// unknown query is an empty list; bad ids get the server API's errors.
func TestConsoleUsersAndActions(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	c := newConsoleClient(t, s)
	c.mustLogin(t)
	sess := s.authEmail(t, "console.user@example.com", "console password", "?username=consoleuser")
	id := tokenClaims(t, sess.Token).UserID
	conn := s.mustSocket(t, sess.Token)
	sid := waitSession(t, s, id)
	for _, q := range []string{id, "consoleuser", "CONSOLE.USER@example.com"} {
		var got consoleUsers
		decodeInto(t, c.do(t, http.MethodGet, "/console/api/users?q="+query(q), ""), &got)
		if len(got.Users) != 1 || got.Users[0].Account.ID != id || got.Users[0].Account.PasswordHash != "" {
			t.Fatalf("q=%q: %+v", q, got)
		}
		if ss := got.Users[0].Sessions; len(ss) != 1 || ss[0].SessionID != sid || ss[0].Node != s.cfg.NodeID {
			t.Errorf("q=%q: sessions %+v", q, ss)
		}
	}
	for _, q := range []string{"", "nobody-at-all"} {
		if r := c.do(t, http.MethodGet, "/console/api/users?q="+query(q), ""); r.status != 200 || string(r.body) != `{"users":[]}` {
			t.Errorf("q=%q: %d %s", q, r.status, r.body)
		}
	}
	wantError(t, c.do(t, http.MethodPost, "/console/api/users/not-a-uuid/disconnect", "{}"), 400, 3, "Invalid user identifier.")
	wantError(t, c.do(t, http.MethodPost, "/console/api/sessions/00000000-0000-4000-8000-000000000000/disconnect", "{}"), 404, 5, "Session not found.")

	if r := c.do(t, http.MethodPost, "/console/api/users/"+id+"/logout", "{}"); r.status != 200 {
		t.Fatalf("logout user: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/v2/account", "", "Authorization", bearer(sess.Token)); r.status != 401 {
		t.Errorf("token after the console's logout: %d", r.status)
	}
	if r := c.do(t, http.MethodPost, "/console/api/users/"+id+"/disconnect", "{}"); r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect user: %d %s", r.status, r.body)
	}
	wantClose(t, conn, websocket.StatusCode(4000), "")
}

type consoleOverview struct {
	Node  string `json:"node"`
	Mode  string `json:"mode"`
	BusUp bool   `json:"bus_up"`
	Redis *struct {
		Up    bool   `json:"up"`
		Error string `json:"error"`
	} `json:"redis"`
	Nodes []struct {
		Node           string `json:"node"`
		HeartbeatAgeMS int64  `json:"heartbeat_age_ms"`
		Self           bool   `json:"self"`
		Stats          *struct {
			Sockets     int `json:"sockets"`
			Connects    int `json:"connects"`
			Disconnects int `json:"disconnects"`
		} `json:"stats"`
	} `json:"nodes"`
}

// TestConsoleOverviewEmbedded: one node, no Redis, its live figures.
func TestConsoleOverviewEmbedded(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	c := newConsoleClient(t, s)
	c.mustLogin(t)
	var o consoleOverview
	decodeInto(t, c.do(t, http.MethodGet, "/console/api/overview", ""), &o)
	if o.Mode != "embedded" || o.Redis != nil || !o.BusUp || len(o.Nodes) != 1 || !o.Nodes[0].Self || o.Nodes[0].Stats == nil || o.Nodes[0].Stats.Sockets != 0 {
		t.Fatalf("overview %+v", o)
	}
	user := newClusterUser(t, s, "device-console-overview")
	conn := s.mustSocket(t, user.token)
	waitSession(t, s, user.id)
	_ = conn.Close(websocket.StatusNormalClosure, "")
	s.mustSocket(t, user.token)
	waitFor(t, 5*time.Second, "1 socket, 2 connects, 1 disconnect", func() bool {
		decodeInto(t, c.do(t, http.MethodGet, "/console/api/overview", ""), &o)
		st := o.Nodes[0].Stats
		return st != nil && st.Sockets == 1 && st.Connects == 2 && st.Disconnects == 1
	})
}

// TestConsoleCluster: on Redis, the overview of any node lists every node with its live
// sockets and Redis up; the search on one node finds the socket held by another, and its
// disconnect there closes it; a login holds on every node and a logout through any ends it;
// with Redis stopped the overview still answers, saying so.
func TestConsoleCluster(t *testing.T) {
	srv := redisproc.ForTest(t)
	nodes := startNodes(t, singleRedis(srv.Addr()), 2, func(cfg *gateway.Config) {
		cfg.ConsoleUsername, cfg.ConsolePassword = testConsoleUser, testConsolePassword
	})
	a, b := nodes[0], nodes[1]
	user := newClusterUser(t, b, "device-console-cluster")
	conn := b.mustSocket(t, user.token)
	sid := waitSession(t, a, user.id)

	c := newConsoleClient(t, a)
	c.mustLogin(t)
	var o consoleOverview
	decodeInto(t, c.do(t, http.MethodGet, "/console/api/overview", ""), &o)
	if o.Mode != "cluster" || o.Redis == nil || !o.Redis.Up || len(o.Nodes) != 2 {
		t.Fatalf("overview %+v", o)
	}
	for _, n := range o.Nodes {
		want := 0
		if n.Node == b.cfg.NodeID {
			want = 1
		}
		if n.Stats == nil || n.Stats.Sockets != want || n.Self != (n.Node == a.cfg.NodeID) {
			t.Errorf("node %+v, want %d sockets", n, want)
		}
	}
	var got consoleUsers
	decodeInto(t, c.do(t, http.MethodGet, "/console/api/users?q=device-console-cluster", ""), &got)
	if len(got.Users) != 1 || len(got.Users[0].Sessions) != 1 || got.Users[0].Sessions[0].Node != b.cfg.NodeID {
		t.Fatalf("search %+v", got)
	}
	if r := c.do(t, http.MethodPost, "/console/api/sessions/"+sid+"/disconnect", "{}"); r.status != 200 {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	wantClose(t, conn, 4000, "disconnected by server")

	// The login made through a holds on b (console sessions are in Redis), and a logout
	// through b ends it on a too. The cookie carries no port, so the jar sends it to both.
	u, _ := url.Parse(a.url + "/console")
	var token string
	for _, ck := range c.client.Jar.Cookies(u) {
		if ck.Name == "sessiongate_console" {
			token = ck.Value
		}
	}
	cb := &consoleClient{s: b, client: c.client, csrf: c.csrf}
	var me struct {
		Node string `json:"node"`
	}
	if decodeInto(t, cb.do(t, http.MethodGet, "/console/api/me", ""), &me); me.Node != b.cfg.NodeID {
		t.Fatalf("me through b: %+v", me)
	}
	if r := cb.do(t, http.MethodPost, "/console/api/logout", "{}"); r.status != 200 {
		t.Fatalf("logout through b: %d %s", r.status, r.body)
	}
	if r := c.do(t, http.MethodGet, "/console/api/me", "", "Cookie", "sessiongate_console="+token); r.status != 401 {
		t.Fatalf("the login after its logout through b, on a: %d %s", r.status, r.body)
	}
	c.mustLogin(t)

	// With Redis stopped, a still honours the login it issued: the console serves the outage.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	r := c.do(t, http.MethodGet, "/console/api/overview", "")
	decodeInto(t, r, &o)
	if o.Redis == nil || o.Redis.Up || o.Redis.Error == "" {
		t.Errorf("overview with Redis stopped: %s", r.body)
	}
}

// TestConsoleGameAndPlaySessions: a user's open game sessions and active play session appear in
// the search, and the console's close closes a game session as the server API does: gone on
// every route, and the user's socket notified with reason closed_by_server.
func TestConsoleGameAndPlaySessions(t *testing.T) {
	s := startServer(t, consoleConfig(), memStores())
	c := newConsoleClient(t, s)
	c.mustLogin(t)
	sess := s.authDevice(t, "device-console-games", "")
	id := tokenClaims(t, sess.Token).UserID
	type found struct {
		Users []struct {
			GameSessions []gameSession `json:"game_sessions"`
			PlaySession  *struct {
				ExpiresAt string `json:"expires_at"`
			} `json:"play_session"`
			PlayError string `json:"play_error"`
		} `json:"users"`
	}
	search := func() found {
		t.Helper()
		var got found
		decodeInto(t, c.do(t, http.MethodGet, "/console/api/users?q="+query(id), ""), &got)
		if len(got.Users) != 1 || got.Users[0].PlayError != "" {
			t.Fatalf("search: %+v", got)
		}
		return got
	}
	if got := search(); len(got.Users[0].GameSessions) != 0 || got.Users[0].PlaySession != nil {
		t.Fatalf("a new user has sessions: %+v", got)
	}

	g := mustGame(t, s.asUser(t, sess.Token, "POST", "/v2/game-sessions", createBody("slots", "EUR", "console-ext-1")))
	if r := s.do(t, http.MethodPost, "/api/games/sessions/initiate", `{"auth_token":"`+sess.Token+`"}`); r.status != 200 {
		t.Fatalf("initiate: %d %s", r.status, r.body)
	}
	got := search()
	if gs := got.Users[0].GameSessions; len(gs) != 1 || gs[0].ID != g.ID || gs[0].GameID != "slots" {
		t.Errorf("game sessions %+v, want %s", gs, g.ID)
	}
	if p := got.Users[0].PlaySession; p == nil || p.ExpiresAt == "" {
		t.Errorf("play session %+v, want the active one", p)
	}

	conn := s.registeredSocket(t, sess.Token)
	wantError(t, c.do(t, http.MethodPost, "/console/api/game-sessions/not-a-uuid/close", "{}"), 400, 3, "Invalid game session id.")
	if r := c.do(t, http.MethodPost, "/console/api/game-sessions/"+g.ID+"/close", "{}", "X-CSRF-Token", "wrong"); r.status != 403 {
		t.Errorf("close without the CSRF token: %d %s", r.status, r.body)
	}
	if r := c.do(t, http.MethodPost, "/console/api/game-sessions/"+g.ID+"/close", "{}"); r.status != 200 || string(r.body) != "{}" {
		t.Fatalf("console close: %d %s", r.status, r.body)
	}
	gameNotification(t, conn, g.ID, "closed_by_server")
	wantError(t, s.asServer(t, "GET", "/v2/server/game-sessions/"+g.ID, ""), 404, 5, "Game session not found.")
	if got := search(); len(got.Users[0].GameSessions) != 0 {
		t.Errorf("closed session still listed: %+v", got.Users[0].GameSessions)
	}
	wantError(t, c.do(t, http.MethodPost, "/console/api/game-sessions/"+g.ID+"/close", "{}"), 404, 5, "Game session not found.")
}
