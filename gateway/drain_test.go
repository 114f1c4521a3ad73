package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDrainSpreadsCloses: on cancel a node with 50 sockets refuses new sockets (503) and turns
// /readyz red at once, closes the 50 sockets with 1001 spread over DrainPeriod, and Run returns
// shortly after the period.
func TestDrainSpreadsCloses(t *testing.T) {
	const n = 50
	period := time.Second
	cfg := testConfig()
	cfg.DrainPeriod = period
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-drain-spread", "")

	type closed struct {
		at     time.Time
		code   websocket.StatusCode
		reason string
		err    error
	}
	results := make(chan closed, n)
	var readers sync.WaitGroup
	for range n {
		c := s.mustSocket(t, sess.Token)
		readers.Add(1)
		go func() {
			defer readers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					r := closed{at: time.Now(), err: err}
					var ce websocket.CloseError
					if errors.As(err, &ce) {
						r.code, r.reason, r.err = ce.Code, ce.Reason, nil
					}
					results <- r
					return
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "50 sockets registered", func() bool { return s.srv.Hub().Len() == n })

	start := time.Now()
	s.cancel()
	waitFor(t, 200*time.Millisecond, "/readyz to turn red", func() bool {
		return s.tryStatus("/readyz") == http.StatusServiceUnavailable
	})
	r := s.do(t, http.MethodGet, "/readyz", "")
	wantJSON(t, decodeMap(t, r.body), `{"status":"unavailable","reason":"draining"}`)
	if !s.srv.Draining() {
		t.Error("Draining() is false during the drain")
	}

	// A new socket is refused with Nakama's error body before any upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	c, resp, err := s.dialSocket(ctx, "token="+query(sess.Token), nil)
	cancel()
	if err == nil {
		c.CloseNow()
		t.Fatal("a new socket was accepted during the drain")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new socket during the drain: %v, want 503", err)
	}
	r = s.do(t, http.MethodGet, "/ws?token="+query(sess.Token), "", "Connection", "Upgrade", "Upgrade", "websocket")
	wantError(t, r, http.StatusServiceUnavailable, 14, "Server is shutting down.")
	if d := time.Since(start); d > period/4 {
		t.Errorf("refusal checks took %v, too long to prove they ran during the drain", d)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	took := time.Since(start)
	if took > period+time.Second {
		t.Errorf("Run returned %v after cancel, want within DrainPeriod (%v) + 1s", took, period)
	}
	readers.Wait()
	close(results)
	var times []time.Time
	for r := range results {
		if r.err != nil {
			t.Errorf("socket ended with %v, want close 1001", r.err)
			continue
		}
		if r.code != websocket.StatusGoingAway || r.reason != "server shutting down" {
			t.Errorf("close %d %q, want 1001 %q", r.code, r.reason, "server shutting down")
		}
		times = append(times, r.at)
	}
	if len(times) != n {
		t.Fatalf("%d sockets closed with 1001, want %d", len(times), n)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	first, last := times[0].Sub(start), times[n-1].Sub(start)
	t.Logf("closes from %v to %v after cancel; Run returned after %v", first, last, took)
	if spread := last - first; spread < period/2 {
		t.Errorf("closes spread over %v (first %v, last %v), want at least half of %v", spread, first, last, period)
	}
	if first > period/4 {
		t.Errorf("first close %v after cancel, want well before the last (%v)", first, last)
	}
	// Evenly: no quarter of the period holds more than half of the closes.
	var quarters [4]int
	for _, at := range times {
		quarters[min(int(at.Sub(start)*4/period), 3)]++
	}
	for i, q := range quarters {
		if q > n/2 {
			t.Errorf("quarter %d of the period holds %d of %d closes: %v", i, q, n, quarters)
		}
	}
	// Run has returned: read the metrics from the registry rather than over HTTP.
	mfs, err := s.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	shutdowns := -1.0
	for _, mf := range mfs {
		if mf.GetName() != "sessiongate_socket_disconnects_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == "shutdown" {
					shutdowns = m.GetCounter().GetValue()
				}
			}
		}
	}
	if shutdowns != n {
		t.Errorf("sessiongate_socket_disconnects_total{cause=\"shutdown\"} = %v, want %d", shutdowns, n)
	}
}

// TestDrainBounded: a socket whose client never answers the close handshake cannot hold the
// node: Run returns within DrainPeriod + ShutdownTimeout even though WriteWait is longer.
func TestDrainBounded(t *testing.T) {
	cfg := testConfig()
	cfg.DrainPeriod = 300 * time.Millisecond
	cfg.ShutdownTimeout = 300 * time.Millisecond
	cfg.WriteWait = 10 * time.Second
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-drain-bounded", "")
	rawSocket(t, s, sess.Token) // never reads, never answers
	live := s.mustSocket(t, sess.Token)
	go func() { _, _, _ = live.Read(context.Background()) }()
	waitFor(t, 5*time.Second, "2 sockets registered", func() bool { return s.srv.Hub().Len() == 2 })
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > cfg.DrainPeriod+cfg.ShutdownTimeout+time.Second {
		t.Errorf("Run returned %v after cancel, want within %v + margin", d, cfg.DrainPeriod+cfg.ShutdownTimeout)
	}
	if n := s.srv.Hub().Len(); n != 0 {
		t.Errorf("%d sockets still registered after Run returned", n)
	}
}

// TestDrainWithoutSocketsIsImmediate: a node without sockets does not wait for DrainPeriod.
func TestDrainWithoutSocketsIsImmediate(t *testing.T) {
	cfg := testConfig()
	cfg.DrainPeriod = time.Minute
	s := startServer(t, cfg, memStores())
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to return without sockets", d)
	}
}

func decodeMap(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	return m
}
