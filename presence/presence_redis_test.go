package presence_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

func redisTrackers(t *testing.T, client func() redis.UniversalClient) (a, b *presence.Redis, ra, rb *recorder) {
	ra, rb = &recorder{}, &recorder{}
	a = presence.NewRedis(client(), presence.RedisConfig{Node: "n1", Prefix: "pt:", OnEvent: ra.on})
	b = presence.NewRedis(client(), presence.RedisConfig{Node: "n2", Prefix: "pt:", OnEvent: rb.on})
	return a, b, ra, rb
}

func TestRedisPresence(t *testing.T) {
	srv := redisproc.ForTest(t)
	cl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { cl.Close() })
	testRedisPresence(t, func() redis.UniversalClient { return cl }, func() { cl.FlushAll(context.Background()) })
}

func TestRedisClusterPresence(t *testing.T) {
	c := redisproc.ClusterForTest(t, 3)
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { cl.Close() })
	testRedisPresence(t, func() redis.UniversalClient { return cl }, func() {
		_ = cl.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error { return m.FlushAll(ctx).Err() })
	})
}

func withNode(p presence.Presence, node string) presence.Presence {
	p.Node = node
	return p
}

func testRedisPresence(t *testing.T, client func() redis.UniversalClient, flush func()) {
	ctx := context.Background()
	a, b, ra, rb := redisTrackers(t, client)
	u1a, u1b, u2 := p("u1", "s1", ""), p("u1", "s2", "away"), p("u2", "s3", "")

	if ok, err := a.Join(ctx, u1a); !ok || err != nil {
		t.Fatalf("join: %v %v", ok, err)
	}
	if ok, _ := a.Join(ctx, u1a); ok {
		t.Error("second join reported a change")
	}
	if err := b.Update(ctx, u1b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, u2); err != nil {
		t.Fatal(err)
	}
	if got := ra.take(); !reflect.DeepEqual(got, []presence.Event{{UserID: "u1", Joins: []presence.Presence{withNode(u1a, "n1")}}}) {
		t.Errorf("events on n1: %+v", got)
	}
	if got := rb.take(); len(got) != 2 {
		t.Errorf("events on n2: %+v", got)
	}
	// Each node lists the whole cluster.
	for _, tr := range []*presence.Redis{a, b} {
		got, err := tr.List(ctx, []string{"u1", "u2", "nobody"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sortPresences(got)
		want := []presence.Presence{withNode(u1a, "n1"), withNode(u1b, "n2"), withNode(u2, "n2")}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("List = %+v, want %+v", got, want)
		}
	}
	// Update reports the new presence as a join and the old one as a leave.
	if err := a.Update(ctx, p("u1", "s1", "playing")); err != nil {
		t.Fatal(err)
	}
	want := presence.Event{UserID: "u1", Joins: []presence.Presence{withNode(p("u1", "s1", "playing"), "n1")},
		Leaves: []presence.Presence{withNode(u1a, "n1")}}
	if got := ra.take(); !reflect.DeepEqual(got, []presence.Event{want}) {
		t.Errorf("update events %+v, want %+v", got, want)
	}
	if ok, _ := a.Leave(ctx, "u1", "s2"); ok {
		t.Error("n1 left a session of n2")
	}
	if ok, err := a.Leave(ctx, "u1", "s1"); !ok || err != nil {
		t.Fatalf("leave: %v %v", ok, err)
	}
	ra.take()

	// Redis restarted empty: Republish restores this node's presences, without events.
	flush()
	if err := b.Republish(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := a.List(ctx, []string{"u1", "u2"}, nil)
	sortPresences(got)
	if w := []presence.Presence{withNode(u1b, "n2"), withNode(u2, "n2")}; !reflect.DeepEqual(got, w) {
		t.Errorf("after republish List = %+v, want %+v", got, w)
	}
	if ev := rb.take(); len(ev) != 0 {
		t.Errorf("republish emitted %+v", ev)
	}

	// n2 dies: two nodes clean up at once, each leave is emitted exactly once.
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, tr := range []*presence.Redis{a, a} {
		wg.Go(func() {
			n, err := tr.RemoveNode(ctx, "n2")
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 2 {
		t.Errorf("removed %v, want 2 in all", counts)
	}
	leaves := ra.take()
	if len(leaves) != 2 {
		t.Errorf("leaves %+v, want 2", leaves)
	}
	if got, _ := a.List(ctx, []string{"u1", "u2"}, nil); len(got) != 0 {
		t.Errorf("presences of a dead node left: %+v", got)
	}
	// Follows are node-local.
	a.Follow("s9", []string{"u1"})
	if f := b.FollowersOf("u1", nil); len(f) != 0 {
		t.Errorf("n2 sees n1's follows: %v", f)
	}
	if f := a.FollowersOf("u1", nil); len(f) != 1 {
		t.Errorf("followers %v", f)
	}
	a.UnfollowAll("s9")
}

// Changes while Redis is down stand on the node: each emits its event as usual, and its write
// waits (Pending) until Republish, once Redis is back (empty), writes the mirror's state.
func TestRedisPresenceChangesDuringOutage(t *testing.T) {
	srv := redisproc.ForTest(t)
	cl := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { cl.Close() })
	rec := &recorder{}
	tr := presence.NewRedis(cl, presence.RedisConfig{Node: "n1", Prefix: "po:", OnEvent: rec.on})
	ctx := context.Background()
	if _, err := tr.Join(ctx, p("u1", "s2", "")); err != nil {
		t.Fatal(err)
	}
	rec.take()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if ok, err := tr.Join(ctx, p("u1", "s1", "")); !ok || err != nil {
		t.Fatalf("join with Redis down: %v %v, want it to stand", ok, err)
	}
	if err := tr.Update(ctx, p("u1", "s1", "away")); err != nil {
		t.Fatalf("update with Redis down: %v", err)
	}
	if ok, err := tr.Leave(ctx, "u1", "s2"); !ok || err != nil {
		t.Fatalf("leave with Redis down: %v %v", ok, err)
	}
	want := []presence.Event{
		{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "")}},
		{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "away")}, Leaves: []presence.Presence{p("u1", "s1", "")}},
		{UserID: "u1", Leaves: []presence.Presence{p("u1", "s2", "")}},
	}
	if got := rec.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events with Redis down:\n got %+v\nwant %+v", got, want)
	}
	if n := tr.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2 (s1 stored, s2 removed)", n)
	}
	if err := tr.Flush(ctx); err == nil {
		t.Fatal("Flush with Redis down did not fail")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Republish(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := tr.List(ctx, []string{"u1"}, nil)
	if err != nil || len(got) != 1 || got[0] != p("u1", "s1", "away") || tr.Pending() != 0 {
		t.Fatalf("after republish List = %+v, %v; %d pending", got, err, tr.Pending())
	}
	if ok, err := tr.Leave(ctx, "u1", "s1"); !ok || err != nil {
		t.Fatalf("leave: %v %v", ok, err)
	}
	if got, _ := tr.List(ctx, []string{"u1"}, nil); len(got) != 0 {
		t.Fatalf("after leave List = %+v", got)
	}
}

// A Redis that kept its data through the node's loss of it (a network cut): Flush removes the
// presence that left meanwhile and overwrites the status that changed, so no ghost or stale
// status stays for the other nodes to list.
func TestRedisPresenceFlushAfterCut(t *testing.T) {
	srv := redisproc.ForTest(t)
	var cut atomic.Bool
	cl := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if cut.Load() {
				return nil, errors.New("network cut (test)")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { cl.Close() })
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { admin.Close() })
	tr := presence.NewRedis(cl, presence.RedisConfig{Node: "n1", Prefix: "pc:"})
	other := presence.NewRedis(admin, presence.RedisConfig{Node: "n2", Prefix: "pc:"})
	ctx := context.Background()
	for _, sid := range []string{"s1", "s2"} {
		if _, err := tr.Join(ctx, p("u1", sid, "")); err != nil {
			t.Fatal(err)
		}
	}
	cut.Store(true)
	if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Leave(ctx, "u1", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Update(ctx, p("u1", "s1", "away")); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.List(ctx, []string{"u1"}, nil); len(got) != 2 || tr.Pending() != 2 {
		t.Fatalf("during the cut n2 lists %+v (want both, as Redis still has them), %d pending", got, tr.Pending())
	}
	cut.Store(false)
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.List(ctx, []string{"u1"}, nil); len(got) != 1 || got[0] != p("u1", "s1", "away") || tr.Pending() != 0 {
		t.Fatalf("after Flush n2 lists %+v, %d pending", got, tr.Pending())
	}
}
