package loadtest

import (
	"context"
	"testing"
	"time"
)

func TestChurnSmall(t *testing.T) {
	api, metrics := startGateway(t)
	r, err := Run(context.Background(), Config{Scenario: "churn", Targets: []string{api}, MetricsURLs: []string{metrics}, Clients: 100,
		Rate: 250, Duration: 1200 * time.Millisecond, Lifetime: 300 * time.Millisecond, InFlight: 16, Create: true, Workers: 1,
		ScrapeInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 300 {
		t.Fatalf("churn planned %d sockets, want 250/s × 1.2 s = 300", r.Ops)
	}
	checkReport(t, r, 100)
	if c := r.Counts[CountClosed]; c != int64(r.Ops) || r.Latencies[HistClose].Count != uint64(r.Ops) {
		t.Errorf("closed by client %d (close latencies %d), want every one of %d", c, r.Latencies[HistClose].Count, r.Ops)
	}
	// 250/s for 1.2 s at 300 ms each: about 75 open at once, never all 300.
	var peak int64
	for _, s := range r.Timeline {
		peak = max(peak, s.Open)
	}
	if peak == 0 || peak >= int64(r.Ops) {
		t.Errorf("peak open sockets %d of %d: not churning", peak, r.Ops)
	}
	if len(r.ServerTimeline) == 0 {
		t.Error("no server timeline")
	}
}

// TestLogoutSmall logs clients out during a hold over two nodes on one Redis: every new socket
// with a logged-out token is refused on both nodes, the held sockets stay open and answer pings.
func TestLogoutSmall(t *testing.T) {
	apis, metrics := startRedisGateways(t, 2)
	const n = 150
	r, err := Run(context.Background(), Config{Scenario: "logout", Targets: apis, MetricsURLs: metrics, Clients: n, InFlight: 16,
		Hold: 2 * time.Second, PingInterval: time.Second, Create: true, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, n)
	if r.Counts[CountLoggedOut] != n || r.Counts[CountRefused] != 2*n || r.Latencies[HistRefused].Count != 2*n {
		t.Errorf("logged out %d, refused %d (want %d and %d); counts %v", r.Counts[CountLoggedOut], r.Counts[CountRefused], n, 2*n, r.Counts)
	}
	if r.Latencies[HistLogout].Count != n || r.ActSeconds <= 0 {
		t.Errorf("logout latencies %d, act %v s", r.Latencies[HistLogout].Count, r.ActSeconds)
	}
	// The sockets outlived the logout: still held at the end, pings answered after it.
	end := r.scrape("end")
	if end == nil || end.Values[mSockets] != n || r.PongsSeen == 0 {
		t.Errorf("after logout: server sockets %v, pongs %d", end, r.PongsSeen)
	}
}

func TestStatusAndFollow(t *testing.T) {
	api, metrics := startGateway(t)
	const n = 120
	r, err := Run(context.Background(), Config{Scenario: "hold", Targets: []string{api}, MetricsURLs: []string{metrics}, Clients: n,
		InFlight: 8, Hold: 500 * time.Millisecond, Status: "in lobby", Follow: 3, Create: true, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, n)
	if r.Latencies[HistStatusUpdate].Count != n || r.Latencies[HistStatusFollow].Count != n {
		t.Errorf("status updates %d, follows %d; want %d each", r.Latencies[HistStatusUpdate].Count, r.Latencies[HistStatusFollow].Count, n)
	}
	// Each client sees at least its own join (a socket follows its own user); at most that,
	// its three friends' joins, and their leaves while the sockets close at the end.
	if ev := r.Counts[CountStatusEvents]; ev < n || ev > 7*n {
		t.Errorf("%d status events for %d clients following 3 each", ev, n)
	}
}

// TestStorm stops one of two gateway processes under its clients (the second, so that the
// first node's series run through the whole HTML report), by SIGKILL and by SIGTERM (graceful
// drain), and checks that every client of that node reconnected to the other.
func TestStorm(t *testing.T) {
	for _, tc := range []struct {
		signal, code string
	}{{"kill", "none"}, {"term", "1001"}} {
		t.Run(tc.signal, func(t *testing.T) {
			a, b := startGatewayProcess(t, time.Second), startGatewayProcess(t, time.Second)
			const n = 200
			r, err := Run(context.Background(), Config{Scenario: "storm", Targets: []string{a.API, b.API}, MetricsURLs: []string{a.Metrics, b.Metrics},
				Clients: n, InFlight: 16, Hold: 4 * time.Second, PingInterval: time.Second, Create: true, Workers: 1,
				StormPID: b.cmd.Process.Pid, StormSignal: tc.signal, StormAfter: time.Second,
				BackoffMin: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, ScrapeInterval: 250 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, r, n)
			// Clients alternate over the targets: half were on the stopped node.
			if r.Dropped != n/2 || r.CloseCodes[tc.code] != n/2 || r.Counts[CountReconnected] != n/2 || r.Latencies[HistReconnect].Count != n/2 {
				t.Errorf("dropped %d, close codes %v, reconnected %d; want %d with code %s, all reconnected", r.Dropped, r.CloseCodes, r.Counts[CountReconnected], n/2, tc.code)
			}
			if r.Counts[CountAttempts] < n/2 || r.RecoverySeconds <= 0 || r.RecoverySeconds > 4 {
				t.Errorf("attempts %d, recovery %.2f s", r.Counts[CountAttempts], r.RecoverySeconds)
			}
			if end := r.scrape("end"); end == nil || end.Values[mSockets] != n {
				t.Errorf("the surviving node holds %v sockets at the end, want %d", end, n)
			}
			if tc.signal == "kill" {
				checkHTMLReport(t, r)
			}
		})
	}
}

// TestDisconnectUserWide disconnects all sockets of 2 shared accounts, spread over three
// gateway processes on one Redis, with one server API call per account on the last node. It
// skips as TestDisconnect does.
func TestDisconnectUserWide(t *testing.T) {
	nodes := startClusterProcesses(t, 3)
	const n = 120
	r, err := Run(context.Background(), Config{Scenario: "disconnect", Targets: nodes.APIs, MetricsURLs: nodes.Metrics, Clients: n, Users: 2,
		DisconnectBy: "user-wide", InFlight: 8, Create: true, Workers: 1, HTTPKey: NodesHTTPKey, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != n || r.Authed != n {
		t.Fatalf("authed %d, connected %d, want %d; errors %v", r.Authed, r.Connected, n, r.Errors)
	}
	if r.Errors["disconnect_http_404"] == 2 {
		t.Skipf("the gateway answers 404 on POST /v2/server/users/{id}/disconnect: the server API comes with the cluster issue (#4)")
	}
	checkReport(t, r, n)
	if r.Counts[CountDisconnected] != n || r.CloseCodes["4000"] != n || r.Counts[CountDisconnectAck] != n || r.Latencies[HistDisconnectAPI].Count != 2 {
		t.Errorf("disconnected %d, close codes %v, acknowledged %d, calls %d; want %d sockets in 2 calls", r.Counts[CountDisconnected], r.CloseCodes, r.Counts[CountDisconnectAck], r.Latencies[HistDisconnectAPI].Count, n)
	}
}

// TestDisconnect runs the disconnect scenario across two gateway processes on one Redis:
// clients on the first, calls (by session and by user, alternating) on the second. Until the
// server API of the cluster issue exists, the target answers 404 on its routes and the test
// skips after checking that the clients learnt their session ids.
func TestDisconnect(t *testing.T) {
	nodes := startClusterProcesses(t, 2)
	const n = 100
	r, err := Run(context.Background(), Config{Scenario: "disconnect", Targets: nodes.APIs[:1], APITarget: nodes.APIs[1], MetricsURLs: nodes.Metrics,
		Clients: n, InFlight: 8, Create: true, Workers: 1, HTTPKey: NodesHTTPKey, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected != n || r.Latencies[HistStatusUpdate].Count != n {
		t.Fatalf("connected %d with session ids %d, want %d; errors %v", r.Connected, r.Latencies[HistStatusUpdate].Count, n, r.Errors)
	}
	if r.Errors["disconnect_http_404"] == n {
		t.Skipf("the gateway answers 404 on POST /v2/server/{sessions,users}/{id}/disconnect: the server API comes with the cluster issue (#4)")
	}
	checkReport(t, r, n)
	if r.Counts[CountDisconnected] != n || r.CloseCodes["4000"] != n || r.Counts[CountDisconnectAck] != n || r.Latencies[HistDisconnect].Count != n {
		t.Errorf("disconnected %d, close codes %v, acknowledged %d; want %d", r.Counts[CountDisconnected], r.CloseCodes, r.Counts[CountDisconnectAck], n)
	}
	if d, c := r.Latencies[HistDisconnect], r.Latencies[HistDisconnectAPI]; d.P50 <= 0 || c.P50 <= 0 {
		t.Errorf("disconnect latency %+v, call %+v", d, c)
	}
}
