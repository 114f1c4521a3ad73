package presence_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sessiongate/sessiongate/presence"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []presence.Event
}

func (r *recorder) on(e presence.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) take() []presence.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

func p(user, session, status string) presence.Presence {
	return presence.Presence{UserID: user, SessionID: session, Username: "name-" + user, Status: status, Node: "n1"}
}

func sortPresences(ps []presence.Presence) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].SessionID < ps[j].SessionID })
}

func TestMemoryPresenceOps(t *testing.T) {
	ctx := context.Background()
	type step struct {
		op        string // join, update, leave
		p         presence.Presence
		wantOK    bool
		wantEvent *presence.Event
	}
	for _, tc := range []struct {
		name  string
		steps []step
		list  []string
		want  []presence.Presence
	}{
		{
			name: "join then list",
			steps: []step{
				{op: "join", p: p("u1", "s1", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "")}}},
			},
			list: []string{"u1", "u2"},
			want: []presence.Presence{p("u1", "s1", "")},
		},
		{
			name: "second join of a session is a no-op",
			steps: []step{
				{op: "join", p: p("u1", "s1", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "")}}},
				{op: "join", p: p("u1", "s1", "x"), wantOK: false},
			},
			list: []string{"u1"},
			want: []presence.Presence{p("u1", "s1", "")},
		},
		{
			name: "update reports the new presence as a join and the old one as a leave",
			steps: []step{
				{op: "join", p: p("u1", "s1", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "")}}},
				{op: "update", p: p("u1", "s1", "playing"), wantOK: true, wantEvent: &presence.Event{UserID: "u1",
					Joins: []presence.Presence{p("u1", "s1", "playing")}, Leaves: []presence.Presence{p("u1", "s1", "")}}},
			},
			list: []string{"u1"},
			want: []presence.Presence{p("u1", "s1", "playing")},
		},
		{
			name: "update of an offline session makes it online",
			steps: []step{
				{op: "update", p: p("u1", "s1", "away"), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "away")}}},
			},
			list: []string{"u1"},
			want: []presence.Presence{p("u1", "s1", "away")},
		},
		{
			name: "leave reports the last status",
			steps: []step{
				{op: "update", p: p("u1", "s1", "away"), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "away")}}},
				{op: "join", p: p("u1", "s2", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s2", "")}}},
				{op: "leave", p: p("u1", "s1", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Leaves: []presence.Presence{p("u1", "s1", "away")}}},
				{op: "leave", p: p("u1", "s1", ""), wantOK: false},
				{op: "leave", p: p("u9", "s9", ""), wantOK: false},
			},
			list: []string{"u1"},
			want: []presence.Presence{p("u1", "s2", "")},
		},
		{
			name: "several users",
			steps: []step{
				{op: "join", p: p("u1", "s1", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u1", Joins: []presence.Presence{p("u1", "s1", "")}}},
				{op: "join", p: p("u2", "s2", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u2", Joins: []presence.Presence{p("u2", "s2", "")}}},
				{op: "join", p: p("u2", "s3", ""), wantOK: true, wantEvent: &presence.Event{UserID: "u2", Joins: []presence.Presence{p("u2", "s3", "")}}},
			},
			list: []string{"u2", "u1", "u3"},
			want: []presence.Presence{p("u1", "s1", ""), p("u2", "s2", ""), p("u2", "s3", "")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			tr := presence.NewMemory(presence.MemoryConfig{Node: "n1", OnEvent: rec.on})
			for i, st := range tc.steps {
				var ok bool
				var err error
				switch st.op {
				case "join":
					ok, err = tr.Join(ctx, st.p)
				case "update":
					err, ok = tr.Update(ctx, st.p), true
				case "leave":
					ok, err = tr.Leave(ctx, st.p.UserID, st.p.SessionID)
				}
				if err != nil || ok != st.wantOK {
					t.Fatalf("step %d %s: ok=%v err=%v, want ok=%v", i, st.op, ok, err, st.wantOK)
				}
				got := rec.take()
				switch {
				case st.wantEvent == nil && len(got) != 0:
					t.Fatalf("step %d %s: events %+v, want none", i, st.op, got)
				case st.wantEvent != nil && (len(got) != 1 || !reflect.DeepEqual(got[0], *st.wantEvent)):
					t.Fatalf("step %d %s: events %+v, want %+v", i, st.op, got, *st.wantEvent)
				}
			}
			got, err := tr.List(ctx, tc.list, nil)
			if err != nil {
				t.Fatal(err)
			}
			sortPresences(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("List = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMemoryNodeDefaultAndValidation(t *testing.T) {
	ctx := context.Background()
	tr := presence.NewMemory(presence.MemoryConfig{Node: "node-a"})
	if _, err := tr.Join(ctx, presence.Presence{UserID: "u"}); err != presence.ErrInvalidPresence {
		t.Errorf("join without session: %v", err)
	}
	if err := tr.Update(ctx, presence.Presence{SessionID: "s"}); err != presence.ErrInvalidPresence {
		t.Errorf("update without user: %v", err)
	}
	if _, err := tr.Join(ctx, presence.Presence{UserID: "u", SessionID: "s"}); err != nil {
		t.Fatal(err)
	}
	got, _ := tr.List(ctx, []string{"u"}, nil)
	if len(got) != 1 || got[0].Node != "node-a" {
		t.Errorf("List = %+v, want node-a", got)
	}
}

func TestMemoryFollows(t *testing.T) {
	type op struct {
		kind    string // follow, unfollow, unfollowall
		session string
		users   []string
	}
	for _, tc := range []struct {
		name string
		ops  []op
		want map[string][]string // user -> followers
		n    int                 // follows left
	}{
		{"follow", []op{{"follow", "s1", []string{"a", "b"}}}, map[string][]string{"a": {"s1"}, "b": {"s1"}, "c": nil}, 2},
		{"follow twice", []op{{"follow", "s1", []string{"a", "a"}}, {"follow", "s1", []string{"a"}}}, map[string][]string{"a": {"s1"}}, 1},
		{"two followers", []op{{"follow", "s1", []string{"a"}}, {"follow", "s2", []string{"a", "b"}}}, map[string][]string{"a": {"s1", "s2"}, "b": {"s2"}}, 3},
		{"unfollow", []op{{"follow", "s1", []string{"a", "b"}}, {"unfollow", "s1", []string{"a", "zzz"}}}, map[string][]string{"a": nil, "b": {"s1"}}, 1},
		{"unfollow unknown session", []op{{"unfollow", "s1", []string{"a"}}}, map[string][]string{"a": nil}, 0},
		{"unfollow all", []op{{"follow", "s1", []string{"a", "b"}}, {"follow", "s2", []string{"a"}}, {"unfollowall", "s1", nil}},
			map[string][]string{"a": {"s2"}, "b": nil}, 1},
		{"unfollow everything one by one", []op{{"follow", "s1", []string{"a", "b"}}, {"unfollow", "s1", []string{"b", "a"}}, {"unfollowall", "s1", nil}},
			map[string][]string{"a": nil, "b": nil}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := presence.NewMemory(presence.MemoryConfig{Shards: 4})
			for _, o := range tc.ops {
				switch o.kind {
				case "follow":
					tr.Follow(o.session, o.users)
				case "unfollow":
					tr.Unfollow(o.session, o.users)
				case "unfollowall":
					tr.UnfollowAll(o.session)
				}
			}
			for user, want := range tc.want {
				got := tr.FollowersOf(user, nil)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("FollowersOf(%s) = %v, want %v", user, got, want)
				}
			}
			if _, n := tr.Counts(); n != tc.n {
				t.Errorf("follows = %d, want %d", n, tc.n)
			}
		})
	}
}

// TestMemoryConcurrent hammers every operation from many goroutines (run with -race) and
// checks that everything is cleaned up and that each session's events came in order.
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	last := map[string]string{} // session -> last event kind
	bad := 0
	tr := presence.NewMemory(presence.MemoryConfig{Shards: 8, OnEvent: func(e presence.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, j := range e.Joins {
			last[j.SessionID] = "join"
		}
		if len(e.Joins) == 0 {
			for _, l := range e.Leaves {
				if last[l.SessionID] != "join" {
					bad++
				}
				last[l.SessionID] = "leave"
			}
		}
	}})
	const workers, rounds, users = 16, 200, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				uid := fmt.Sprintf("u%d", (w+r)%users)
				sid := fmt.Sprintf("s%d-%d", w, r)
				if _, err := tr.Join(ctx, presence.Presence{UserID: uid, SessionID: sid}); err != nil {
					t.Error(err)
					return
				}
				tr.Follow(sid, []string{fmt.Sprintf("u%d", r%users), uid})
				_ = tr.Update(ctx, presence.Presence{UserID: uid, SessionID: sid, Status: "x"})
				_ = tr.FollowersOf(uid, nil)
				_, _ = tr.List(ctx, []string{uid}, nil)
				tr.Unfollow(sid, []string{uid})
				if ok, _ := tr.Leave(ctx, uid, sid); !ok {
					t.Errorf("leave %s: not online", sid)
				}
				tr.UnfollowAll(sid)
			}
		})
	}
	wg.Wait()
	if pres, follows := tr.Counts(); pres != 0 || follows != 0 {
		t.Errorf("left %d presences and %d follows", pres, follows)
	}
	for u := range users {
		if f := tr.FollowersOf(fmt.Sprintf("u%d", u), nil); len(f) != 0 {
			t.Errorf("u%d still has followers %v", u, f)
		}
	}
	if bad != 0 {
		t.Errorf("%d leaves without a preceding join", bad)
	}
}

// The callback may call back into the tracker (no lock is held).
func TestMemoryCallbackReentry(t *testing.T) {
	ctx := context.Background()
	var tr *presence.Memory
	var followers []string
	tr = presence.NewMemory(presence.MemoryConfig{OnEvent: func(e presence.Event) {
		followers = tr.FollowersOf(e.UserID, followers[:0])
		_, _ = tr.List(ctx, []string{e.UserID}, nil)
	}})
	tr.Follow("s2", []string{"u1"})
	if _, err := tr.Join(ctx, presence.Presence{UserID: "u1", SessionID: "s1"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(followers, []string{"s2"}) {
		t.Errorf("followers %v", followers)
	}
}

func BenchmarkMemoryJoinLeave(b *testing.B) {
	ctx := context.Background()
	tr := presence.NewMemory(presence.MemoryConfig{OnEvent: func(presence.Event) {}})
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			id := fmt.Sprint(i)
			_, _ = tr.Join(ctx, presence.Presence{UserID: id, SessionID: id})
			_, _ = tr.Leave(ctx, id, id)
		}
	})
}
