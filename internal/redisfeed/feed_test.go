package redisfeed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// events records what a feed reports, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.log {
		if l == s {
			return true
		}
	}
	return false
}

func (e *events) count(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.log {
		if l == s {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A feed resyncs on every (re)subscription, delivers messages, reports the loss of its
// subscription when Redis drops it or dies, and comes back, for both pub/sub kinds.
func TestFeed(t *testing.T) {
	srv := redisproc.ForTest(t)
	for _, sharded := range []bool{false, true} {
		t.Run(map[bool]string{false: "subscribe", true: "ssubscribe"}[sharded], func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
			defer client.Close()
			var ev events
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, client, "feed-test", Options{Sharded: sharded, MinBackoff: 10 * time.Millisecond,
					MaxBackoff: 50 * time.Millisecond, HealthEvery: 100 * time.Millisecond}, Handler{
					Resync:  func(context.Context) error { ev.add("resync"); return nil },
					Message: func(p string) { ev.add("msg " + p) },
					Synced:  func() { ev.add("synced") },
					Lost:    func() { ev.add("lost") },
				})
			}()
			waitUntil(t, "synced", func() bool { return ev.has("synced") })
			if n, err := Publish(context.Background(), client, sharded, "feed-test", "one"); err != nil || n != 1 {
				t.Fatalf("publish: %d %v", n, err)
			}
			waitUntil(t, "the message", func() bool { return ev.has("msg one") })

			// Redis drops the subscription: lost, then resynced and synced again.
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			if err := admin.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
			admin.Close()
			waitUntil(t, "lost and synced again", func() bool { return ev.count("lost") == 1 && ev.count("synced") == 2 })
			if ev.count("resync") != 2 {
				t.Errorf("resyncs %d, want one per subscription", ev.count("resync"))
			}
			waitUntil(t, "a message after the restore", func() bool {
				n, _ := Publish(context.Background(), client, sharded, "feed-test", "two")
				return n == 1 && ev.has("msg two")
			})

			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		})
	}
}
