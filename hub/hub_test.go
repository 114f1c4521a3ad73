package hub

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeConn stands in for gateway's socket: a bounded queue modelled by a counter, and an
// optional hook run on Close (the real socket unregisters itself when it closes).
type fakeConn struct {
	sid, uid string
	limit    int64 // Send fails and closes the conn once this many were queued; 0 = unbounded

	sent    atomic.Int64
	closes  atomic.Int64
	closed  atomic.Bool
	code    atomic.Int64
	onClose func(*fakeConn)
}

func newConn(sid, uid string) *fakeConn { return &fakeConn{sid: sid, uid: uid} }

func (c *fakeConn) SessionID() string { return c.sid }
func (c *fakeConn) UserID() string    { return c.uid }

func (c *fakeConn) Send(msg []byte) bool {
	if c.closed.Load() {
		return false
	}
	if c.limit > 0 && c.sent.Add(1) > c.limit {
		c.Close(4000, "slow consumer")
		return false
	}
	if c.limit == 0 {
		c.sent.Add(1)
	}
	return true
}

func (c *fakeConn) Close(code int, reason string) {
	c.closes.Add(1)
	if c.closed.Swap(true) {
		return
	}
	c.code.Store(int64(code))
	if c.onClose != nil {
		c.onClose(c)
	}
}

// valueConn is a Conn whose dynamic type is not comparable; == on two of them panics.
type valueConn struct {
	ids []string
}

func (v valueConn) SessionID() string { return v.ids[0] }
func (v valueConn) UserID() string    { return v.ids[1] }
func (valueConn) Send([]byte) bool    { return true }
func (valueConn) Close(int, string)   {}

func mustNew(t testing.TB, shards int) *Hub {
	t.Helper()
	h, err := New(Config{Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkInvariants verifies, on a quiescent hub, that the session index and the user index hold
// exactly the same sockets and that Len agrees.
func checkInvariants(t *testing.T, h *Hub) {
	t.Helper()
	bySession := map[Conn]string{} // conn → user id recorded at Register
	for i := range h.sessions {
		ss := &h.sessions[i]
		ss.mu.RLock()
		for sid, e := range ss.m {
			if h.sessionShard(sid) != ss {
				t.Errorf("session %q in wrong shard %d", sid, i)
			}
			if e.c.SessionID() != sid {
				t.Errorf("session %q maps to conn with id %q", sid, e.c.SessionID())
			}
			bySession[e.c] = e.uid
		}
		ss.mu.RUnlock()
	}
	byUser := map[Conn]string{}
	for i := range h.users {
		us := &h.users[i]
		us.mu.RLock()
		for uid, set := range us.m {
			if h.userShard(uid) != us {
				t.Errorf("user %q in wrong shard %d", uid, i)
			}
			if set.len() == 0 {
				t.Errorf("user %q has an empty set left behind", uid)
			}
			for _, c := range set.appendTo(nil) {
				if prev, dup := byUser[c]; dup {
					t.Errorf("conn %q indexed under users %q and %q", c.SessionID(), prev, uid)
				}
				byUser[c] = uid
			}
		}
		us.mu.RUnlock()
	}
	if len(bySession) != len(byUser) {
		t.Errorf("session index has %d conns, user index %d", len(bySession), len(byUser))
	}
	for c, uid := range bySession {
		if got, ok := byUser[c]; !ok || got != uid {
			t.Errorf("conn %q: user index has %q (present %v), want %q", c.SessionID(), got, ok, uid)
		}
	}
	if h.Len() != len(bySession) {
		t.Errorf("Len() = %d, index holds %d", h.Len(), len(bySession))
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		shards int
		want   int // 0: expect ErrInvalidConfig
	}{
		{0, DefaultShards()},
		{1, 1},
		{2, 2},
		{64, 64},
		{MaxShards, MaxShards},
		{-1, 0},
		{-4, 0},
		{3, 0},
		{6, 0},
		{100, 0},
		{MaxShards * 2, 0},
		{int(^uint(0) >> 1), 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.shards), func(t *testing.T) {
			h, err := New(Config{Shards: tt.shards})
			if tt.want == 0 {
				if !errors.Is(err, ErrInvalidConfig) || h != nil {
					t.Fatalf("New(%d) = %v, %v; want nil, ErrInvalidConfig", tt.shards, h, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Shards() != tt.want {
				t.Fatalf("Shards() = %d, want %d", h.Shards(), tt.want)
			}
		})
	}
}

func TestDefaultShards(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 4, 5, 8, 12, 64, 1000, 5000} {
		runtime.GOMAXPROCS(procs)
		n := DefaultShards()
		if n&(n-1) != 0 || n > MaxShards {
			t.Errorf("GOMAXPROCS=%d: %d is not a power of two ≤ MaxShards", procs, n)
		}
		want := shardsPerP * procs
		if n < min(want, MaxShards) || (n > want && n/2 >= want) {
			t.Errorf("GOMAXPROCS=%d: DefaultShards() = %d, want next power of two ≥ %d", procs, n, want)
		}
	}
}

func TestShardPadding(t *testing.T) {
	for name, size := range map[string]uintptr{
		"sessionShard": unsafe.Sizeof(sessionShard{}),
		"userShard":    unsafe.Sizeof(userShard{}),
		"paddedCount":  unsafe.Sizeof(paddedCount{}),
	} {
		if size%cacheLine != 0 {
			t.Errorf("%s is %d bytes, not a multiple of %d", name, size, cacheLine)
		}
	}
}

func TestRegisterGetUnregister(t *testing.T) {
	h := mustNew(t, 4)
	a, b := newConn("s1", "u1"), newConn("s2", "u2")
	for _, c := range []*fakeConn{a, b} {
		if err := h.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := h.Get("s1"); !ok || got != a {
		t.Fatalf("Get(s1) = %v, %v", got, ok)
	}
	if _, ok := h.Get("nope"); ok {
		t.Fatal("Get(nope) found something")
	}
	if h.Len() != 2 {
		t.Fatalf("Len() = %d", h.Len())
	}
	checkInvariants(t, h)

	if !h.Unregister(a) {
		t.Fatal("Unregister(a) = false")
	}
	if h.Unregister(a) {
		t.Fatal("second Unregister(a) = true")
	}
	if h.Unregister(nil) {
		t.Fatal("Unregister(nil) = true")
	}
	if _, ok := h.Get("s1"); ok {
		t.Fatal("s1 still registered")
	}
	if n := h.UserCount("u1"); n != 0 {
		t.Fatalf("UserCount(u1) = %d", n)
	}
	if h.Len() != 1 {
		t.Fatalf("Len() = %d", h.Len())
	}
	checkInvariants(t, h)
}

func TestRegisterInvalid(t *testing.T) {
	h := mustNew(t, 2)
	tests := []struct {
		name string
		c    Conn
		want error
	}{
		{"nil", nil, ErrInvalidConn},
		{"empty session", newConn("", "u"), ErrInvalidConn},
		{"empty user", newConn("s", ""), ErrInvalidConn},
		{"uncomparable", valueConn{ids: []string{"s", "u"}}, ErrInvalidConn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Register(tt.c); !errors.Is(err, tt.want) {
				t.Fatalf("Register = %v, want %v", err, tt.want)
			}
			dst := []Conn{newConn("x", "y")}
			got, err := h.RegisterExclusive(tt.c, dst)
			if !errors.Is(err, tt.want) || len(got) != 1 {
				t.Fatalf("RegisterExclusive = %v, %v", got, err)
			}
		})
	}
	if h.Len() != 0 {
		t.Fatalf("Len() = %d after invalid registers", h.Len())
	}
	// An uncomparable conn is never registered, so handing one to Unregister must not panic
	// even when its session id is taken by a registered conn.
	if err := h.Register(newConn("s", "u")); err != nil {
		t.Fatal(err)
	}
	if h.Unregister(valueConn{ids: []string{"s", "u"}}) {
		t.Fatal("Unregister of a foreign conn succeeded")
	}
	checkInvariants(t, h)
}

func TestRegisterDuplicate(t *testing.T) {
	h := mustNew(t, 2)
	a, b := newConn("s", "u1"), newConn("s", "u2")
	if err := h.Register(a); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fakeConn{a, b} {
		if err := h.Register(c); !errors.Is(err, ErrDuplicateSession) {
			t.Fatalf("Register(dup) = %v", err)
		}
	}
	if got, _ := h.Get("s"); got != a {
		t.Fatal("duplicate replaced the original")
	}
	if h.UserCount("u1") != 1 || h.UserCount("u2") != 0 || h.Len() != 1 {
		t.Fatalf("counts after duplicate: u1=%d u2=%d len=%d", h.UserCount("u1"), h.UserCount("u2"), h.Len())
	}
	checkInvariants(t, h)
}

func TestUnregisterReplacedConn(t *testing.T) {
	h := mustNew(t, 8)
	old := newConn("s", "u-old")
	if err := h.Register(old); err != nil {
		t.Fatal(err)
	}
	if !h.Unregister(old) {
		t.Fatal("Unregister(old) = false")
	}
	// The session id is reused by a new socket (even for another user) before the old socket's
	// teardown runs its Unregister again.
	repl := newConn("s", "u-new")
	if err := h.Register(repl); err != nil {
		t.Fatal(err)
	}
	if h.Unregister(old) {
		t.Fatal("late Unregister(old) removed the replacement")
	}
	if h.Unregister(newConn("s", "u-new")) {
		t.Fatal("Unregister of an equal-looking but different conn succeeded")
	}
	if got, ok := h.Get("s"); !ok || got != repl {
		t.Fatalf("Get(s) = %v, %v; want the replacement", got, ok)
	}
	if h.UserCount("u-old") != 0 || h.UserCount("u-new") != 1 {
		t.Fatalf("user counts: old=%d new=%d", h.UserCount("u-old"), h.UserCount("u-new"))
	}
	checkInvariants(t, h)
}

// TestUnregisterUsesRecordedUser: a Conn whose UserID changes after Register must still be
// removed from the user it was indexed under.
func TestUnregisterUsesRecordedUser(t *testing.T) {
	h := mustNew(t, 8)
	c := newConn("s", "u1")
	if err := h.Register(c); err != nil {
		t.Fatal(err)
	}
	c.uid = "u2"
	if !h.Unregister(c) {
		t.Fatal("Unregister = false")
	}
	if h.UserCount("u1") != 0 {
		t.Fatal("stale entry under the original user")
	}
	checkInvariants(t, h)
}

func sessionIDs(conns []Conn) []string {
	ids := make([]string, len(conns))
	for i, c := range conns {
		ids[i] = c.SessionID()
	}
	slices.Sort(ids)
	return ids
}

func TestUserIndex(t *testing.T) {
	// Sizes straddle the small-slice/map switch.
	for _, n := range []int{1, 2, 3, userSmallMax, userSmallMax + 1, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := mustNew(t, 4)
			other := newConn("other", "v")
			if err := h.Register(other); err != nil {
				t.Fatal(err)
			}
			live := map[string]*fakeConn{}
			for i := range n {
				c := newConn(fmt.Sprintf("s%02d", i), "u")
				if err := h.Register(c); err != nil {
					t.Fatal(err)
				}
				live[c.sid] = c
			}
			// Remove in random order, checking the set after every step.
			order := make([]string, 0, n)
			for sid := range live {
				order = append(order, sid)
			}
			rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for step := 0; ; step++ {
				want := make([]string, 0, len(live))
				for sid := range live {
					want = append(want, sid)
				}
				slices.Sort(want)
				if got := sessionIDs(h.UserConns("u", nil)); !slices.Equal(got, want) {
					t.Fatalf("step %d: UserConns = %v, want %v", step, got, want)
				}
				if got := h.UserCount("u"); got != len(live) {
					t.Fatalf("step %d: UserCount = %d, want %d", step, got, len(live))
				}
				checkInvariants(t, h)
				if step == len(order) {
					break
				}
				if !h.Unregister(live[order[step]]) {
					t.Fatalf("Unregister(%s) = false", order[step])
				}
				delete(live, order[step])
			}
			if got := h.UserConns("v", nil); len(got) != 1 || got[0] != other {
				t.Fatalf("other user disturbed: %v", got)
			}
		})
	}
}

func TestUserConnsAppends(t *testing.T) {
	h := mustNew(t, 2)
	a, b := newConn("a", "u"), newConn("b", "u")
	_ = h.Register(a)
	_ = h.Register(b)
	prefix := newConn("p", "x")
	got := h.UserConns("u", []Conn{prefix})
	if len(got) != 3 || got[0] != prefix {
		t.Fatalf("UserConns did not append: %v", got)
	}
	if got := h.UserConns("nobody", nil); got != nil {
		t.Fatalf("UserConns(nobody) = %v", got)
	}
}

func TestSendAndDisconnect(t *testing.T) {
	h := mustNew(t, 4)
	ok1, ok2 := newConn("s1", "u"), newConn("s2", "u")
	full := newConn("s3", "u")
	full.limit = 1
	lone := newConn("s4", "w")
	for _, c := range []*fakeConn{ok1, ok2, full, lone} {
		if err := h.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte("hi")
	sends := []struct {
		user string
		want int
	}{
		{"u", 3}, // full still had room for one
		{"u", 2}, // full overflows and closes itself
		{"u", 2}, // full is closing
		{"w", 1},
		{"nobody", 0},
	}
	for i, s := range sends {
		if got := h.SendToUser(s.user, msg); got != s.want {
			t.Fatalf("send %d: SendToUser(%s) = %d, want %d", i, s.user, got, s.want)
		}
	}
	if full.code.Load() != 4000 {
		t.Fatalf("slow consumer closed with %d", full.code.Load())
	}
	if !h.SendToSession("s4", msg) || h.SendToSession("s3", msg) || h.SendToSession("nope", msg) {
		t.Fatal("SendToSession results wrong")
	}

	if h.DisconnectSession("nope", 4001, "x") {
		t.Fatal("DisconnectSession(nope) = true")
	}
	if !h.DisconnectSession("s4", 4001, "bye") || lone.code.Load() != 4001 {
		t.Fatal("DisconnectSession(s4) did not close")
	}
	if _, ok := h.Get("s4"); !ok {
		t.Fatal("DisconnectSession unregistered; that is the socket's job")
	}
	if n := h.DisconnectUser("u", 4002, "kick"); n != 3 {
		t.Fatalf("DisconnectUser = %d, want 3", n)
	}
	if ok1.code.Load() != 4002 || ok2.code.Load() != 4002 || full.code.Load() != 4000 {
		t.Fatal("close codes: first close must win")
	}
	if n := h.DisconnectUser("nobody", 4002, "kick"); n != 0 {
		t.Fatalf("DisconnectUser(nobody) = %d", n)
	}
}

// selfUnregistering returns conns whose Close unregisters them from h, as gateway's do.
func selfUnregistering(h *Hub, n, users int) []*fakeConn {
	conns := make([]*fakeConn, n)
	for i := range conns {
		conns[i] = newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i%users))
		conns[i].onClose = func(c *fakeConn) { h.Unregister(c) }
	}
	return conns
}

func TestCallbacksMayReenter(t *testing.T) {
	tests := []struct {
		name string
		run  func(h *Hub, conns []*fakeConn)
	}{
		{"Range", func(h *Hub, _ []*fakeConn) {
			h.Range(func(c Conn) bool { c.Close(1001, "shutdown"); return true })
		}},
		{"RangeShard", func(h *Hub, _ []*fakeConn) {
			for i := range h.Shards() {
				h.RangeShard(i, func(c Conn) bool { c.Close(1001, "shutdown"); return true })
			}
		}},
		{"DisconnectUser", func(h *Hub, conns []*fakeConn) {
			for _, c := range conns {
				h.DisconnectUser(c.uid, 4000, "kick")
			}
		}},
		{"DisconnectSession", func(h *Hub, conns []*fakeConn) {
			for _, c := range conns {
				h.DisconnectSession(c.sid, 4000, "kick")
			}
		}},
		{"SendToUser overflow", func(h *Hub, conns []*fakeConn) {
			for _, c := range conns {
				c.limit = 1
			}
			for range 2 {
				for _, c := range conns {
					h.SendToUser(c.uid, []byte("x"))
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustNew(t, 4)
			conns := selfUnregistering(h, 200, 30)
			for _, c := range conns {
				if err := h.Register(c); err != nil {
					t.Fatal(err)
				}
			}
			tt.run(h, conns)
			if h.Len() != 0 {
				t.Fatalf("Len() = %d after closing everything", h.Len())
			}
			checkInvariants(t, h)
		})
	}
}

func TestRangeVisitsEachOnceAndStops(t *testing.T) {
	h := mustNew(t, 8)
	const n = 300
	for i := range n {
		_ = h.Register(newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i%7)))
	}
	seen := map[Conn]int{}
	h.Range(func(c Conn) bool { seen[c]++; return true })
	if len(seen) != n {
		t.Fatalf("Range saw %d conns, want %d", len(seen), n)
	}
	for c, k := range seen {
		if k != 1 {
			t.Fatalf("Range saw %s %d times", c.SessionID(), k)
		}
	}

	clear(seen)
	var buf []Conn
	for i := range h.Shards() {
		buf = h.AppendShard(i, buf[:0])
		for _, c := range buf {
			seen[c]++
		}
		k := 0
		h.RangeShard(i, func(Conn) bool { k++; return true })
		if k != len(buf) {
			t.Fatalf("shard %d: RangeShard saw %d, AppendShard %d", i, k, len(buf))
		}
	}
	if len(seen) != n {
		t.Fatalf("shards cover %d conns, want %d", len(seen), n)
	}

	calls := 0
	h.Range(func(Conn) bool { calls++; return calls < 5 })
	if calls != 5 {
		t.Fatalf("Range kept going after false: %d calls", calls)
	}

	for _, i := range []int{-1, h.Shards(), 1 << 40} {
		if got := h.AppendShard(i, buf[:0]); len(got) != 0 {
			t.Fatalf("AppendShard(%d) appended %d", i, len(got))
		}
		h.RangeShard(i, func(Conn) bool { t.Fatalf("RangeShard(%d) called fn", i); return false })
	}
}

func TestRegisterExclusive(t *testing.T) {
	h := mustNew(t, 4)
	a, b := newConn("a", "u"), newConn("b", "u")
	others, err := h.RegisterExclusive(a, nil)
	if err != nil || len(others) != 0 {
		t.Fatalf("first: %v, %v", others, err)
	}
	others, err = h.RegisterExclusive(b, nil)
	if err != nil || len(others) != 1 || others[0] != a {
		t.Fatalf("second: %v, %v", others, err)
	}
	if _, err := h.RegisterExclusive(newConn("a", "u"), nil); !errors.Is(err, ErrDuplicateSession) {
		t.Fatalf("duplicate: %v", err)
	}

	// Many sockets of one user racing, each closing what it is handed: exactly one survives.
	for round := range 20 {
		h := mustNew(t, 4)
		conns := selfUnregistering(h, 16, 1)
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				others, err := h.RegisterExclusive(c, nil)
				if err != nil {
					t.Error(err)
				}
				for _, o := range others {
					o.Close(4000, "single_socket")
				}
			})
		}
		wg.Wait()
		if n := h.UserCount("u0"); n != 1 {
			t.Fatalf("round %d: %d sockets survived, want 1", round, n)
		}
		checkInvariants(t, h)
	}
}

func TestZeroAllocs(t *testing.T) {
	h := mustNew(t, 8)
	for i := range 100 {
		_ = h.Register(newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i%40)))
	}
	for i := range userSmallMax + 4 { // a user past the slice/map switch
		_ = h.Register(newConn(fmt.Sprintf("big%d", i), "big"))
	}
	buf := make([]Conn, 0, 64)
	msg := []byte("x")
	ops := map[string]func(){
		"Get":               func() { h.Get("s7") },
		"Get miss":          func() { h.Get("none") },
		"UserConns":         func() { buf = h.UserConns("u3", buf[:0]) },
		"UserConns big":     func() { buf = h.UserConns("big", buf[:0]) },
		"UserCount":         func() { h.UserCount("u3") },
		"Len":               func() { h.Len() },
		"SendToSession":     func() { h.SendToSession("s7", msg) },
		"SendToUser":        func() { h.SendToUser("u3", msg) },
		"DisconnectSession": func() { h.DisconnectSession("s8", 1000, "") },
		"DisconnectUser":    func() { h.DisconnectUser("u5", 1000, "") },
		"AppendShard":       func() { buf = h.AppendShard(1, buf[:0]) },
	}
	for name, op := range ops {
		if n := testing.AllocsPerRun(100, op); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}

// TestConcurrentStorm races every operation over a few users and reused session ids, then checks
// that the two indexes agree and that unregistering everything leaves nothing behind.
func TestConcurrentStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("storm skipped in -short")
	}
	// Few users put many sessions of one user in flight at once (and their sets past the
	// slice/map switch); many users keep the sets small.
	for _, users := range []int{5, 400} {
		t.Run(fmt.Sprintf("users=%d", users), func(t *testing.T) { storm(t, users) })
	}
}

func storm(t *testing.T, users int) {
	const (
		workers = 8
		conns   = 64 // per worker
		iters   = 3000
	)
	h := mustNew(t, 4) // few shards: more collisions between session and user locks
	// Two conns per session id (an old and a replacement socket) and some conns shared between
	// two workers, so Register and Unregister race for the same conn and the same id.
	all := make([][2]*fakeConn, workers*conns)
	for i := range all {
		for j := range 2 {
			all[i][j] = newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", (i+j)%users))
			all[i][j].onClose = func(c *fakeConn) { h.Unregister(c) }
		}
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			buf := make([]Conn, 0, 16)
			for range iters {
				// Half the picks come from the worker's own range, half from anywhere.
				i := w*conns + r.IntN(conns)
				if r.IntN(2) == 0 {
					i = r.IntN(len(all))
				}
				c := all[i][r.IntN(2)]
				switch r.IntN(10) {
				case 0, 1, 2:
					c.closed.Store(false) // a reused fake; a real socket is never re-registered
					_ = h.Register(c)
				case 3:
					c.closed.Store(false)
					for _, o := range must(h.RegisterExclusive(c, buf[:0])) {
						o.Close(4000, "single_socket")
					}
				case 4, 5, 6:
					h.Unregister(c)
				case 7:
					h.Get(c.sid)
					buf = h.UserConns(c.uid, buf[:0])
					h.UserCount(c.uid)
				case 8:
					h.SendToUser(c.uid, []byte("x"))
					h.SendToSession(c.sid, []byte("x"))
				case 9:
					if r.IntN(50) == 0 {
						h.DisconnectUser(c.uid, 4001, "kick")
					} else {
						h.DisconnectSession(c.sid, 4001, "kick")
					}
				}
			}
		})
	}
	var sweeper sync.WaitGroup
	sweeper.Go(func() { // a drain/heartbeat sweep running alongside
		for !stop.Load() {
			h.Range(func(Conn) bool { return true })
			if h.Len() < 0 {
				t.Error("Len went negative")
			}
			runtime.Gosched()
		}
	})
	wg.Wait()
	stop.Store(true)
	sweeper.Wait()

	checkInvariants(t, h)
	for i := range all {
		for _, c := range all[i] {
			h.Unregister(c)
		}
	}
	if h.Len() != 0 {
		t.Fatalf("Len() = %d after unregistering everything", h.Len())
	}
	checkInvariants(t, h)
	for i := range h.users {
		if n := len(h.users[i].m); n != 0 {
			t.Fatalf("user shard %d keeps %d entries", i, n)
		}
	}
}

// TestSameConnRace hammers Register and Unregister of the very same few conns from many
// goroutines, against a user whose set is past the slice/map switch (where a double add is
// not absorbed by a duplicate slice entry), then checks nothing is left behind.
func TestSameConnRace(t *testing.T) {
	h := mustNew(t, 2)
	for i := range userSmallMax {
		if err := h.Register(newConn(fmt.Sprintf("resident%d", i), "u")); err != nil {
			t.Fatal(err)
		}
	}
	hot := []*fakeConn{newConn("a", "u"), newConn("b", "u"), newConn("c", "u")}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				c := hot[(w+i)%len(hot)]
				if (w+i)%2 == 0 {
					_ = h.Register(c)
				} else {
					h.Unregister(c)
				}
			}
		})
	}
	wg.Wait()
	checkInvariants(t, h)
	for _, c := range hot {
		h.Unregister(c)
	}
	if n := h.UserCount("u"); n != userSmallMax {
		t.Fatalf("UserCount = %d, want %d residents", n, userSmallMax)
	}
	checkInvariants(t, h)
}

func must[T any](v T, _ error) T { return v }

func TestAppendUsers(t *testing.T) {
	h, err := New(Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 50 {
		uid := fmt.Sprintf("user-%d", i%20) // 20 users, some with several sockets
		want[uid] = true
		if err := h.Register(newConn(fmt.Sprintf("s-%d", i), uid)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for i := range h.Shards() {
		got = h.AppendUsers(i, got)
	}
	if len(got) != len(want) {
		t.Fatalf("AppendUsers listed %d users, want %d: %v", len(got), len(want), got)
	}
	for _, uid := range got {
		if !want[uid] {
			t.Fatalf("user %q listed twice or unknown", uid)
		}
		delete(want, uid)
	}
	if got := h.AppendUsers(-1, nil); got != nil {
		t.Fatalf("AppendUsers(-1) = %v", got)
	}
	if got := h.AppendUsers(h.Shards(), nil); got != nil {
		t.Fatalf("AppendUsers(Shards()) = %v", got)
	}
}
