package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/api"

	"github.com/sessiongate/sessiongate/gateway"
)

// gameSession is a game session as a client decodes it.
type gameSession struct {
	ID        string          `json:"game_session_id"`
	UserID    string          `json:"user_id"`
	GameID    string          `json:"game_id"`
	Currency  string          `json:"currency"`
	External  string          `json:"external_session_id"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt time.Time       `json:"expires_at"`
	Data      json.RawMessage `json:"data"`
	Version   int64           `json:"version"`
}

// mustGame checks that r is a 200 game session and decodes it.
func mustGame(t *testing.T, r response) gameSession {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var g gameSession
	if err := json.Unmarshal(r.body, &g); err != nil {
		t.Fatalf("decoding game session %s: %v", r.body, err)
	}
	return g
}

func mustGames(t *testing.T, r response) []gameSession {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var out struct {
		GameSessions []gameSession `json:"game_sessions"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("decoding game sessions %s: %v", r.body, err)
	}
	return out.GameSessions
}

func createBody(game, currency, ext string) string {
	b, _ := json.Marshal(map[string]string{"game_id": game, "currency": currency, "external_session_id": ext})
	return string(b)
}

// client calls the client API with a session token.
func (s *testServer) asUser(t *testing.T, token, method, path, body string) response {
	t.Helper()
	return s.do(t, method, path, body, "Authorization", bearer(token))
}

// server calls the server API with the test http key.
func (s *testServer) asServer(t *testing.T, method, path, body string) response {
	t.Helper()
	return s.do(t, method, path, body, "Authorization", bearer(testHTTPKey))
}

func dataBody(data string, version int64) string {
	return `{"data":` + data + `,"version":` + strconv.FormatInt(version, 10) + `}`
}

// gameNotification reads the next message of c and checks it is the close notification of
// session id with reason.
func gameNotification(t *testing.T, c *websocket.Conn, id, reason string) {
	t.Helper()
	m := readJSON(t, c)
	ns, _ := m["notifications"].(map[string]any)
	list, _ := ns["notifications"].([]any)
	if len(list) != 1 {
		t.Fatalf("message %v, want one notification", m)
	}
	n := list[0].(map[string]any)
	if n["subject"] != "game_session_closed" || n["code"] != float64(gateway.NotificationCodeGameSessionClosed) {
		t.Errorf("notification %v, want subject game_session_closed and code -100", n)
	}
	var content map[string]string
	if err := json.Unmarshal([]byte(n["content"].(string)), &content); err != nil {
		t.Fatalf("content %v: %v", n["content"], err)
	}
	if content["game_session_id"] != id || content["reason"] != reason {
		t.Errorf("content %v, want session %s closed with reason %s", content, id, reason)
	}
}

func gameConfig(ttl time.Duration) gateway.Config {
	cfg := testConfig()
	cfg.GameSessionTTL = ttl
	cfg.GameSessionDataMaxBytes = 256
	return cfg
}

func TestGameSessionAPI(t *testing.T) {
	runBackends(t, []backendTest{
		{"client flow", testGameClientFlow},
		{"client validation", testGameValidation},
		{"limit per user", testGameLimitPerUser},
		{"server flow", testGameServerFlow},
		{"server validation", testGameServerValidation},
		{"expiry", testGameExpiry},
		{"socket keeps it open", testGameSocketKeepsOpen},
	})
}

func testGameClientFlow(t *testing.T, b backend) {
	s := startServer(t, gameConfig(time.Hour), b.stores(t))
	ann := s.authDevice(t, "game-device-ann", "").Token
	bob := s.authDevice(t, "game-device-bob", "").Token
	annID := tokenClaims(t, ann).UserID
	sock := s.registeredSocket(t, ann)

	before := time.Now().Add(-time.Second)
	g := mustGame(t, s.asUser(t, ann, "POST", "/v2/game-sessions", createBody("slots", "EUR", "ext-1")))
	if _, err := uuid.Parse(g.ID); err != nil || g.UserID != annID || g.GameID != "slots" || g.Currency != "EUR" ||
		g.External != "ext-1" || string(g.Data) != "{}" || g.Version != 1 {
		t.Fatalf("created %+v", g)
	}
	if g.CreatedAt.Before(before) || g.ExpiresAt.Sub(g.CreatedAt).Round(time.Second) != time.Hour {
		t.Errorf("created_at %v, expires_at %v; want expiry an hour after creation", g.CreatedAt, g.ExpiresAt)
	}
	// The same create is idempotent; another external id for the triple is a conflict naming it.
	if again := mustGame(t, s.asUser(t, ann, "POST", "/v2/game-sessions", createBody("slots", "EUR", "ext-1"))); again.ID != g.ID {
		t.Errorf("repeated create gave %s, want %s", again.ID, g.ID)
	}
	wantError(t, s.asUser(t, ann, "POST", "/v2/game-sessions", createBody("slots", "EUR", "ext-2")), 409, 6,
		"Game session "+g.ID+` is already active for this game and currency, under external session id "ext-1".`)
	wantError(t, s.asUser(t, bob, "POST", "/v2/game-sessions", createBody("slots", "EUR", "ext-1")), 409, 6,
		"External session id is linked to another game session.")
	// Creation times have millisecond precision, and sessions created in the same millisecond
	// list by id: the USD one is made in a later millisecond for the order asserted below.
	time.Sleep(2 * time.Millisecond)
	usd := mustGame(t, s.asUser(t, ann, "POST", "/v2/game-sessions", createBody("slots", "USD", "ext-usd")))
	if list := mustGames(t, s.asUser(t, ann, "GET", "/v2/game-sessions", "")); len(list) != 2 || list[0].ID != g.ID || list[1].ID != usd.ID {
		t.Errorf("list = %+v, want the EUR then the USD session", list)
	}
	if list := mustGames(t, s.asUser(t, bob, "GET", "/v2/game-sessions", "")); len(list) != 0 {
		t.Errorf("bob's list = %+v, want none", list)
	}
	if got := mustGame(t, s.asUser(t, ann, "GET", "/v2/game-sessions/"+g.ID, "")); got.ID != g.ID || !got.ExpiresAt.Equal(g.ExpiresAt) {
		t.Errorf("get = %+v, want %+v", got, g)
	}
	// Another user's session does not exist for bob.
	for _, r := range []response{
		s.asUser(t, bob, "GET", "/v2/game-sessions/"+g.ID, ""),
		s.asUser(t, bob, "POST", "/v2/game-sessions/"+g.ID+"/refresh", ""),
		s.asUser(t, bob, "DELETE", "/v2/game-sessions/"+g.ID, ""),
	} {
		wantError(t, r, 404, 5, "Game session not found.")
	}
	time.Sleep(5 * time.Millisecond)
	r := mustGame(t, s.asUser(t, ann, "POST", "/v2/game-sessions/"+g.ID+"/refresh", ""))
	if !r.ExpiresAt.After(g.ExpiresAt) {
		t.Errorf("refresh: expires_at %v, want after %v", r.ExpiresAt, g.ExpiresAt)
	}
	// Clients never write data: there is no such route.
	wantError(t, s.asUser(t, ann, "PUT", "/v2/game-sessions/"+g.ID+"/data", dataBody(`{"balance":1}`, 1)), 404, 5, "Not Found")

	// Closing pushes the notification to the user's socket, then the session is gone.
	if r := s.asUser(t, ann, "DELETE", "/v2/game-sessions/"+g.ID, ""); r.status != 200 || string(r.body) != "{}" {
		t.Fatalf("close: %d %s", r.status, r.body)
	}
	gameNotification(t, sock, g.ID, "closed")
	wantError(t, s.asUser(t, ann, "GET", "/v2/game-sessions/"+g.ID, ""), 404, 5, "Game session not found.")
	wantError(t, s.asUser(t, ann, "DELETE", "/v2/game-sessions/"+g.ID, ""), 404, 5, "Game session not found.")
	// The triple is free again.
	if g2 := mustGame(t, s.asUser(t, ann, "POST", "/v2/game-sessions", createBody("slots", "EUR", "ext-2"))); g2.ID == g.ID {
		t.Error("a closed session came back")
	}
	if m := scrape(t, s); !containsLine(m, `sessiongate_game_session_closes_total{reason="closed"} 1`) ||
		!containsLine(m, `sessiongate_game_session_creates_total{outcome="created"} 3`) {
		t.Errorf("metrics:\n%s", grepLines(m, "game_session"))
	}
}

func testGameValidation(t *testing.T, b backend) {
	s := startServer(t, gameConfig(time.Hour), b.stores(t))
	tok := s.authDevice(t, "game-device-valid", "").Token
	long := strings.Repeat("x", 129)
	for _, tc := range []struct{ body, message string }{
		{"", "Game ID is required."},
		{createBody("", "EUR", "e"), "Game ID is required."},
		{createBody("g", "", "e"), "Currency is required."},
		{createBody("g", "EUR", ""), "External session ID is required."},
		{createBody(long, "EUR", "e"), "Game ID must be at most 128 bytes."},
		{createBody("g", strings.Repeat("E", 33), "e"), "Currency must be at most 32 bytes."},
		{createBody("g", "EUR", long), "External session ID must be at most 128 bytes."},
		{createBody("g\n", "EUR", "e"), "Game ID must not contain control characters."},
	} {
		wantError(t, s.asUser(t, tok, "POST", "/v2/game-sessions", tc.body), 400, 3, tc.message)
	}
	wantErrorPrefix(t, s.asUser(t, tok, "POST", "/v2/game-sessions", `{"game_id":1}`), 400, 3, "Invalid request body")
	wantError(t, s.do(t, "POST", "/v2/game-sessions", createBody("g", "EUR", "e")), 401, 16, "Auth token required")
	wantError(t, s.asUser(t, "nope", "GET", "/v2/game-sessions", ""), 401, 16, "Auth token invalid")
	wantError(t, s.asUser(t, tok, "GET", "/v2/game-sessions/not-a-uuid", ""), 400, 3, "Invalid game session id.")
	wantError(t, s.asUser(t, tok, "GET", "/v2/game-sessions/"+uuid.NewString(), ""), 404, 5, "Game session not found.")
}

func testGameLimitPerUser(t *testing.T, b backend) {
	cfg := gameConfig(time.Hour)
	cfg.GameSessionsPerUser = 3
	s := startServer(t, cfg, b.stores(t))
	tok := s.authDevice(t, "game-device-limit", "").Token
	for i := range 3 {
		mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g"+strconv.Itoa(i), "EUR", "lim-"+strconv.Itoa(i))))
	}
	wantError(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g3", "EUR", "lim-3")), 429, 8,
		"Too many open game sessions, the limit is 3 per user.")
	mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g0", "EUR", "lim-0"))) // a repeat is fine
	other := s.authDevice(t, "game-device-limit-2", "").Token
	mustGame(t, s.asUser(t, other, "POST", "/v2/game-sessions", createBody("g3", "EUR", "lim-other")))
}

func testGameServerFlow(t *testing.T, b backend) {
	s := startServer(t, gameConfig(time.Hour), b.stores(t))
	tok := s.authDevice(t, "game-device-server", "").Token
	user := tokenClaims(t, tok).UserID
	sock := s.registeredSocket(t, tok)
	body := `{"user_id":"` + user + `",` + createBody("poker", "BTC", "srv-1")[1:]
	g := mustGame(t, s.asServer(t, "POST", "/v2/server/game-sessions", body))
	if g.UserID != user || g.GameID != "poker" || g.Version != 1 {
		t.Fatalf("created %+v", g)
	}
	if again := mustGame(t, s.asServer(t, "POST", "/v2/server/game-sessions", body)); again.ID != g.ID {
		t.Errorf("repeated create gave another session")
	}
	// The http key may come as a query parameter, as in Nakama.
	if got := mustGame(t, s.do(t, "GET", "/v2/server/game-sessions/"+g.ID+"?http_key="+testHTTPKey, "")); got.ID != g.ID {
		t.Errorf("get by id: %s", got.ID)
	}
	if got := mustGame(t, s.asServer(t, "GET", "/v2/server/game-sessions?external_session_id=srv-1", "")); got.ID != g.ID {
		t.Errorf("get by external id: %s", got.ID)
	}
	if list := mustGames(t, s.asServer(t, "GET", "/v2/server/game-sessions?user_id="+user, "")); len(list) != 1 || list[0].ID != g.ID {
		t.Errorf("list by user: %+v", list)
	}
	wantError(t, s.asServer(t, "GET", "/v2/server/game-sessions?external_session_id=nope", ""), 404, 5, "Game session not found.")

	// Data: optimistic writes, readable by the client, compacted.
	w := mustGame(t, s.asServer(t, "PUT", "/v2/server/game-sessions/"+g.ID+"/data", dataBody(`{ "balance": 100, "bets": [ 5 ] }`, 1)))
	if w.Version != 2 || string(w.Data) != `{"balance":100,"bets":[5]}` || !w.ExpiresAt.After(g.ExpiresAt) {
		t.Errorf("after write: %+v", w)
	}
	wantError(t, s.asServer(t, "PUT", "/v2/server/game-sessions/"+g.ID+"/data", dataBody(`{"balance":0}`, 1)), 409, 10,
		"Version 1 is stale, the game session is at version 2.")
	w = mustGame(t, s.asServer(t, "PUT", "/v2/server/game-sessions/"+g.ID+"/data", dataBody(`{"balance":90}`, 2)))
	if w.Version != 3 {
		t.Errorf("second write: version %d, want 3", w.Version)
	}
	if got := mustGame(t, s.asUser(t, tok, "GET", "/v2/game-sessions/"+g.ID, "")); string(got.Data) != `{"balance":90}` || got.Version != 3 {
		t.Errorf("client reads %s at version %d", got.Data, got.Version)
	}
	r := mustGame(t, s.asServer(t, "POST", "/v2/server/game-sessions/"+g.ID+"/refresh", ""))
	if r.ExpiresAt.Before(w.ExpiresAt) {
		t.Errorf("refresh moved expires_at back")
	}
	if r := s.asServer(t, "DELETE", "/v2/server/game-sessions/"+g.ID, ""); r.status != 200 {
		t.Fatalf("server close: %d %s", r.status, r.body)
	}
	gameNotification(t, sock, g.ID, "closed_by_server")
	wantError(t, s.asServer(t, "PUT", "/v2/server/game-sessions/"+g.ID+"/data", dataBody(`{}`, 3)), 404, 5, "Game session not found.")
	m := scrape(t, s)
	for _, line := range []string{
		`sessiongate_game_session_data_writes_total{outcome="ok"} 2`,
		`sessiongate_game_session_data_writes_total{outcome="version_conflict"} 1`,
		`sessiongate_game_session_data_writes_total{outcome="not_found"} 1`,
		`sessiongate_game_session_closes_total{reason="closed_by_server"} 1`,
		`sessiongate_game_session_close_notifications_total 1`,
	} {
		if !containsLine(m, line) {
			t.Errorf("metrics lack %q:\n%s", line, grepLines(m, "game_session"))
		}
	}
}

func testGameServerValidation(t *testing.T, b backend) {
	s := startServer(t, gameConfig(time.Hour), b.stores(t))
	tok := s.authDevice(t, "game-device-sval", "").Token
	g := mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "EUR", "sval")))
	// The http key is required; a session token or the server key is not it.
	for _, h := range [][]string{nil, {"Authorization", bearer(tok)}, {"Authorization", basicAuth(testServerKey)}} {
		r := s.do(t, "GET", "/v2/server/game-sessions/"+g.ID, "", h...)
		if r.status != 401 {
			t.Errorf("with %v: status %d, want 401", h, r.status)
		}
	}
	create := func(user string) response {
		return s.asServer(t, "POST", "/v2/server/game-sessions", `{"user_id":"`+user+`",`+createBody("g2", "EUR", "e-"+user)[1:])
	}
	wantError(t, create(""), 400, 3, "User ID is required.")
	wantError(t, create("nope"), 400, 3, "Invalid user ID.")
	wantError(t, create(uuid.NewString()), 404, 5, "User account not found.")
	wantError(t, s.asServer(t, "GET", "/v2/server/game-sessions", ""), 400, 3, "Give one of external_session_id and user_id.")
	wantError(t, s.asServer(t, "GET", "/v2/server/game-sessions?user_id=x", ""), 400, 3, "Invalid user ID.")
	path := "/v2/server/game-sessions/" + g.ID + "/data"
	for _, tc := range []struct{ body, message string }{
		{`{"version":1}`, "Data is required."},
		{`{"data":null,"version":1}`, "Data is required."},
		{dataBody(`[1]`, 1), "Data must be a JSON object."},
		{dataBody(`"x"`, 1), "Data must be a JSON object."},
		{dataBody(`{"k":[1,-2E308]}`, 1), "Data numbers must fit a 64-bit float."},
		{dataBody("{\"k\":\"\xff\"}", 1), "Data must be valid UTF-8."},
		{`{"data":{}}`, "Version is required."},
		{dataBody(`{}`, 0), "Version must be at least 1."},
		{dataBody(`{"k":"`+strings.Repeat("x", 300)+`"}`, 1), "Data must be at most 256 bytes of JSON, got 308."},
	} {
		wantError(t, s.asServer(t, "PUT", path, tc.body), 400, 3, tc.message)
	}
	wantErrorPrefix(t, s.asServer(t, "PUT", path, `{"data":{},"version":"1"}`), 400, 3, "Invalid request body")
	if got := mustGame(t, s.asServer(t, "GET", "/v2/server/game-sessions/"+g.ID, "")); got.Version != 1 || string(got.Data) != "{}" {
		t.Errorf("a refused write changed the session: %+v", got)
	}
}

// recordingNotifier forwards to the node's own delivery and records what it was asked to send.
type recordingNotifier struct {
	next *gateway.Server
	mu   sync.Mutex
	sent map[string][]*api.Notification
}

func (r *recordingNotifier) NotifyUser(_ context.Context, userID string, ns ...*api.Notification) (int, error) {
	r.mu.Lock()
	r.sent[userID] = append(r.sent[userID], ns...)
	r.mu.Unlock()
	return r.next.NotifyUser(userID, ns...)
}

func (r *recordingNotifier) take(userID string) []*api.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.sent[userID]
	delete(r.sent, userID)
	return ns
}

func testGameExpiry(t *testing.T, b backend) {
	const ttl = 600 * time.Millisecond
	s := startServer(t, gameConfig(ttl), b.stores(t))
	rec := &recordingNotifier{next: s.srv, sent: map[string][]*api.Notification{}}
	s.srv.SetUserNotifier(rec)
	tok := s.authDevice(t, "game-device-expiry", "").Token
	user := tokenClaims(t, tok).UserID
	g := mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "EUR", "exp")))
	kept := mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "USD", "kept")))
	for range 3 { // play within the TTL keeps a session: a refresh, a data write
		time.Sleep(ttl / 3)
		mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions/"+kept.ID+"/refresh", ""))
	}
	w := mustGame(t, s.asServer(t, "PUT", "/v2/server/game-sessions/"+kept.ID+"/data", dataBody(`{"a":1}`, 1)))
	// g had no play: it closed by itself (within a sweep of its deadline, as the lateness
	// histogram shows below), and its user was notified.
	waitFor(t, time.Until(g.ExpiresAt)+2*time.Second, "the idle session to close", func() bool {
		return s.asUser(t, tok, "GET", "/v2/game-sessions/"+g.ID, "").status == 404
	})
	ns := rec.take(user)
	if len(ns) != 1 || ns[0].Subject != "game_session_closed" || ns[0].Code != -100 ||
		!strings.Contains(ns[0].Content, `"game_session_id":"`+g.ID+`"`) || !strings.Contains(ns[0].Content, `"reason":"expired"`) {
		t.Fatalf("notifications %v, want the expiry of %s", ns, g.ID)
	}
	if m := scrape(t, s); !containsLine(m, `sessiongate_play_expiry_lateness_seconds_bucket{kind="game",le="1"} 1`) {
		t.Errorf("game expiry later than 1s:\n%s", grepLines(m, "lateness"))
	}
	if got := mustGame(t, s.asUser(t, tok, "GET", "/v2/game-sessions/"+kept.ID, "")); !got.ExpiresAt.Equal(w.ExpiresAt) {
		t.Errorf("kept session expires at %v, want %v (its last data write)", got.ExpiresAt, w.ExpiresAt)
	}
	waitFor(t, time.Until(w.ExpiresAt)+2*time.Second, "the second session to close", func() bool {
		return s.asUser(t, tok, "GET", "/v2/game-sessions/"+kept.ID, "").status == 404
	})
	if ns := rec.take(user); len(ns) != 1 {
		t.Errorf("%d notifications for the second expiry, want 1", len(ns))
	}
}

func testGameSocketKeepsOpen(t *testing.T, b backend) {
	const ttl = 300 * time.Millisecond
	s := startServer(t, gameConfig(ttl), b.stores(t))
	tok := s.authDevice(t, "game-device-sock", "").Token
	c := s.registeredSocket(t, tok)
	g := mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "EUR", "sock")))
	time.Sleep(4 * ttl)
	got := mustGame(t, s.asUser(t, tok, "GET", "/v2/game-sessions/"+g.ID, ""))
	if !got.ExpiresAt.After(g.ExpiresAt) {
		t.Errorf("expires_at %v not moved by the live socket (was %v)", got.ExpiresAt, g.ExpiresAt)
	}
	_ = c.CloseNow()
	waitFor(t, 2*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	waitFor(t, 2*time.Second, "the session to expire", func() bool {
		return s.asUser(t, tok, "GET", "/v2/game-sessions/"+g.ID, "").status == 404
	})
}

func TestGameSessionsCluster(t *testing.T) {
	c := startCluster(t, 3, gameConfig(time.Hour))
	a := c.nodes[0]
	tok := a.authDevice(t, "cluster-game-device", "").Token
	user := tokenClaims(t, tok).UserID
	sock := c.nodes[2].registeredSocket(t, tok)
	g := mustGame(t, c.nodes[1].asServer(t, "POST", "/v2/server/game-sessions",
		`{"user_id":"`+user+`",`+createBody("g", "EUR", "cl-1")[1:]))
	for _, n := range c.nodes {
		if got := mustGame(t, n.asUser(t, tok, "GET", "/v2/game-sessions/"+g.ID, "")); got.ID != g.ID {
			t.Errorf("node %s: got %s", n.cfg.NodeID, got.ID)
		}
	}
	// Concurrent creates of one triple on all nodes open one session.
	ids := make([]string, 30)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			r := c.nodes[i%3].asUser(t, tok, "POST", "/v2/game-sessions", createBody("h", "EUR", "cl-h"))
			var s gameSession
			_ = json.Unmarshal(r.body, &s)
			ids[i] = s.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent creates answered %v, want one session", ids)
		}
	}

	// 30 concurrent writers with the same version on three nodes: exactly one wins.
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Go(func() {
			r := c.nodes[i%3].asServer(t, "PUT", "/v2/server/game-sessions/"+g.ID+"/data", dataBody(`{"writer":`+strconv.Itoa(i)+`}`, 1))
			statuses[i] = r.status
		})
	}
	wg.Wait()
	winner, conflicts := -1, 0
	for i, st := range statuses {
		switch st {
		case 200:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case 409:
			conflicts++
		default:
			t.Errorf("writer %d: status %d", i, st)
		}
	}
	if winner < 0 || conflicts != 29 {
		t.Fatalf("winner %d, %d conflicts; want one winner and 29 conflicts", winner, conflicts)
	}
	// What returned 200 is what every node reads.
	want := `{"writer":` + strconv.Itoa(winner) + `}`
	for _, n := range c.nodes {
		if got := mustGame(t, n.asServer(t, "GET", "/v2/server/game-sessions/"+g.ID, "")); string(got.Data) != want || got.Version != 2 {
			t.Errorf("node %s reads %s at version %d, want %s at 2", n.cfg.NodeID, got.Data, got.Version, want)
		}
	}
	// A close on another node than the one holding the socket reaches it (cluster bus).
	if r := c.nodes[0].asUser(t, tok, "DELETE", "/v2/game-sessions/"+g.ID, ""); r.status != 200 {
		t.Fatalf("close: %d %s", r.status, r.body)
	}
	gameNotification(t, sock, g.ID, "closed")
	for _, n := range c.nodes {
		wantError(t, n.asServer(t, "GET", "/v2/server/game-sessions/"+g.ID, ""), 404, 5, "Game session not found.")
	}
}

func TestGameSessionsClusterExpiry(t *testing.T) {
	const ttl = 300 * time.Millisecond
	c := startCluster(t, 3, gameConfig(ttl))
	tok := c.nodes[0].authDevice(t, "cluster-expiry-device", "").Token
	for i := range 20 {
		mustGame(t, c.nodes[i%3].asUser(t, tok, "POST", "/v2/game-sessions", createBody("g"+strconv.Itoa(i), "EUR", "ce-"+strconv.Itoa(i))))
	}
	// Another user's session, created on the first node, is kept open by a socket on the third.
	held := c.nodes[0].authDevice(t, "cluster-held-device", "").Token
	c.nodes[2].registeredSocket(t, held)
	kept := mustGame(t, c.nodes[0].asUser(t, held, "POST", "/v2/game-sessions", createBody("g", "EUR", "held")))

	series := `sessiongate_game_session_closes_total{reason="expired"}`
	waitFor(t, 3*time.Second, "20 expiries", func() bool { return c.sumMetric(t, series) >= 20 })
	time.Sleep(3 * ttl)
	if n := c.sumMetric(t, series); n != 20 {
		t.Errorf("%v expiries over the nodes, want 20 (each once)", n)
	}
	if list := mustGames(t, c.nodes[1].asUser(t, tok, "GET", "/v2/game-sessions", "")); len(list) != 0 {
		t.Errorf("%d sessions left", len(list))
	}
	if got := mustGame(t, c.nodes[1].asUser(t, held, "GET", "/v2/game-sessions/"+kept.ID, "")); !got.ExpiresAt.After(kept.ExpiresAt) {
		t.Errorf("the held session's expiry did not move: %v", got.ExpiresAt)
	}
}
