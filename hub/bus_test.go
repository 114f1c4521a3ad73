package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// busFactory makes the buses of one network for a test.
type busFactory struct {
	name string
	open func(t *testing.T) func(node string) Bus
}

func busFactories() []busFactory {
	return []busFactory{
		{"memory", func(*testing.T) func(string) Bus { return NewMemoryNetwork().Bus }},
		{"redis", func(t *testing.T) func(string) Bus {
			srv := redisproc.ForTest(t)
			return func(node string) Bus {
				return NewRedisBus(redisClient(t, srv.Addr()), RedisBusConfig{Node: node, Prefix: "bt:"})
			}
		}},
		{"cluster", func(t *testing.T) func(string) Bus {
			c := redisproc.ClusterForTest(t, 3)
			return func(node string) Bus {
				cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
				t.Cleanup(func() { cl.Close() })
				b := NewRedisBus(cl, RedisBusConfig{Node: node, Prefix: "bt:"})
				if !b.Sharded() {
					t.Fatal("a bus on Redis Cluster must use sharded pub/sub")
				}
				return b
			}
		}},
	}
}

func redisClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// runExchange starts x until the test ends.
func runExchange(t *testing.T, x *Exchange) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for x.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("exchange %s not ready: %v", x.Node(), x.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testHandlers(x *Exchange, casts chan<- string) {
	x.Handle("echo", func(_ context.Context, from string, body json.RawMessage) (any, error) {
		return map[string]any{"from": from, "at": x.Node(), "body": body}, nil
	})
	x.Handle("fail", func(context.Context, string, json.RawMessage) (any, error) {
		return nil, errors.New("it broke")
	})
	x.Handle("slow", func(context.Context, string, json.RawMessage) (any, error) {
		time.Sleep(2 * x.Timeout()) // answers, but after the caller gave up
		return "late", nil
	})
	x.Handle("deferred", func(context.Context, string, json.RawMessage) (any, error) {
		return &Deferred{Reply: "done", After: func() { casts <- "after " + x.Node() }}, nil
	})
	x.Handle("cast", func(_ context.Context, from string, body json.RawMessage) (any, error) {
		casts <- x.Node() + "<-" + from + ":" + string(body)
		return nil, nil
	})
}

func TestExchange(t *testing.T) {
	for _, f := range busFactories() {
		t.Run(f.name, func(t *testing.T) {
			bus := f.open(t)
			casts := make(chan string, 8)
			xs := map[string]*Exchange{}
			for _, n := range []string{"a", "b", "c"} {
				xs[n] = NewExchange(n, bus(n), 300*time.Millisecond)
				testHandlers(xs[n], casts)
				runExchange(t, xs[n])
			}
			a := xs["a"]
			ctx := context.Background()

			rep, err := a.Call(ctx, "b", "echo", map[string]int{"x": 1})
			if err != nil || string(rep) != `{"at":"b","body":{"x":1},"from":"a"}` {
				t.Fatalf("echo on b = %s, %v", rep, err)
			}
			rep, err = a.Call(ctx, "a", "echo", "self")
			if err != nil || string(rep) != `{"at":"a","body":"self","from":"a"}` {
				t.Fatalf("echo on a = %s, %v", rep, err)
			}
			res := a.CallAll(ctx, []string{"a", "b", "c", "gone"}, "echo", nil)
			for i, want := range []string{"a", "b", "c"} {
				if res[i].Err != nil || res[i].Node != want || !strings.Contains(string(res[i].Reply), `"at":"`+want+`"`) {
					t.Errorf("CallAll[%d] = %+v", i, res[i])
				}
			}
			var ne *NodeError
			if err := res[3].Err; !errors.As(err, &ne) || ne.Node != "gone" || !errors.Is(err, ErrUnreachable) {
				t.Errorf("call to a node without an inbox: %v, want ErrUnreachable naming it", err)
			}

			start := time.Now()
			_, err = a.Call(ctx, "c", "slow", nil)
			if !errors.Is(err, ErrTimeout) || !errors.As(err, &ne) || ne.Node != "c" {
				t.Errorf("slow call: %v, want ErrTimeout naming c", err)
			}
			if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
				t.Errorf("slow call took %v, want about the 300ms timeout", d)
			}
			var re *RemoteError
			if _, err := a.Call(ctx, "b", "fail", nil); !errors.As(err, &re) || re.Message != "it broke" {
				t.Errorf("failing handler: %v", err)
			}
			if _, err := a.Call(ctx, "b", "nope", nil); !errors.As(err, &re) || !strings.Contains(re.Message, "unknown op") {
				t.Errorf("unknown op: %v", err)
			}

			if err := a.Cast(ctx, "c", "cast", "hi"); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-casts:
				if got != `c<-a:"hi"` {
					t.Errorf("cast = %s", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("cast not delivered")
			}
			// A deferred reply is answered, then its After runs, remotely and locally.
			for _, n := range []string{"b", "a"} {
				if rep, err := a.Call(ctx, n, "deferred", nil); err != nil || string(rep) != `"done"` {
					t.Fatalf("deferred on %s = %s, %v", n, rep, err)
				}
				select {
				case got := <-casts:
					if got != "after "+n {
						t.Errorf("after = %s", got)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("After did not run")
				}
			}
			if err := a.Cast(ctx, "gone", "cast", nil); !errors.Is(err, ErrUnreachable) {
				t.Errorf("cast to a node without an inbox: %v", err)
			}

			// A batch runs on its node in its order, each cast as if sent alone; an unknown
			// op in it does not stop the rest. To this node it runs before CastBatch returns.
			batch := []Cast{{Op: "cast", Body: json.RawMessage(`1`)}, {Op: "nope"}, {Op: "cast", Body: json.RawMessage(`{"n":2}`)}}
			for _, n := range []string{"b", "a"} {
				if err := a.CastBatch(ctx, n, batch); err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{n + "<-a:1", n + `<-a:{"n":2}`} {
					select {
					case got := <-casts:
						if got != want {
							t.Errorf("batch cast on %s = %s, want %s", n, got, want)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("batch cast %s not delivered", want)
					}
				}
			}
			if err := a.CastBatch(ctx, "gone", batch); !errors.Is(err, ErrUnreachable) {
				t.Errorf("batch to a node without an inbox: %v", err)
			}
		})
	}
}

// A Redis restart: the bus reports not ready, Send fails loudly, and once Redis is back the
// subscription is restored (a new generation) and calls work again.
func TestRedisBusRestart(t *testing.T) {
	srv := redisproc.ForTest(t)
	cfg := func(n string) RedisBusConfig {
		return RedisBusConfig{Node: n, Prefix: "rb:", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			HealthEvery: 100 * time.Millisecond}
	}
	ba := NewRedisBus(redisClient(t, srv.Addr()), cfg("a"))
	bb := NewRedisBus(redisClient(t, srv.Addr()), cfg("b"))
	if ba.Ready() == nil || ba.Generation() != 0 {
		t.Fatal("a bus is ready before Run")
	}
	a, b := NewExchange("a", ba, time.Second), NewExchange("b", bb, time.Second)
	casts := make(chan string, 8)
	testHandlers(a, casts)
	testHandlers(b, casts)
	runExchange(t, a)
	runExchange(t, b)
	if _, err := a.Call(context.Background(), "b", "echo", nil); err != nil {
		t.Fatal(err)
	}
	gen := bb.Generation()

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b not ready", func() bool { return bb.Ready() != nil })
	if _, err := a.Call(context.Background(), "b", "echo", nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("call with Redis down: %v, want ErrUnreachable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both ready", func() bool { return ba.Ready() == nil && bb.Ready() == nil })
	if bb.Generation() <= gen {
		t.Errorf("generation %d after a restore, want more than %d", bb.Generation(), gen)
	}
	if _, err := a.Call(context.Background(), "b", "echo", nil); err != nil {
		t.Errorf("call after restart: %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRegistry(t *testing.T) {
	const ttl = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		open func(t *testing.T) Registry
	}{
		{"memory", func(*testing.T) Registry { return NewMemoryRegistry(ttl) }},
		{"redis", func(t *testing.T) Registry {
			return NewRedisRegistry(redisClient(t, redisproc.ForTest(t).Addr()), "rg:", ttl)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.open(t)
			ctx := context.Background()
			started := time.Now().UTC().Truncate(time.Millisecond)
			for _, id := range []string{"b", "a", "c"} {
				if err := r.Heartbeat(ctx, NodeInfo{ID: id, Address: id + ":7350", Sessions: len(id), StartedAt: started}); err != nil {
					t.Fatal(err)
				}
			}
			nodes, err := r.Nodes(ctx)
			if err != nil || len(nodes) != 3 || nodes[0].ID != "a" || nodes[2].ID != "c" {
				t.Fatalf("Nodes = %+v, %v", nodes, err)
			}
			if n := nodes[0]; n.Address != "a:7350" || n.Sessions != 1 || !n.StartedAt.Equal(started) ||
				time.Since(n.LastHeartbeatAt) > time.Second {
				t.Errorf("node a = %+v", n)
			}
			if err := r.Leave(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			// Only a keeps heartbeating: b expires, for exactly one caller.
			deadline := time.Now().Add(5 * time.Second)
			var gone []string
			for len(gone) == 0 && time.Now().Before(deadline) {
				if err := r.Heartbeat(ctx, NodeInfo{ID: "a"}); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				got := make([][]string, 4)
				for i := range got {
					wg.Go(func() { got[i], _ = r.Expire(ctx) })
				}
				wg.Wait()
				for _, g := range got {
					gone = append(gone, g...)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(gone) != 1 || gone[0] != "b" {
				t.Fatalf("expired %v, want [b] once", gone)
			}
			nodes, _ = r.Nodes(ctx)
			if len(nodes) != 1 || nodes[0].ID != "a" {
				t.Errorf("Nodes after expiry = %+v", nodes)
			}
			// b stays dead until cleaned up; a heartbeat under its id revives it instead.
			if dead, err := r.Dead(ctx); err != nil || len(dead) != 1 || dead[0] != "b" {
				t.Fatalf("Dead = %v, %v; want [b]", dead, err)
			}
			if err := r.Cleaned(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if dead, _ := r.Dead(ctx); len(dead) != 0 {
				t.Errorf("Dead after Cleaned = %v", dead)
			}
		})
	}
}
