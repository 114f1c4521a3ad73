package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// TestClusterFigures measures the cluster figures of BENCHMARKS.md on three real gateway
// processes sharing one redis-server, with the clients in this process. It asserts nothing
// about speed; it runs only when asked:
//
//	SESSIONGATE_CLUSTER_FIGURES=1 go test -run TestClusterFigures -count=1 -v ./gateway
func TestClusterFigures(t *testing.T) {
	if os.Getenv("SESSIONGATE_CLUSTER_FIGURES") == "" {
		t.Skip("set SESSIONGATE_CLUSTER_FIGURES=1 to measure the cluster figures")
	}
	srv := redisproc.ForTest(t)
	prefix := "fig" + strconv.FormatInt(clusterPrefixSeq.Add(1), 10) + ":"
	var procs []*nodeProcess
	for i := range 3 {
		procs = append(procs, startProcess(t, "fig"+strconv.Itoa(i), srv.URL(), prefix, 15*time.Second))
	}
	api := procs[0].ts
	waitNodes(t, []*testServer{api}, 3)

	t.Run("cross-node disconnect, idle", func(t *testing.T) { figureDisconnect(t, procs, 500) })
	t.Run("cross-node disconnect, 19k sockets held", func(t *testing.T) {
		stop := holdWithLoadtest(t, procs, 19000)
		defer stop()
		figureDisconnect(t, procs, 500)
	})
	waitQuiet(t, procs)
	t.Run("user-wide disconnect of 10k sockets", func(t *testing.T) {
		for run := range 3 {
			figureUserDisconnect(t, procs, 10000, run)
			waitQuiet(t, procs)
		}
	})
	t.Run("revocation propagation", func(t *testing.T) { figureRevocation(t, 300) })
}

// dialMany opens n sockets for token on s, in flight at most 64 at once.
func dialMany(t *testing.T, s *testServer, token string, n int) []*websocket.Conn {
	t.Helper()
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := s.dialSocket(ctx, "token="+query(token), nil)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d dials failed", f, n)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
	})
	return conns
}

func percentiles(d []time.Duration) string {
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("n=%d p50 %.2f ms  p99 %.2f ms  max %.2f ms", len(d),
		ms(at(0.50)), ms(at(0.99)), ms(d[len(d)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// clusterSockets is the sum of the nodes' socket counts at their last heartbeats.
func clusterSockets(t *testing.T, s *testServer) int {
	var nl struct {
		Nodes []struct {
			Sessions int `json:"sessions"`
		} `json:"nodes"`
	}
	decodeInto(t, s.serverCall(t, http.MethodGet, "/v2/server/nodes", ""), &nl)
	n := 0
	for _, node := range nl.Nodes {
		n += node.Sessions
	}
	return n
}

// waitQuiet waits until the nodes report no sockets, so that one figure's teardown does not
// load the next.
func waitQuiet(t *testing.T, procs []*nodeProcess) {
	waitFor(t, time.Minute, "no sockets left", func() bool { return clusterSockets(t, procs[0].ts) == 0 })
}

// holdWithLoadtest holds n idle sockets spread over the nodes with cmd/loadtest (its worker
// processes keep this process under its open-file limit) and returns a function that stops it.
func holdWithLoadtest(t *testing.T, procs []*nodeProcess, n int) func() {
	bin, err := buildBinary(t, "../cmd/loadtest")
	if err != nil {
		t.Fatalf("building cmd/loadtest: %v", err)
	}
	var targets []string
	for _, p := range procs {
		targets = append(targets, p.ts.url)
	}
	cmd := exec.Command(bin, "hold", "--clients", strconv.Itoa(n), "--rate", "4000", "--in-flight", "64",
		"--hold", "5m", "--settle", "1s", "--no-metrics", "--quiet", "--server-key", testServerKey,
		"--target", strings.Join(targets, ","))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	t.Cleanup(stop)
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d held sockets", n), func() bool {
		time.Sleep(500 * time.Millisecond)
		return clusterSockets(t, procs[0].ts) >= n
	})
	return stop
}

// figureDisconnect: a socket on node 0, the disconnect asked of node 2, timed from the API
// call to the close frame read by the client.
func figureDisconnect(t *testing.T, procs []*nodeProcess, n int) {
	api := procs[2].ts
	type target struct {
		c   *websocket.Conn
		sid string
	}
	targets := make([]target, n)
	for i := range targets {
		u := newClusterUser(t, procs[0].ts, fmt.Sprintf("device-fig-disc-%d-%d", time.Now().UnixNano(), i))
		targets[i].c = procs[0].ts.mustSocket(t, u.token)
		var got struct {
			Sessions []struct {
				SessionID string `json:"session_id"`
			} `json:"sessions"`
		}
		waitFor(t, 5*time.Second, "the session", func() bool {
			decodeInto(t, api.serverCall(t, http.MethodGet, "/v2/server/users/"+u.id+"/sessions", ""), &got)
			return len(got.Sessions) == 1
		})
		targets[i].sid = got.Sessions[0].SessionID
	}
	toClose := make([]time.Duration, 0, n)
	toAnswer := make([]time.Duration, 0, n)
	for _, tg := range targets {
		start := time.Now()
		r := api.serverCall(t, http.MethodPost, "/v2/server/sessions/"+tg.sid+"/disconnect", "")
		answered := time.Since(start)
		if r.status != 200 {
			t.Fatalf("disconnect: %d %s", r.status, r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := tg.c.Read(ctx)
		closed := time.Since(start)
		cancel()
		if websocket.CloseStatus(err) != gateway.CloseDisconnected {
			t.Fatalf("socket ended with %v, want close 4000", err)
		}
		toClose = append(toClose, closed)
		toAnswer = append(toAnswer, answered)
	}
	t.Logf("API call -> close frame at the client: %s", percentiles(toClose))
	t.Logf("API call -> acknowledged answer:        %s", percentiles(toAnswer))
}

// figureUserDisconnect: n sockets of one user spread evenly over the nodes, one user-wide
// disconnect asked of node 0, timed to the answer and to the last close seen by a client.
func figureUserDisconnect(t *testing.T, procs []*nodeProcess, n, run int) {
	u := newClusterUser(t, procs[0].ts, "device-fig-user-"+strconv.Itoa(run))
	var conns []*websocket.Conn
	for i, p := range procs {
		share := n / len(procs)
		if i == 0 {
			share += n % len(procs)
		}
		conns = append(conns, dialMany(t, p.ts, u.token, share)...)
	}
	var wg sync.WaitGroup
	var last atomic.Int64
	var wrong atomic.Int64
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _, err := c.Read(ctx)
			if websocket.CloseStatus(err) != gateway.CloseDisconnected {
				wrong.Add(1)
			}
			d := int64(time.Since(start))
			for {
				old := last.Load()
				if d <= old || last.CompareAndSwap(old, d) {
					break
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the readers are waiting
	start = time.Now()
	last.Store(0)
	r := procs[0].ts.serverCall(t, http.MethodPost, "/v2/server/users/"+u.id+"/disconnect", "")
	answered := time.Since(start)
	wg.Wait()
	var body struct {
		Disconnected int `json:"disconnected"`
	}
	_ = json.Unmarshal(r.body, &body)
	if r.status != 200 || body.Disconnected != n || wrong.Load() != 0 {
		t.Fatalf("user disconnect: %d %s, %d sockets ended otherwise", r.status, r.body, wrong.Load())
	}
	t.Logf("run %d: %d sockets over %d nodes: answered after %.1f ms, last close at the client after %.1f ms",
		run, n, len(procs), ms(answered), ms(time.Duration(last.Load())))
}

// figureRevocation: a user-wide logout asked of node 1 (in process, so that the other nodes'
// caches can be polled directly), timed until both other nodes refuse the token.
func figureRevocation(t *testing.T, n int) {
	srv := redisproc.ForTest(t)
	nodes := startNodes(t, singleRedis(srv.Addr()), 3, func(c *gateway.Config) { c.NodeTTL = 15 * time.Second })
	d := make([]time.Duration, 0, n)
	for i := range n {
		u := newClusterUser(t, nodes[0], "device-fig-revoke-"+strconv.Itoa(i))
		start := time.Now()
		r := nodes[1].serverCall(t, http.MethodPost, "/v2/server/users/"+u.id+"/logout", "")
		if r.status != 200 {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		for _, s := range []*testServer{nodes[0], nodes[2]} {
			for {
				if _, err := s.srv.Auth().VerifySession(u.token); err != nil {
					break
				}
				if time.Since(start) > 5*time.Second {
					t.Fatal("revocation not seen within 5s")
				}
				time.Sleep(20 * time.Microsecond)
			}
		}
		d = append(d, time.Since(start))
	}
	t.Logf("logout on node 1 -> token refused on nodes 0 and 2: %s", percentiles(d))
}
