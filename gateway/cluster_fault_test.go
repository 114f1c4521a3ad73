package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/hub"
	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

// Redis killed and restarted under three nodes: sockets stay up, /readyz goes red then green,
// a disconnect asked while Redis is down fails loudly (503) rather than silently, and delivery
// resumes once it is back.
func TestClusterRedisRestart(t *testing.T) {
	srv := redisproc.ForTest(t)
	nodes := startNodes(t, singleRedis(srv.Addr()), 3, nil)
	u := newClusterUser(t, nodes[0], "device-cluster-restart")
	ws := nodes[0].mustSocket(t, u.token)
	sid := sessionOn(t, nodes[0], u.id)

	// Every subscription dropped by Redis (the connections killed, Redis still up): a
	// disconnect asked at that moment either reaches the socket or fails loudly; once the
	// nodes have resubscribed, it reaches the socket.
	other := newClusterUser(t, nodes[0], "device-cluster-resub")
	ows := nodes[0].mustSocket(t, other.token)
	osid := sessionOn(t, nodes[0], other.id)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	if err := admin.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	failed := 0
	for {
		r := nodes[2].serverCall(t, http.MethodPost, "/v2/server/sessions/"+osid+"/disconnect", "")
		// 404 after a failure: the failed call did reach the socket's node (only its reply was
		// lost); the close below proves it.
		if r.status == 200 || (r.status == 404 && failed > 0) {
			break
		}
		if r.status != 503 || failed > 100 {
			t.Fatalf("disconnect while resubscribing: %d %s (after %d failures)", r.status, r.body, failed)
		}
		failed++
		time.Sleep(20 * time.Millisecond)
	}
	wantClose(t, ows, gateway.CloseDisconnected, "disconnected by server")
	t.Logf("%d disconnect calls failed loudly while the nodes resubscribed", failed)

	// A presence on n0, to be found again after Redis comes back empty.
	online := newClusterUser(t, nodes[0], "device-cluster-restart-online")
	nodes[0].dialStatus(t, online.token, true)
	sessionOn(t, nodes[0], online.id)
	presenceListed := func() bool {
		r := nodes[1].serverCall(t, http.MethodGet, "/v2/server/users/"+online.id+"/sessions", "")
		return r.status == 200 && strings.Contains(string(r.body), `"status":""`)
	}
	waitFor(t, 5*time.Second, "the presence", presenceListed)

	// A follower on n1 of a status socket on n0, whose status changes during the outage.
	follower := statusSocket(t, nodes[1], "device-cluster-restart-follower", false)
	target := newClusterUser(t, nodes[0], "device-cluster-restart-target")
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
	wantJSON(t, readJSON(t, follower.c), `{"cid":"f","status":{}}`)
	tc := nodes[0].dialStatus(t, target.token, true)
	if raw, _ := json.Marshal(readJSON(t, follower.c)); !strings.Contains(string(raw), `"joins"`) {
		t.Fatalf("got %s, want the target's join", raw)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, s := range nodes {
		waitFor(t, 5*time.Second, "/readyz red", func() bool { return s.tryStatus("/readyz") == http.StatusServiceUnavailable })
	}
	// The update stands on n0 (its own socket sees it, the reply is no error) and reaches
	// the follower on n1 once Redis is back.
	sendText(t, tc, `{"cid":"u","status_update":{"status":"away"}}`)
	for m := readJSON(t, tc); m["cid"] != "u"; m = readJSON(t, tc) {
		if m["error"] != nil {
			t.Fatalf("status update during the outage: %v", m)
		}
	}
	if body := scrape(t, nodes[0]); !containsLine(body, "sessiongate_presence_pending_writes 1") {
		t.Errorf("during the outage: %s, want the update pending", grepLines(body, "pending_writes"))
	}
	r := nodes[2].serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", "")
	wantErrorPrefix(t, r, 503, 14, "Session disconnect not confirmed")
	wantPong(t, ws, "during-outage")

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, s := range nodes {
		waitFor(t, 5*time.Second, "/readyz green", func() bool { return s.tryStatus("/readyz") == http.StatusOK })
	}
	wantPong(t, ws, "after-outage")
	if raw, _ := json.Marshal(readJSON(t, follower.c)); !strings.Contains(string(raw), `"status":"away"`) {
		t.Fatalf("follower after the outage got %s, want the update made during it", raw)
	}
	waitFor(t, 5*time.Second, "the pending update written", func() bool {
		return containsLine(scrape(t, nodes[0]), "sessiongate_presence_pending_writes 0")
	})
	// The registry was lost with Redis; the nodes are back in it within a heartbeat.
	waitNodes(t, nodes, 3)
	r = nodes[2].serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", `{"reason":"after restart"}`)
	if r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect after restart: %d %s", r.status, r.body)
	}
	wantClose(t, ws, gateway.CloseDisconnected, "after restart")

	// n0 wrote its presences back (the accounts are gone with Redis, so a status_follow would
	// not find the user; the session list reads the presence from Redis).
	waitFor(t, 5*time.Second, "the presence republished", presenceListed)
}

// builtBinaries caches the binaries built by buildBinary, per test and package.
var builtBinaries sync.Map // builtKey -> string

type builtKey struct {
	t   *testing.T
	pkg string
}

// buildBinary builds the command in pkg (relative to this package) into the test's temporary
// directory, once per test; the binary goes away with the test.
func buildBinary(t *testing.T, pkg string) (string, error) {
	key := builtKey{t, pkg}
	if bin, ok := builtBinaries.Load(key); ok {
		return bin.(string), nil
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	builtBinaries.Store(key, bin)
	t.Cleanup(func() { builtBinaries.Delete(key) })
	return bin, nil
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// nodeProcess is a gateway running as a real process, so that it can be SIGKILLed.
type nodeProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	ts   *testServer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs cmd/gateway as node id on redisURL with the test keys and timings.
func startProcess(t *testing.T, id, redisURL, prefix string, ttl time.Duration) *nodeProcess {
	t.Helper()
	bin, err := buildBinary(t, "../cmd/gateway")
	if err != nil {
		t.Fatalf("building cmd/gateway: %v", err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--addr", addr, "--metrics-addr", "", "--redis-url", redisURL, "--redis-prefix", prefix,
		"--node-id", id, "--node-ttl", ttl.String(), "--cluster-timeout", "500ms", "--log-level", "error",
		"--server-key", testServerKey, "--http-key", testHTTPKey, "--encryption-key", testSessionKey,
		"--refresh-encryption-key", testRefreshKey, "--token-expiry", testExpiry.String(),
		"--refresh-token-expiry", testRefreshExp.String(), "--drain-period", "100ms")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	p.ts = &testServer{url: "http://" + addr, cfg: testConfig(), client: &http.Client{Timeout: 5 * time.Second}}
	p.ts.waitReady(t)
	return p
}

func (p *nodeProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// A SIGKILLed node: calls that need it fail with 503 naming it until it expires, its
// presences are removed within --node-ttl and followers on other nodes get the leaves; a
// node restarted under the same id clears what its previous run left.
func TestClusterNodeKilled(t *testing.T) {
	srv := redisproc.ForTest(t)
	const ttl = time.Second
	prefix := "killed" + strconv.FormatInt(clusterPrefixSeq.Add(1), 10) + ":"
	cfg := clusterConfig("n0")
	cfg.NodeTTL = ttl
	n0 := startServer(t, cfg, gateway.RedisStores(singleRedis(srv.Addr()).client(t), prefix, clusterRedisOptions))
	victim := startProcess(t, "victim", srv.URL(), prefix, ttl)
	waitNodes(t, []*testServer{n0}, 2)

	follower := statusSocket(t, n0, "device-killed-follower", false)
	target := newClusterUser(t, n0, "device-killed-target")
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
	wantJSON(t, readJSON(t, follower.c), `{"cid":"f","status":{}}`)

	connect := func(p *nodeProcess) string {
		t.Helper()
		p.ts.dialStatus(t, target.token, true)
		ev := readJSON(t, follower.c)
		raw, _ := json.Marshal(ev)
		if !strings.Contains(string(raw), `"joins"`) {
			t.Fatalf("got %s, want the target's join", raw)
		}
		return ev["status_presence_event"].(map[string]any)["joins"].([]any)[0].(map[string]any)["session_id"].(string)
	}
	wantLeave := func(sid string) {
		t.Helper()
		ev := readJSON(t, follower.c)
		raw, _ := json.Marshal(ev)
		if !strings.Contains(string(raw), `"leaves"`) || !strings.Contains(string(raw), sid) {
			t.Fatalf("got %s, want the leave of %s", raw, sid)
		}
	}
	sid := connect(victim)

	victim.kill()
	killed := time.Now()
	// Until it expires, the dead node is asked and reported, never skipped.
	r := n0.serverCall(t, http.MethodPost, "/v2/server/users/"+target.id+"/disconnect", "")
	wantErrorPrefix(t, r, 503, 14, "User disconnect incomplete (0 sockets closed): node victim did not answer.")
	wantLeave(sid)
	if d := time.Since(killed); d > ttl+500*time.Millisecond {
		t.Errorf("leave %v after the kill, want within the node TTL (%v)", d, ttl)
	}
	waitNodes(t, []*testServer{n0}, 1)
	r = n0.serverCall(t, http.MethodGet, "/v2/server/users/"+target.id+"/sessions", "")
	if r.status != 200 || string(r.body) != `{"sessions":[]}` {
		t.Fatalf("sessions after expiry: %d %s", r.status, r.body)
	}

	// Restarted under the same id, killed, restarted at once: the new run removes the old
	// run's presence at start (or n0 expires it), and the follower gets the leave.
	victim = startProcess(t, "victim", srv.URL(), prefix, ttl)
	waitNodes(t, []*testServer{n0}, 2)
	sid = connect(victim)
	victim.kill()
	victim = startProcess(t, "victim", srv.URL(), prefix, ttl)
	wantLeave(sid)
	waitNodes(t, []*testServer{n0}, 2)
	// The restarted node serves: its new socket is seen from n0, and only that one.
	sid = connect(victim)
	r = n0.serverCall(t, http.MethodGet, "/v2/server/users/"+target.id+"/sessions", "")
	if r.status != 200 || !strings.Contains(string(r.body), sid) || strings.Count(string(r.body), `"session_id"`) != 1 ||
		!strings.Contains(string(r.body), `"node":"victim"`) {
		t.Fatalf("sessions after the restart: %d %s", r.status, r.body)
	}
}

// A node that expired a dead node but died before removing its presences: the dead node stays
// on the registry's dead list, and another node finishes the cleanup; its followers get the
// leave.
func TestClusterCleanupFinishedByAnotherNode(t *testing.T) {
	srv := redisproc.ForTest(t)
	prefix := "ghost" + strconv.FormatInt(clusterPrefixSeq.Add(1), 10) + ":"
	client := singleRedis(srv.Addr()).client(t)
	n0 := startServer(t, clusterConfig("n0"), gateway.RedisStores(client, prefix, clusterRedisOptions))
	follower := statusSocket(t, n0, "device-ghost-follower", false)
	target := newClusterUser(t, n0, "device-ghost-target")

	// The ghost node's presence is in Redis; the follower on n0 sees it.
	ghost := presence.NewRedis(client, presence.RedisConfig{Node: "ghost", Prefix: prefix})
	if _, err := ghost.Join(context.Background(), presence.Presence{UserID: target.id, SessionID: "ghost-session", Username: "g"}); err != nil {
		t.Fatal(err)
	}
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
	raw, _ := json.Marshal(readJSON(t, follower.c))
	if !strings.Contains(string(raw), "ghost-session") {
		t.Fatalf("follow answered %s, want the ghost's presence", raw)
	}
	// A cleaner expired the ghost (its own registry view with a 1ms TTL) and then vanished.
	reg := hub.NewRedisRegistry(client, prefix, time.Millisecond)
	if err := reg.Heartbeat(context.Background(), hub.NodeInfo{ID: "ghost"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if gone, err := reg.Expire(context.Background()); err != nil || !slices.Contains(gone, "ghost") {
		t.Fatalf("expire: %v %v", gone, err)
	}
	// n0 finishes the cleanup: the follower gets the leave, and the ghost is off the list.
	raw, _ = json.Marshal(readJSON(t, follower.c))
	if !strings.Contains(string(raw), `"leaves"`) || !strings.Contains(string(raw), "ghost-session") {
		t.Fatalf("got %s, want the ghost's leave", raw)
	}
	waitFor(t, 5*time.Second, "the ghost off the dead list", func() bool {
		dead, err := reg.Dead(context.Background())
		return err == nil && !slices.Contains(dead, "ghost")
	})
}

// stallingBus is a node's bus whose sends to one node fail, as they do while that node's Redis
// Cluster shard fails over (this node's own shard, and so its bus, stay up).
type stallingBus struct {
	hub.Bus
	to      string
	failing *atomic.Bool
}

func (b stallingBus) Send(ctx context.Context, node string, msg []byte) error {
	if node == b.to && b.failing.Load() {
		return errors.New("injected: CLUSTERDOWN the shard of " + node + " is failing over")
	}
	return b.Bus.Send(ctx, node, msg)
}

// A node the casts cannot reach for a while delays only its own: the other nodes get this
// node's presence events at once, and the stalled node gets them all, in order, once it can.
func TestClusterCastStallOfOneNode(t *testing.T) {
	srv := redisproc.ForTest(t)
	d := singleRedis(srv.Addr())
	prefix := "stall" + strconv.FormatInt(clusterPrefixSeq.Add(1), 10) + ":"
	var failing atomic.Bool
	nodes := make([]*testServer, 3)
	for i := range nodes {
		stores := gateway.RedisStores(d.client(t), prefix, clusterRedisOptions)
		if i == 0 {
			bus := stores.Cluster.Bus
			stores.Cluster.Bus = func(node string) hub.Bus { return stallingBus{Bus: bus(node), to: "n2", failing: &failing} }
		}
		nodes[i] = startServer(t, clusterConfig("n"+strconv.Itoa(i)), stores)
	}
	waitNodes(t, nodes, 3)
	target := newClusterUser(t, nodes[0], "device-stall-target")
	var followers []*statusUser
	for i, n := range nodes[1:] {
		f := statusSocket(t, n, "device-stall-follower-"+strconv.Itoa(i), false)
		sendText(t, f.c, `{"cid":"f","status_follow":{"user_ids":["`+target.id+`"]}}`)
		wantJSON(t, readJSON(t, f.c), `{"cid":"f","status":{}}`)
		followers = append(followers, f)
	}
	tc := nodes[0].dialStatus(t, target.token, true)
	for _, f := range followers {
		if ev := readJSON(t, f.c); ev["status_presence_event"] == nil {
			t.Fatalf("got %v, want the target's join", ev)
		}
	}

	failing.Store(true)
	for _, st := range []string{"one", "two", "three"} {
		sendText(t, tc, `{"cid":"`+st+`","status_update":{"status":"`+st+`"}}`)
		for m := readJSON(t, tc); m["cid"] != st; m = readJSON(t, tc) { // its own events first
		}
	}
	// n1 gets every update although n2 takes none (before lanes, the second waited behind n2).
	for _, st := range []string{"one", "two", "three"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, raw, err := followers[0].c.Read(ctx)
		cancel()
		if err != nil || !strings.Contains(string(raw), `"status":"`+st+`"`) {
			t.Fatalf("follower on n1: %s, %v; want the update %q while n2 is stalled", raw, err, st)
		}
	}
	failing.Store(false)
	for _, st := range []string{"one", "two", "three"} {
		ev := readJSON(t, followers[1].c) // the casts' retries reach n2 within their backoff
		raw, _ := json.Marshal(ev)
		if !strings.Contains(string(raw), `"status":"`+st+`"`) {
			t.Fatalf("follower on n2 got %s, want the update %q (all of them, in order)", raw, st)
		}
	}
}
