package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// Cluster tests: three in-process nodes, each with a Redis client of its own, on one Redis
// server and on a 3-master Redis Cluster, all on loopback.

// clusterTimings make failures and expiries show within a test's patience.
func clusterConfig(node string) gateway.Config {
	cfg := testConfig()
	cfg.NodeID = node
	cfg.NodeTTL = 400 * time.Millisecond // heartbeat every 100ms, dead after 300ms silent
	cfg.ClusterTimeout = 500 * time.Millisecond
	return cfg
}

var clusterRedisOptions = gateway.RedisOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	HealthEvery: 200 * time.Millisecond}

var clusterPrefixSeq atomic.Int64

// deployment is a Redis to run nodes on: it makes a client per node.
type deployment struct {
	name   string
	client func(t *testing.T) redis.UniversalClient
}

func singleRedis(addr string) deployment {
	return deployment{name: "redis", client: func(t *testing.T) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		t.Cleanup(func() { c.Close() })
		return c
	}}
}

func redisCluster(addrs []string) deployment {
	return deployment{name: "cluster", client: func(t *testing.T) redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { c.Close() })
		return c
	}}
}

// startNodes starts n nodes named n0, n1, ... sharing a fresh key prefix on d.
func startNodes(t *testing.T, d deployment, n int, tweak func(*gateway.Config)) []*testServer {
	t.Helper()
	prefix := "cl" + strconv.FormatInt(clusterPrefixSeq.Add(1), 10) + ":"
	nodes := make([]*testServer, n)
	for i := range nodes {
		cfg := clusterConfig("n" + strconv.Itoa(i))
		if tweak != nil {
			tweak(&cfg)
		}
		nodes[i] = startServer(t, cfg, gateway.RedisStores(d.client(t), prefix, clusterRedisOptions))
	}
	waitNodes(t, nodes, n)
	return nodes
}

// waitNodes waits until every node lists want live nodes.
func waitNodes(t *testing.T, nodes []*testServer, want int) {
	t.Helper()
	for _, s := range nodes {
		waitFor(t, 5*time.Second, fmt.Sprintf("%d live nodes", want), func() bool {
			r := s.serverCall(t, http.MethodGet, "/v2/server/nodes", "")
			var body struct {
				Nodes []map[string]any `json:"nodes"`
			}
			return r.status == 200 && json.Unmarshal(r.body, &body) == nil && len(body.Nodes) == want
		})
	}
}

// serverCall calls the server API with the test http key.
func (s *testServer) serverCall(t *testing.T, method, path, body string) response {
	t.Helper()
	return s.do(t, method, path, body, "Authorization", bearer(testHTTPKey))
}

// clusterUser is an account with its sockets, wherever they are.
type clusterUser struct {
	id, token string
}

func newClusterUser(t *testing.T, s *testServer, device string) clusterUser {
	t.Helper()
	sess := s.authDevice(t, device, "")
	return clusterUser{id: tokenClaims(t, sess.Token).UserID, token: sess.Token}
}

// sessionOn returns the session id of the user's only socket on s.
func sessionOn(t *testing.T, s *testServer, userID string) string {
	t.Helper()
	waitFor(t, 5*time.Second, "the socket", func() bool { return s.srv.Hub().UserCount(userID) == 1 })
	return s.srv.Hub().UserConns(userID, nil)[0].SessionID()
}

func wantPong(t *testing.T, c *websocket.Conn, cid string) {
	t.Helper()
	sendText(t, c, `{"cid":"`+cid+`","ping":{}}`)
	for {
		m := readJSON(t, c)
		if m["cid"] == cid {
			wantJSON(t, m, `{"cid":"`+cid+`","pong":{}}`)
			return
		}
	}
}

func decodeInto(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func TestCluster(t *testing.T) {
	srv := redisproc.ForTest(t)
	runClusterSuite(t, singleRedis(srv.Addr()))
}

// A burst of presence events larger than the cast queue (a mass disconnect of status sockets)
// reaches the other node whole: the sender batches what is queued (hub.Exchange.CastBatch), so
// none is dropped; one publish per cast fell behind and dropped thousands. Afterwards a real
// status event still crosses.
func TestClusterCastBurst(t *testing.T) {
	srv := redisproc.ForTest(t)
	nodes := startNodes(t, singleRedis(srv.Addr()), 2, nil)
	const burst = 20000 // one publish per cast, behind a queue of 8,192, dropped half of such a burst
	nodes[0].srv.CastPresenceBurst("00000000-0000-4000-8000-00000000b00b", burst)
	want := `sessiongate_cluster_calls_total{op="presence",outcome="ok"} ` + strconv.Itoa(burst)
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for body = scrape(t, nodes[0]); !containsLine(body, want) && time.Now().Before(deadline); body = scrape(t, nodes[0]) {
		if strings.Contains(body, `op="presence",outcome="dropped"`) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !containsLine(body, want) {
		t.Fatalf("want %s; node n0 counted:\n%s", want, grepLines(body, `op="presence"`))
	}

	follower := statusSocket(t, nodes[1], "device-burst-follower", false)
	target := newClusterUser(t, nodes[0], "device-burst-target")
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
	wantJSON(t, readJSON(t, follower.c), `{"cid":"f","status":{}}`)
	nodes[0].dialStatus(t, target.token, true)
	tsid := sessionOn(t, nodes[0], target.id)
	raw, _ := json.Marshal(readJSON(t, follower.c))
	if !strings.Contains(string(raw), `"joins"`) || !strings.Contains(string(raw), tsid) {
		t.Fatalf("got %s, want the target's join", raw)
	}
}

func TestRedisCluster(t *testing.T) {
	c := redisproc.ClusterForTest(t, 3)
	runClusterSuite(t, redisCluster(c.Addrs()))
}

func runClusterSuite(t *testing.T, d deployment) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d deployment)
	}{
		{"disconnect session across nodes", testClusterDisconnectSession},
		{"disconnect user across nodes", testClusterDisconnectUser},
		{"logout refused on every node", testClusterLogout},
		{"status events across nodes", testClusterStatus},
		{"single socket across nodes", testClusterSingleSocket},
		{"sessions and nodes", testClusterSessions},
		{"notify a user on every node", testClusterNotify},
		{"json and protobuf sockets across nodes", testClusterFormats},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, d)
		})
	}
}

func testClusterDisconnectSession(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	a, c := nodes[0], nodes[2]
	u := newClusterUser(t, a, "device-cluster-disc-1")
	ws := a.mustSocket(t, u.token)
	sid := sessionOn(t, a, u.id)

	r := c.serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", `{"reason":"cheating"}`)
	if r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	// Acknowledged means acted: the close is already on its way.
	wantClose(t, ws, gateway.CloseDisconnected, "cheating")

	// Gone now, on every node: a socket already closing is not disconnected twice.
	wantError(t, c.serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", ""), 404, 5, "Session not found.")
	wantError(t, c.serverCall(t, http.MethodPost, "/v2/server/sessions/not-a-uuid/disconnect", ""), 400, 3, "Invalid session identifier.")
	wantError(t, c.serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", `{"reason":`), 400, 3,
		"Invalid request body: unexpected end of JSON input")
	wantError(t, c.serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect",
		`{"reason":"`+strings.Repeat("x", 124)+`"}`), 400, 3, "Reason must be 123 bytes or less.")
	wantError(t, c.do(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", ""), 401, 16, "HTTP key required")
	wantError(t, c.do(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect?http_key=wrong", ""), 401, 16, "HTTP key invalid")
	wantError(t, c.do(t, http.MethodGet, "/v2/server/sessions/"+sid+"/disconnect?http_key="+testHTTPKey, ""), 501, 12, "Method Not Allowed")

	// Without a reason the default one is sent; ?http_key= works as the header does.
	ws = a.mustSocket(t, u.token)
	sid = sessionOn(t, a, u.id)
	r = c.do(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect?http_key="+testHTTPKey, "")
	if r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	wantClose(t, ws, gateway.CloseDisconnected, "disconnected by server")
}

func testClusterDisconnectUser(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	u := newClusterUser(t, nodes[0], "device-cluster-disc-user")
	other := newClusterUser(t, nodes[0], "device-cluster-disc-other")
	socks := []*websocket.Conn{nodes[0].mustSocket(t, u.token), nodes[1].mustSocket(t, u.token), nodes[1].mustSocket(t, u.token)}
	keep := nodes[1].mustSocket(t, other.token)
	waitFor(t, 5*time.Second, "the sockets", func() bool {
		return nodes[0].srv.Hub().UserCount(u.id) == 1 && nodes[1].srv.Hub().UserCount(u.id) == 2
	})
	r := nodes[2].serverCall(t, http.MethodPost, "/v2/server/users/"+u.id+"/disconnect", `{"reason":"maintenance"}`)
	if r.status != 200 || string(r.body) != `{"disconnected":3}` {
		t.Fatalf("disconnect user: %d %s", r.status, r.body)
	}
	for _, ws := range socks {
		wantClose(t, ws, gateway.CloseDisconnected, "maintenance")
	}
	wantPong(t, keep, "other")
	r = nodes[2].serverCall(t, http.MethodPost, "/v2/server/users/"+u.id+"/disconnect", "")
	if r.status != 200 || string(r.body) != `{"disconnected":0}` {
		t.Fatalf("second disconnect: %d %s", r.status, r.body)
	}
	wantError(t, nodes[2].serverCall(t, http.MethodPost, "/v2/server/users/bob/disconnect", ""), 400, 3, "Invalid user identifier.")
}

func testClusterLogout(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	u := newClusterUser(t, a, "device-cluster-logout")
	ws := a.mustSocket(t, u.token)
	sessionOn(t, a, u.id)
	r := b.serverCall(t, http.MethodPost, "/v2/server/users/"+u.id+"/logout", "")
	if r.status != 200 || string(r.body) != `{}` {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	// Revocations reach every node's cache within 100ms (measured in BENCHMARKS.md).
	for _, s := range []*testServer{a, c} {
		waitFor(t, time.Second, "the revocation", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			conn, resp, err := s.dialSocket(ctx, "token="+query(u.token), nil)
			if err == nil {
				conn.CloseNow()
				return false
			}
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			wantError(t, response{status: resp.StatusCode, header: resp.Header, body: body}, 401, 16, "Auth token invalid")
			return true
		})
	}
	// The open socket stays open.
	wantPong(t, ws, "still-here")
}

func testClusterStatus(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	follower := statusSocket(t, nodes[0], "device-cluster-follower", false)
	target := newClusterUser(t, nodes[0], "device-cluster-target")
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
	wantJSON(t, readJSON(t, follower.c), `{"cid":"f","status":{}}`)

	// The target comes online on another node: the follower on n0 sees the join.
	tc := nodes[1].dialStatus(t, target.token, true)
	tsid := sessionOn(t, nodes[1], target.id)
	join := readJSON(t, follower.c)
	raw, _ := json.Marshal(join)
	if !strings.Contains(string(raw), `"joins"`) || !strings.Contains(string(raw), tsid) {
		t.Fatalf("got %s, want the target's join", raw)
	}
	// A follow from a third node lists the target's presence on n1.
	third := statusSocket(t, nodes[2], "device-cluster-third", false)
	sendText(t, third.c, `{"cid":"t","status_follow":{"user_ids":["`+target.id+`"]}}`)
	m := readJSON(t, third.c)
	raw, _ = json.Marshal(m)
	if !strings.Contains(string(raw), tsid) {
		t.Fatalf("status_follow on n2 = %s, want the presence on n1", raw)
	}
	// A status update on n1 reaches both followers.
	sendText(t, tc, `{"cid":"u","status_update":{"status":"playing"}}`)
	for m := readJSON(t, tc); m["cid"] != "u"; m = readJSON(t, tc) { // its own events first
	}
	for _, f := range []*statusUser{follower, third} {
		ev := readJSON(t, f.c)
		raw, _ := json.Marshal(ev)
		if !strings.Contains(string(raw), `"status":"playing"`) {
			t.Fatalf("got %s, want the status update", raw)
		}
	}
	// The target closes: both followers see the leave.
	tc.Close(websocket.StatusNormalClosure, "")
	for _, f := range []*statusUser{follower, third} {
		ev := readJSON(t, f.c)
		raw, _ := json.Marshal(ev)
		if !strings.Contains(string(raw), `"leaves"`) || !strings.Contains(string(raw), tsid) {
			t.Fatalf("got %s, want the leave", raw)
		}
	}

	// Rapid connects and closes on n1 reach the follower on n0 in order: each session's join
	// before its leave, ending offline.
	const cycles = 10
	for range cycles {
		c := nodes[1].dialStatus(t, target.token, true)
		c.Close(websocket.StatusNormalClosure, "")
	}
	seen := map[string]string{}
	for range 2 * cycles {
		ev := readJSON(t, follower.c)["status_presence_event"].(map[string]any)
		for kind, want := range map[string]string{"joins": "", "leaves": "join"} {
			ps, _ := ev[kind].([]any)
			for _, p := range ps {
				sid := p.(map[string]any)["session_id"].(string)
				if seen[sid] != want {
					t.Fatalf("%s of %s after %q", kind, sid, seen[sid])
				}
				seen[sid] = strings.TrimSuffix(kind, "s")
			}
		}
	}
	for sid, last := range seen {
		if last != "leave" {
			t.Errorf("session %s ended with a %s", sid, last)
		}
	}
	if len(seen) != cycles {
		t.Errorf("saw %d sessions, want %d", len(seen), cycles)
	}
}

func testClusterSingleSocket(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, func(c *gateway.Config) { c.SingleSocket = true })
	u := newClusterUser(t, nodes[0], "device-cluster-single")
	old := nodes[0].mustSocket(t, u.token)
	sessionOn(t, nodes[0], u.id)
	newer := nodes[1].mustSocket(t, u.token)
	m := readJSON(t, old)
	raw, _ := json.Marshal(m)
	if !strings.Contains(string(raw), `"subject":"single_socket"`) || !strings.Contains(string(raw), `"code":-7`) {
		t.Fatalf("got %s, want the single-socket notification", raw)
	}
	wantClose(t, old, gateway.CloseReplaced, "replaced by a newer socket")
	wantPong(t, newer, "n")
	waitFor(t, 5*time.Second, "the old socket gone", func() bool { return nodes[0].srv.Hub().UserCount(u.id) == 0 })
	if n := nodes[1].srv.Hub().UserCount(u.id); n != 1 {
		t.Fatalf("%d sockets on n1, want 1", n)
	}
}

func testClusterSessions(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	u := newClusterUser(t, nodes[0], "device-cluster-sessions")
	c0 := nodes[0].dialStatus(t, u.token, true)
	s0 := sessionOn(t, nodes[0], u.id)
	_ = readJSON(t, c0) // its own join
	sendText(t, c0, `{"cid":"s","status_update":{"status":"lobby"}}`)
	for m := readJSON(t, c0); m["cid"] != "s"; m = readJSON(t, c0) {
	}
	nodes[1].mustSocket(t, u.token)
	s1 := sessionOn(t, nodes[1], u.id)

	var got struct {
		Sessions []struct {
			SessionID   string            `json:"session_id"`
			UserID      string            `json:"user_id"`
			Username    string            `json:"username"`
			Node        string            `json:"node"`
			Status      *string           `json:"status"`
			Vars        map[string]string `json:"vars"`
			ConnectedAt time.Time         `json:"connected_at"`
			LastSeenAt  time.Time         `json:"last_seen_at"`
		} `json:"sessions"`
	}
	decodeInto(t, nodes[2].serverCall(t, http.MethodGet, "/v2/server/users/"+u.id+"/sessions", ""), &got)
	if len(got.Sessions) != 2 {
		t.Fatalf("sessions %+v, want 2", got.Sessions)
	}
	first, second := got.Sessions[0], got.Sessions[1]
	if first.SessionID != s0 || first.Node != "n0" || first.Status == nil || *first.Status != "lobby" || first.UserID != u.id || first.Username == "" {
		t.Errorf("first session %+v, want %s on n0 with status lobby", first, s0)
	}
	if second.SessionID != s1 || second.Node != "n1" || second.Status != nil {
		t.Errorf("second session %+v, want %s on n1 not online", second, s1)
	}
	if first.ConnectedAt.IsZero() || first.LastSeenAt.Before(first.ConnectedAt.Add(-time.Second)) || second.ConnectedAt.Before(first.ConnectedAt) {
		t.Errorf("times %+v", got.Sessions)
	}

	var nl struct {
		Nodes []struct {
			Node            string    `json:"node"`
			Address         string    `json:"address"`
			Sessions        int       `json:"sessions"`
			StartedAt       time.Time `json:"started_at"`
			LastHeartbeatAt time.Time `json:"last_heartbeat_at"`
		} `json:"nodes"`
	}
	waitFor(t, 2*time.Second, "heartbeats with the session counts", func() bool {
		decodeInto(t, nodes[1].serverCall(t, http.MethodGet, "/v2/server/nodes", ""), &nl)
		return len(nl.Nodes) == 3 && nl.Nodes[0].Sessions == 1 && nl.Nodes[1].Sessions == 1
	})
	for i, n := range nl.Nodes {
		if n.Node != "n"+strconv.Itoa(i) || n.Address != strings.TrimPrefix(nodes[i].url, "http://") ||
			n.StartedAt.IsZero() || time.Since(n.LastHeartbeatAt) > 2*time.Second {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	wantError(t, nodes[0].do(t, http.MethodGet, "/v2/server/nodes", "", "Authorization", bearer("nope")), 401, 16, "HTTP key invalid")

	body := scrape(t, nodes[2])
	for _, line := range []string{`sessiongate_cluster_calls_total{op="user_sessions",outcome="ok"} 3`,
		"sessiongate_cluster_bus_up 1", "sessiongate_cluster_nodes 2"} {
		if !containsLine(body, line) {
			t.Errorf("metrics lack %q:\n%s", line, grepLines(body, "sessiongate_cluster"))
		}
	}
}

func testClusterNotify(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 3, nil)
	u := newClusterUser(t, nodes[0], "device-cluster-notify")
	a, b := nodes[0].mustSocket(t, u.token), nodes[1].mustSocket(t, u.token)
	sessionOn(t, nodes[0], u.id)
	sessionOn(t, nodes[1], u.id)
	n, err := nodes[2].srv.NotifyUserCluster(context.Background(), u.id,
		&api.Notification{Id: "n1", Subject: "reward", Content: `{"gold":5}`, Code: 100})
	if err != nil || n != 2 {
		t.Fatalf("NotifyUserCluster = %d, %v; want 2", n, err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		wantJSON(t, readJSON(t, c), `{"notifications":{"notifications":[{"id":"n1","subject":"reward","content":"{\"gold\":5}","code":100}]}}`)
	}
}

// testClusterFormats: status events, notifications and disconnects from another node reach
// protobuf sockets as they reach json ones.
func testClusterFormats(t *testing.T, d deployment) {
	nodes := startNodes(t, d, 2, nil)
	target, tw := wireUser(t, nodes[0], "device-cluster-fmt-target", "json", true)
	tw.want(presenceEvent([]*rtapi.UserPresence{wirePresence(target, "")}, nil))

	// W has a protobuf and a json socket on n1, and a protobuf socket on n0.
	w, wp := wireUser(t, nodes[1], "device-cluster-fmt-watcher", "protobuf", false)
	wpSession := w.sid
	wj := nodes[1].dialWire(t, w.token, "json", false)
	wp0 := nodes[0].dialWire(t, w.token, "protobuf", false)
	waitFor(t, 5*time.Second, "W's sockets", func() bool {
		return nodes[1].srv.Hub().UserCount(w.id) == 2 && nodes[0].srv.Hub().UserCount(w.id) == 1
	})
	for i, s := range []*wireSocket{wp, wj} {
		cid := "f" + strconv.Itoa(i)
		s.send(&rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
			UserIds: []string{target.id}}}})
		s.want(&rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_Status{Status: &rtapi.Status{
			Presences: []*rtapi.UserPresence{wirePresence(target, "")}}}})
	}

	// The target's status change on n0 reaches both followers on n1.
	tw.send(statusUpdateEnv("u", ptr("ready")))
	event := presenceEvent([]*rtapi.UserPresence{wirePresence(target, "ready")}, []*rtapi.UserPresence{wirePresence(target, "")})
	tw.want(event)
	tw.want(&rtapi.Envelope{Cid: "u"})
	wp.want(event)
	wj.want(event)

	// A notification sent from n0 reaches W's three sockets on both nodes.
	n := &api.Notification{Id: "n1", Subject: "reward", Content: `{"gold":5}`, Code: 100}
	if got, err := nodes[0].srv.NotifyUserCluster(context.Background(), w.id, n); err != nil || got != 3 {
		t.Fatalf("NotifyUserCluster = %d, %v; want 3", got, err)
	}
	notification := &rtapi.Envelope{Message: &rtapi.Envelope_Notifications{Notifications: &rtapi.Notifications{
		Notifications: []*api.Notification{n}}}}
	for _, s := range []*wireSocket{wp, wj, wp0} {
		s.want(notification)
	}

	// A disconnect from n0 closes the protobuf socket on n1.
	r := nodes[0].serverCall(t, http.MethodPost, "/v2/server/sessions/"+wpSession+"/disconnect", `{"reason":"bye"}`)
	if r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	wantClose(t, wp.c, gateway.CloseDisconnected, "bye")
	wj.barrier()
	wp0.barrier()
}
