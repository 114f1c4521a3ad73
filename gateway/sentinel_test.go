package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/internal/redisurl"
)

// Sentinel: three in-process nodes on a Sentinel deployment (a master, its replica, three
// sentinels), each with the client cmd/gateway builds from the redis-sentinel:// URL. The
// cluster suite's core cases run on it, then the master is SIGKILLed under the nodes.

func sentinelDeployment(url string) deployment {
	return deployment{name: "sentinel", client: func(t *testing.T) redis.UniversalClient {
		c, err := redisurl.NewClient(url)
		if err != nil {
			t.Fatalf("client for %s: %v", url, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}}
}

func TestSentinel(t *testing.T) {
	rs := redisproc.SentinelForTest(t)
	d := sentinelDeployment(rs.URL())
	// One case at a time: the deployment is shared, and the failover must come last.
	t.Run("disconnect session across nodes", func(t *testing.T) { testClusterDisconnectSession(t, d) })
	t.Run("logout refused on every node", func(t *testing.T) { testClusterLogout(t, d) })
	t.Run("status events across nodes", func(t *testing.T) { testClusterStatus(t, d) })
	t.Run("failover", func(t *testing.T) { testSentinelFailover(t, rs, d) })
}

// sentinelVictim is a socket on n0 that disconnect calls made during the failover aim at, with
// what those calls answered.
type sentinelVictim struct {
	ws      *websocket.Conn
	sid     string
	answers []response
}

// wantClosed checks that the victim's socket was closed by a disconnect, and otherwise names
// what the calls for it answered.
func (v *sentinelVictim) wantClosed(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := v.ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != gateway.CloseDisconnected || ce.Reason != "disconnected by server" {
			var answers []string
			for _, r := range v.answers {
				answers = append(answers, strconv.Itoa(r.status)+" "+string(r.body))
			}
			t.Fatalf("%s: socket ended with %v, want the disconnect's close; the calls for it answered %q", name, err, answers)
		}
		return
	}
}

// waitRedisProbesDone waits until no go-redis pool probes a dial any more. A pool whose dials
// kept failing (the master was dead) probes once a second until a dial succeeds or, once its
// client is closed, until its next wake-up; goleak would report a probe still asleep when the
// package's tests end.
func waitRedisProbesDone(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "go-redis's dial probes to end", func() bool {
		buf := make([]byte, 1<<16)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return !bytes.Contains(buf[:n], []byte("internal/pool.(*ConnPool).tryDial"))
			}
			buf = make([]byte, 2*len(buf))
		}
	})
}

// disconnectAttempt asks s to disconnect sid, off the test's goroutine: a failed request is
// returned, not fatal.
func disconnectAttempt(s *testServer, sid string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, s.url+"/v2/server/sessions/"+sid+"/disconnect", nil)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", bearer(testHTTPKey))
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: body}, err
}

// testSentinelFailover: the master SIGKILLed under three nodes. Until the sentinels have
// promoted the replica, disconnect calls fail loudly (503 code 14) or reach their socket; then
// /readyz is green on every node, cross-node disconnects and status events work again, the
// sockets opened before stayed open, and no node took the outage for the death of another
// (which would remove that node's live presences and send their followers leaves).
func testSentinelFailover(t *testing.T, rs *redisproc.Sentinel, d deployment) {
	// Registered before the nodes, so that it runs after their clients are closed.
	t.Cleanup(func() { waitRedisProbesDone(t) })
	// A liveness window of 1.5s: longer than go-redis takes to redial a failed pool (up to 1s),
	// so that a node whose client reaches the new master a little after the others' is still
	// live to them, and shorter than the outage (over 2s: the sentinels wait 1s before they
	// agree that the master is down), so that a node judging silence during or right after it
	// would expire the others.
	nodes := startNodes(t, d, 3, func(c *gateway.Config) { c.NodeTTL = 2 * time.Second })
	follower := statusSocket(t, nodes[1], "device-sentinel-follower", false)
	online := newClusterUser(t, nodes[0], "device-sentinel-online")
	sendText(t, follower.c, `{"cid":"f","status_follow":{"user_ids":["`+online.id+`"]}}`)
	wantJSON(t, readJSON(t, follower.c), `{"cid":"f","status":{}}`)
	oc := nodes[0].dialStatus(t, online.token, true)
	osid := sessionOn(t, nodes[0], online.id)
	if raw, _ := json.Marshal(readJSON(t, follower.c)); !strings.Contains(string(raw), `"joins"`) || !strings.Contains(string(raw), osid) {
		t.Fatalf("got %s, want the join of %s", raw, osid)
	}
	listed := func() bool {
		r := nodes[2].serverCall(t, http.MethodGet, "/v2/server/users/"+online.id+"/sessions", "")
		return r.status == 200 && strings.Contains(string(r.body), `"session_id":"`+osid+`"`) &&
			strings.Contains(string(r.body), `"node":"n0"`)
	}
	waitFor(t, 5*time.Second, "the presence listed", listed)

	var victims []*sentinelVictim
	for i := range 4 {
		u := newClusterUser(t, nodes[0], "device-sentinel-victim-"+strconv.Itoa(i))
		victims = append(victims, &sentinelVictim{ws: nodes[0].mustSocket(t, u.token), sid: sessionOn(t, nodes[0], u.id)})
	}

	old, err := rs.KillMaster()
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	// Until every node is ready again, each victim gets disconnect calls from n1 or n2, one
	// after another, until one answers other than 503 (it is then decided: closed or lost).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	callErrs := make(chan error, len(victims))
	for i, v := range victims {
		via := nodes[1+i%2]
		wg.Go(func() {
			for {
				r, err := disconnectAttempt(via, v.sid)
				if err != nil {
					callErrs <- err
					return
				}
				v.answers = append(v.answers, r)
				if r.status != 503 {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	var redAt time.Duration
	deadline := killed.Add(15 * time.Second)
	for {
		green := 0
		for _, s := range nodes {
			if s.tryStatus("/readyz") == http.StatusOK {
				green++
			}
		}
		// The first red answer; a /readyz that waits for Redis takes up to 1s to give it.
		if green < len(nodes) && redAt == 0 {
			redAt = time.Since(killed)
		}
		if green == len(nodes) && redAt != 0 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("/readyz not red then green on every node %v after the kill", time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	green := time.Since(killed)
	close(stop)
	wg.Wait()
	close(callErrs)
	for err := range callErrs {
		t.Fatalf("disconnect call: %v", err)
	}
	newMaster, err := rs.MasterAddr()
	if err != nil || newMaster == old {
		t.Fatalf("master after the failover %q, %v; was %s", newMaster, err, old)
	}

	// Each call answered 503 code 14, or closed its socket: a 200 did, and so did a failed
	// call before a 404. A victim whose calls all failed is closed by a call now, or was
	// closed by one of them.
	failed, closed := 0, 0
	for i, v := range victims {
		for j, r := range v.answers {
			switch {
			case r.status == 503:
				wantErrorPrefix(t, r, 503, 14, "Session disconnect not confirmed")
				failed++
			case r.status == 200 && string(r.body) == `{"disconnected":1}`, r.status == 404 && j > 0:
				closed++
			default:
				t.Fatalf("victim %d, call %d during the failover: %d %s", i, j, r.status, r.body)
			}
		}
		if last := v.answers[len(v.answers)-1]; last.status == 503 {
			r := nodes[2].serverCall(t, http.MethodPost, "/v2/server/sessions/"+v.sid+"/disconnect", "")
			if r.status != 200 && r.status != 404 {
				t.Fatalf("victim %d, disconnect after the failover: %d %s", i, r.status, r.body)
			}
			v.answers = append(v.answers, r)
		}
		v.wantClosed(t, "victim "+strconv.Itoa(i))
	}
	t.Logf("first red /readyz answered %v after the kill, green on every node %v after (master %s -> %s); meanwhile %d disconnect calls failed with 503, %d closed their socket",
		redAt.Round(time.Millisecond), green.Round(time.Millisecond), old, newMaster, failed, closed)
	if failed == 0 {
		t.Error("no disconnect call failed during the failover: the outage was not observed")
	}

	// Everything opened before is still up, and n0 is still itself to the other nodes.
	wantPong(t, oc, "after-failover")
	waitNodes(t, nodes, 3)
	for i, s := range nodes {
		if body := scrape(t, s); !containsLine(body, "sessiongate_cluster_dead_nodes_total 0") {
			t.Errorf("n%d expired nodes during the failover:\n%s", i, grepLines(body, "sessiongate_cluster_dead_nodes_total"))
		}
	}
	if !listed() {
		t.Fatalf("the presence of %s on n0 is gone after the failover", osid)
	}
	// No leave reached the follower: the next event it gets is the status update.
	sendText(t, oc, `{"cid":"u","status_update":{"status":"back"}}`)
	if raw, _ := json.Marshal(readJSON(t, follower.c)); !strings.Contains(string(raw), `"status":"back"`) {
		t.Fatalf("follower got %s, want the status update", raw)
	}

	// A fresh socket on n0, disconnected from n2.
	u := newClusterUser(t, nodes[0], "device-sentinel-after")
	ws := nodes[0].mustSocket(t, u.token)
	sid := sessionOn(t, nodes[0], u.id)
	r := nodes[2].serverCall(t, http.MethodPost, "/v2/server/sessions/"+sid+"/disconnect", `{"reason":"after failover"}`)
	if r.status != 200 || string(r.body) != `{"disconnected":1}` {
		t.Fatalf("disconnect after the failover: %d %s", r.status, r.body)
	}
	wantClose(t, ws, gateway.CloseDisconnected, "after failover")
}
