package gateway_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// playCall posts {"auth_token": token} to /api/games/sessions/<op>.
func (s *testServer) playCall(t *testing.T, op, token string) response {
	t.Helper()
	return s.do(t, http.MethodPost, "/api/games/sessions/"+op, `{"auth_token":`+jsonString(token)+`}`)
}

// wantPlay checks a play session answer: {"success":true} for an empty code, else the
// seed's error body with that status and error_code.
func wantPlay(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	if code == "" {
		if len(body) != 1 || body["success"] != true {
			t.Errorf("body %s, want {\"success\":true}", r.body)
		}
		return
	}
	msg, _ := body["message"].(string)
	if len(body) != 3 || body["success"] != false || body["error_code"] != code || msg == "" {
		t.Errorf("body %s, want success false, error_code %s and a message", r.body, code)
	}
}

// registeredSocket opens a socket for token and waits until the node has registered it (the
// client may see the 101 first), so that notifications and the liveness pass see it.
func (s *testServer) registeredSocket(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	uid := tokenClaims(t, token).UserID
	before := s.srv.Hub().UserCount(uid)
	c := s.mustSocket(t, token)
	waitFor(t, 5*time.Second, "the socket to register", func() bool { return s.srv.Hub().UserCount(uid) > before })
	return c
}

// playConfig is the test configuration with a short play session timeout.
func playConfig(timeout time.Duration) gateway.Config {
	cfg := testConfig()
	cfg.PlaySessionTimeout = timeout
	return cfg
}

func TestPlaySessionAPI(t *testing.T) {
	runBackends(t, []backendTest{
		{"lifecycle", testPlayLifecycle},
		{"unauthorized", testPlayUnauthorized},
		{"expiry", testPlayExpiry},
		{"socket keeps it alive", testPlaySocketHeartbeats},
		{"store down", testPlayStoreDown},
	})
}

// testPlayStoreDown: with the store down, play and game session calls fail with clear internal
// errors (never a crash or a hang), the background passes count their failures, and all
// works again once the store is back.
func testPlayStoreDown(t *testing.T, b backend) {
	if b.killable == nil {
		t.Skipf("the %s backend cannot fail", b.name)
	}
	stores, kill, restart := b.killable(t)
	cfg := playConfig(300 * time.Millisecond)
	s := startServer(t, cfg, stores)
	tok := s.authDevice(t, "play-device-down", "").Token
	s.registeredSocket(t, tok) // so that the liveness pass has a user to extend
	kill()
	wantPlay(t, s.playCall(t, "initiate", tok), 500, "INTERNAL_ERROR")
	wantError(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "EUR", "down")), 500, 13, "Internal server error.")
	waitFor(t, 5*time.Second, "the background passes to count failures", func() bool {
		m := scrape(t, s)
		return !containsLine(m, "sessiongate_play_sweep_errors_total 0") && strings.Contains(m, "sessiongate_play_sweep_errors_total ")
	})
	restart()
	waitFor(t, 15*time.Second, "the store to answer again", func() bool {
		return s.playCall(t, "initiate", tok).status == 200
	})
	mustGame(t, s.asUser(t, tok, "POST", "/v2/game-sessions", createBody("g", "EUR", "up")))
}

func testPlayLifecycle(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	ann := s.authDevice(t, "play-device-ann", "").Token
	bob := s.authDevice(t, "play-device-bob", "").Token
	wantPlay(t, s.playCall(t, "heartbeat", ann), 400, "NO_ACTIVE_SESSION")
	wantPlay(t, s.playCall(t, "end", ann), 400, "NO_ACTIVE_SESSION")
	wantPlay(t, s.playCall(t, "initiate", ann), 200, "")
	wantPlay(t, s.playCall(t, "initiate", ann), 400, "ALREADY_IN_GAME")
	wantPlay(t, s.playCall(t, "initiate", bob), 200, "") // one per user
	wantPlay(t, s.playCall(t, "heartbeat", ann), 200, "")
	// A new token of the same user is the same user.
	ann2 := s.authDevice(t, "play-device-ann", "").Token
	wantPlay(t, s.playCall(t, "initiate", ann2), 400, "ALREADY_IN_GAME")
	wantPlay(t, s.playCall(t, "end", ann2), 200, "")
	wantPlay(t, s.playCall(t, "end", ann), 400, "NO_ACTIVE_SESSION")
	wantPlay(t, s.playCall(t, "heartbeat", ann), 400, "NO_ACTIVE_SESSION")
	wantPlay(t, s.playCall(t, "initiate", ann), 200, "")
	wantPlay(t, s.playCall(t, "heartbeat", bob), 200, "")
	// The trailing slash spelling works too, and other methods are refused.
	r := s.do(t, http.MethodPost, "/api/games/sessions/heartbeat/", `{"auth_token":`+jsonString(ann)+`}`)
	wantPlay(t, r, 200, "")
	wantError(t, s.do(t, http.MethodGet, "/api/games/sessions/initiate", ""), 501, 12, "Method Not Allowed")
	metrics := scrape(t, s)
	for _, line := range []string{
		`sessiongate_play_session_requests_total{op="initiate",outcome="ok"} 3`,
		`sessiongate_play_session_requests_total{op="initiate",outcome="ALREADY_IN_GAME"} 2`,
		`sessiongate_play_session_requests_total{op="end",outcome="NO_ACTIVE_SESSION"} 2`,
		`sessiongate_http_requests_total{code="400",route="/api/games/sessions/initiate"} 2`,
	} {
		if !containsLine(metrics, line) {
			t.Errorf("metrics lack %q:\n%s", line, grepLines(metrics, "play_session"))
		}
	}
}

func testPlayUnauthorized(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "play-device-logout", "")
	wantPlay(t, s.playCall(t, "initiate", sess.Token), 200, "")
	if r := s.logout(t, sess.Token, sess.Token, ""); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	other, err := auth.NewService(auth.Config{EncryptionKey: "some-other-key", RefreshEncryptionKey: "some-other-refresh", BcryptCost: 4},
		auth.NewMemoryAccounts(), auth.NewMemoryRevocations())
	if err != nil {
		t.Fatal(err)
	}
	foreign := s.authDeviceOn(t, other)
	for _, op := range []string{"initiate", "heartbeat", "end"} {
		for name, body := range map[string]string{
			"no body":      "",
			"not json":     "auth_token=x",
			"no token":     `{}`,
			"empty token":  `{"auth_token":""}`,
			"garbage":      `{"auth_token":"not-a-jwt"}`,
			"foreign key":  `{"auth_token":` + jsonString(foreign) + `}`,
			"logged out":   `{"auth_token":` + jsonString(sess.Token) + `}`,
			"refresh":      `{"auth_token":` + jsonString(sess.RefreshToken) + `}`,
			"wrong type":   `{"auth_token":12}`,
			"bearer alone": "",
		} {
			headers := []string{}
			if name == "bearer alone" {
				headers = []string{"Authorization", bearer(sess.Token)}
			}
			r := s.do(t, http.MethodPost, "/api/games/sessions/"+op, body, headers...)
			t.Run(op+"/"+name, func(t *testing.T) { wantPlay(t, r, 401, "UNAUTHORIZED") })
		}
	}
}

// authDeviceOn issues a token pair from another auth service (signed with other keys).
func (s *testServer) authDeviceOn(t *testing.T, svc *auth.Service) string {
	t.Helper()
	sess, err := svc.Authenticate(t.Context(), auth.AuthRequest{Provider: auth.ProviderDevice, ID: "foreign-device-1", Create: true})
	if err != nil {
		t.Fatal(err)
	}
	return sess.Token
}

func testPlayExpiry(t *testing.T, b backend) {
	const timeout = 800 * time.Millisecond
	s := startServer(t, playConfig(timeout), b.stores(t))
	tok := s.authDevice(t, "play-device-expiry", "").Token
	wantPlay(t, s.playCall(t, "initiate", tok), 200, "")
	for range 3 { // heartbeats within the timeout keep it
		time.Sleep(timeout / 4)
		wantPlay(t, s.playCall(t, "heartbeat", tok), 200, "")
	}
	last := time.Now()
	time.Sleep(timeout + 100*time.Millisecond)
	wantPlay(t, s.playCall(t, "heartbeat", tok), 400, "NO_ACTIVE_SESSION")
	if d := time.Since(last); d > timeout+time.Second {
		t.Fatalf("checked %v after the last heartbeat, too late to judge", d)
	}
	// The node's sweeper expires it within a sweep (it counts how late it was).
	waitFor(t, 2*time.Second, "the expiry to be counted", func() bool {
		return containsLine(scrape(t, s), `sessiongate_play_expired_total{kind="play"} 1`)
	})
	if m := scrape(t, s); !containsLine(m, `sessiongate_play_expiry_lateness_seconds_bucket{kind="play",le="1"} 1`) {
		t.Errorf("expiry later than 1s:\n%s", grepLines(m, "lateness"))
	}
	wantPlay(t, s.playCall(t, "initiate", tok), 200, "")
}

func testPlaySocketHeartbeats(t *testing.T, b backend) {
	const timeout = 600 * time.Millisecond
	s := startServer(t, playConfig(timeout), b.stores(t))
	tok := s.authDevice(t, "play-device-socket", "").Token
	c := s.registeredSocket(t, tok)
	wantPlay(t, s.playCall(t, "initiate", tok), 200, "")
	time.Sleep(4 * timeout) // no HTTP heartbeat: the socket is the heartbeat
	wantPlay(t, s.playCall(t, "heartbeat", tok), 200, "")
	_ = c.CloseNow()
	waitFor(t, 2*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	time.Sleep(timeout + 100*time.Millisecond)
	wantPlay(t, s.playCall(t, "heartbeat", tok), 400, "NO_ACTIVE_SESSION")
}

// cluster is several gateway nodes on one real Redis, sharing one key prefix.
type cluster struct {
	nodes []*testServer
}

var clusterSeq int

// startCluster runs n clustered nodes with cfg on one redis-server of the test's own.
func startCluster(t *testing.T, n int, cfg gateway.Config) *cluster {
	t.Helper()
	srv := redisproc.ForTest(t)
	clusterSeq++
	prefix := "cl" + strconv.Itoa(clusterSeq) + ":"
	c := &cluster{}
	for i := range n {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { client.Close() })
		node := cfg
		node.NodeID = "node-" + strconv.Itoa(i)
		c.nodes = append(c.nodes, startServer(t, node, gateway.RedisStores(client, prefix, clusterRedisOptions)))
	}
	waitNodes(t, c.nodes, n)
	return c
}

// sumMetric adds the value of the metric line that starts with series on every node.
func (c *cluster) sumMetric(t *testing.T, series string) float64 {
	t.Helper()
	total := 0.0
	for _, n := range c.nodes {
		for _, line := range strings.Split(scrape(t, n), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metric %q: %v", line, err)
				}
				total += f
			}
		}
	}
	return total
}

func TestPlaySessionsCluster(t *testing.T) {
	const timeout = time.Second
	c := startCluster(t, 3, playConfig(timeout))
	a, b, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	tok := a.authDevice(t, "cluster-play-device", "").Token

	// 100 concurrent initiates for one user, spread over the nodes: exactly one wins.
	codes := make([]string, 100)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			r := c.nodes[i%3].playCall(t, "initiate", tok)
			var body struct {
				Success   bool   `json:"success"`
				ErrorCode string `json:"error_code"`
			}
			_ = json.Unmarshal(r.body, &body)
			codes[i] = body.ErrorCode
			if body.Success {
				codes[i] = "ok"
			}
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, code := range codes {
		count[code]++
	}
	if count["ok"] != 1 || count["ALREADY_IN_GAME"] != 99 {
		t.Fatalf("outcomes %v, want 1 ok and 99 ALREADY_IN_GAME", count)
	}
	// Any node sees the one session.
	wantPlay(t, b.playCall(t, "heartbeat", tok), 200, "")
	wantPlay(t, n3.playCall(t, "end", tok), 200, "")
	wantPlay(t, a.playCall(t, "heartbeat", tok), 400, "NO_ACTIVE_SESSION")

	// A socket on the third node keeps a session initiated on the first alive.
	sock := n3.registeredSocket(t, tok)
	wantPlay(t, a.playCall(t, "initiate", tok), 200, "")
	time.Sleep(3 * timeout)
	wantPlay(t, b.playCall(t, "heartbeat", tok), 200, "")
	_ = sock.CloseNow()
	waitFor(t, 2*time.Second, "the socket to unregister", func() bool { return n3.srv.Hub().Len() == 0 })

	// Sessions that expire are expired by exactly one node each.
	users := []string{tok}
	for i := range 9 {
		users = append(users, b.authDevice(t, "cluster-expiry-"+strconv.Itoa(i), "").Token)
	}
	for i, u := range users[1:] {
		wantPlay(t, c.nodes[i%3].playCall(t, "initiate", u), 200, "")
	}
	time.Sleep(timeout + 100*time.Millisecond)
	for _, u := range users {
		wantPlay(t, c.nodes[1].playCall(t, "heartbeat", u), 400, "NO_ACTIVE_SESSION")
	}
	waitFor(t, 2*time.Second, "10 expiries counted", func() bool {
		return c.sumMetric(t, `sessiongate_play_expired_total{kind="play"}`) >= 10
	})
	time.Sleep(3 * 100 * time.Millisecond) // a few more sweeps: nobody expires one twice
	if n := c.sumMetric(t, `sessiongate_play_expired_total{kind="play"}`); n != 10 {
		t.Errorf("%v expiries over the nodes, want 10", n)
	}

	// A token logged out on one node is refused by the play API of every node.
	sess := a.authDevice(t, "cluster-play-logout", "")
	wantPlay(t, n3.playCall(t, "initiate", sess.Token), 200, "")
	if r := a.logout(t, sess.Token, sess.Token, ""); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	for _, n := range c.nodes {
		waitFor(t, 2*time.Second, "node "+n.cfg.NodeID+" to refuse the logged-out token", func() bool {
			return n.playCall(t, "heartbeat", sess.Token).status == http.StatusUnauthorized
		})
	}
}
