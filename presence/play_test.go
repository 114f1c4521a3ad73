package presence_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

// playStores is one implementation pair under test: fresh stores per call.
type playStores struct {
	name  string
	play  func(t *testing.T) presence.PlaySessions
	games func(t *testing.T) presence.GameSessions
}

var prefixSeq atomic.Int64

// forEachStore runs fn as a subtest for the memory stores, for the Redis stores on a
// redis-server of the test's own, and on a Redis Cluster of three masters (each subtest with a
// prefix of its own).
func forEachStore(t *testing.T, fn func(t *testing.T, s playStores)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		fn(t, playStores{name: "memory",
			play:  func(*testing.T) presence.PlaySessions { return presence.NewMemoryPlay() },
			games: func(*testing.T) presence.GameSessions { return presence.NewMemoryGames() },
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redisproc.ForTest(t)
		fn(t, redisStores("redis", func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr()}) }))
	})
	// On Redis Cluster every script must run in one slot: the hash tags see to it.
	t.Run("redis cluster", func(t *testing.T) {
		cl := redisproc.ClusterForTest(t, 3)
		fn(t, redisStores("redis cluster", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		}))
	})
}

// redisStores makes Redis stores, each on a client of its own with a fresh prefix.
func redisStores(name string, newClient func() redis.UniversalClient) playStores {
	open := func(t *testing.T) (redis.UniversalClient, string) {
		c := newClient()
		t.Cleanup(func() { c.Close() })
		return c, "ptest" + strconv.FormatInt(prefixSeq.Add(1), 10) + ":"
	}
	return playStores{name: name,
		play: func(t *testing.T) presence.PlaySessions {
			c, p := open(t)
			return presence.NewRedisPlay(c, p)
		},
		games: func(t *testing.T) presence.GameSessions {
			c, p := open(t)
			return presence.NewRedisGames(c, p)
		},
	}
}

func TestPlaySessions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s playStores) {
		t.Run("lifecycle", func(t *testing.T) {
			t.Parallel()
			ps, ctx, u := s.play(t), context.Background(), uuid.NewString()
			must(t, ps.Initiate(ctx, u, time.Minute))
			wantErr(t, ps.Initiate(ctx, u, time.Minute), presence.ErrAlreadyInGame)
			must(t, ps.Heartbeat(ctx, u, time.Minute))
			must(t, ps.End(ctx, u))
			wantErr(t, ps.End(ctx, u), presence.ErrNoActiveSession)
			wantErr(t, ps.Heartbeat(ctx, u, time.Minute), presence.ErrNoActiveSession)
			must(t, ps.Initiate(ctx, u, time.Minute))
			wantErr(t, ps.Heartbeat(ctx, uuid.NewString(), time.Minute), presence.ErrNoActiveSession)
			// Deadline reports the active session's deadline, and nothing once it ended.
			before := time.Now()
			must(t, ps.Heartbeat(ctx, u, time.Minute))
			at, err := ps.Deadline(ctx, u)
			if err != nil || at.Before(before.Add(time.Minute-time.Second)) || at.After(time.Now().Add(time.Minute+time.Second)) {
				t.Fatalf("Deadline = %v, %v; want about a minute from now", at, err)
			}
			must(t, ps.End(ctx, u))
			if _, err := ps.Deadline(ctx, u); !errors.Is(err, presence.ErrNoActiveSession) {
				t.Fatalf("Deadline after End: %v, want ErrNoActiveSession", err)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			t.Parallel()
			ps, ctx, u := s.play(t), context.Background(), uuid.NewString()
			must(t, ps.Initiate(ctx, u, 150*time.Millisecond))
			time.Sleep(100 * time.Millisecond)
			must(t, ps.Heartbeat(ctx, u, 150*time.Millisecond)) // moves the deadline
			time.Sleep(100 * time.Millisecond)
			must(t, ps.Heartbeat(ctx, u, 150*time.Millisecond))
			time.Sleep(200 * time.Millisecond)
			// Past the deadline the session is gone at once, before any Expire.
			wantErr(t, ps.Heartbeat(ctx, u, time.Minute), presence.ErrNoActiveSession)
			wantErr(t, ps.End(ctx, u), presence.ErrNoActiveSession)
			must(t, ps.Initiate(ctx, u, time.Minute))
			if got, err := ps.Expire(ctx, 10); err != nil || len(got) != 0 {
				t.Fatalf("Expire after a new Initiate = %v, %v; want nothing", got, err)
			}
		})
		t.Run("expire", func(t *testing.T) {
			t.Parallel()
			ps, ctx := s.play(t), context.Background()
			a, b := uuid.NewString(), uuid.NewString()
			must(t, ps.Initiate(ctx, a, 50*time.Millisecond))
			must(t, ps.Initiate(ctx, b, time.Minute))
			start := time.Now()
			time.Sleep(80 * time.Millisecond)
			got, err := ps.Expire(ctx, 10)
			must(t, err)
			if len(got) != 1 || got[0].ID != a {
				t.Fatalf("Expire = %v, want only %s", got, a)
			}
			if d := got[0].Deadline.Sub(start); d < 0 || d > 60*time.Millisecond {
				t.Errorf("deadline %v after the initiate, want about 50ms", d)
			}
			if got, _ := ps.Expire(ctx, 10); len(got) != 0 {
				t.Fatalf("second Expire = %v, want nothing", got)
			}
			must(t, ps.Heartbeat(ctx, b, time.Minute))
		})
		t.Run("touch", func(t *testing.T) {
			t.Parallel()
			ps, ctx := s.play(t), context.Background()
			live, gone, none := uuid.NewString(), uuid.NewString(), uuid.NewString()
			must(t, ps.Initiate(ctx, live, 150*time.Millisecond))
			must(t, ps.Initiate(ctx, gone, 20*time.Millisecond))
			time.Sleep(50 * time.Millisecond)
			n, err := ps.Touch(ctx, []string{live, gone, none}, time.Minute)
			must(t, err)
			if n != 1 {
				t.Errorf("Touch extended %d, want 1 (an expired session is not revived)", n)
			}
			if n, _ := ps.Touch(ctx, []string{live}, time.Second); n != 0 {
				t.Errorf("Touch moved a deadline backwards")
			}
			time.Sleep(200 * time.Millisecond)
			must(t, ps.Heartbeat(ctx, live, time.Minute))
			wantErr(t, ps.Heartbeat(ctx, gone, time.Minute), presence.ErrNoActiveSession)
		})
		t.Run("touch batches", func(t *testing.T) {
			t.Parallel()
			ps, ctx := s.play(t), context.Background()
			users := make([]string, 2500) // more than one Redis batch
			for i := range users {
				users[i] = uuid.NewString()
			}
			for _, u := range users[:1200] {
				must(t, ps.Initiate(ctx, u, time.Second))
			}
			n, err := ps.Touch(ctx, users, time.Minute)
			must(t, err)
			if n != 1200 {
				t.Errorf("Touch extended %d, want 1200", n)
			}
		})
		t.Run("concurrent initiates", func(t *testing.T) {
			t.Parallel()
			ps, ctx, u := s.play(t), context.Background(), uuid.NewString()
			oneWins(t, 100, presence.ErrAlreadyInGame, func(int) error { return ps.Initiate(ctx, u, time.Minute) })
		})
		t.Run("concurrent expirers", func(t *testing.T) {
			t.Parallel()
			ps, ctx := s.play(t), context.Background()
			want := map[string]bool{}
			for range 300 {
				u := uuid.NewString()
				want[u] = true
				must(t, ps.Initiate(ctx, u, 30*time.Millisecond))
			}
			time.Sleep(60 * time.Millisecond)
			var mu sync.Mutex
			seen := map[string]int{}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						got, err := ps.Expire(ctx, 16)
						if err != nil {
							t.Error(err)
							return
						}
						if len(got) == 0 {
							return
						}
						mu.Lock()
						for _, e := range got {
							seen[e.ID]++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) != len(want) {
				t.Errorf("expired %d sessions, want %d", len(seen), len(want))
			}
			for id, n := range seen {
				if n != 1 || !want[id] {
					t.Errorf("session %s expired %d times (known %v), want once", id, n, want[id])
				}
			}
		})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

// oneWins makes n calls at once and checks that exactly one succeeds and that every other
// fails with lose.
func oneWins(t *testing.T, n int, lose error, call func(i int) error) {
	t.Helper()
	var won, lost atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch err := call(i); {
			case err == nil:
				won.Add(1)
			case errors.Is(err, lose):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || lost.Load() != int64(n-1) {
		t.Errorf("%d calls succeeded and %d failed with %v, want 1 and %d", won.Load(), lost.Load(), lose, n-1)
	}
}
