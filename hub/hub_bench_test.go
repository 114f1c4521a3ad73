package hub

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// mutexMap is the baseline the sharded Hub is measured against: the same indexes and the same
// userSet, behind one RWMutex. Any difference in the benchmarks is the sharding.
type mutexMap struct {
	mu       sync.RWMutex
	sessions map[string]sessionEntry
	users    map[string]userSet
	n        int
}

func newMutexMap() *mutexMap {
	return &mutexMap{sessions: map[string]sessionEntry{}, users: map[string]userSet{}}
}

func (m *mutexMap) Register(c Conn) error {
	sid, uid, err := validate(c)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.sessions[sid]; dup {
		return ErrDuplicateSession
	}
	m.sessions[sid] = sessionEntry{c: c, uid: uid}
	set := m.users[uid]
	set.add(c)
	m.users[uid] = set
	m.n++
	return nil
}

func (m *mutexMap) Unregister(c Conn) bool {
	sid := c.SessionID()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[sid]
	if !ok || e.c != c {
		return false
	}
	delete(m.sessions, sid)
	set := m.users[e.uid]
	set.remove(c)
	if set.len() == 0 {
		delete(m.users, e.uid)
	} else {
		m.users[e.uid] = set
	}
	m.n--
	return true
}

func (m *mutexMap) Get(sessionID string) (Conn, bool) {
	m.mu.RLock()
	e, ok := m.sessions[sessionID]
	m.mu.RUnlock()
	return e.c, ok
}

func (m *mutexMap) UserConns(userID string, dst []Conn) []Conn {
	m.mu.RLock()
	set := m.users[userID]
	dst = set.appendTo(dst)
	m.mu.RUnlock()
	return dst
}

// registry is the part of the API the benchmarks compare. Both sides pay the same interface
// dispatch.
type registry interface {
	Register(Conn) error
	Unregister(Conn) bool
	Get(string) (Conn, bool)
	UserConns(string, []Conn) []Conn
}

var impls = []struct {
	name string
	new  func(testing.TB) registry
}{
	{"sharded", func(b testing.TB) registry { return mustNew(b, 0) }},
	{"mutexmap", func(testing.TB) registry { return newMutexMap() }},
}

// benchLive is the population every benchmark runs against: a busy node, with users holding 1.5
// sockets on average, as game clients with a second device or a reconnect in flight do.
const (
	benchLive  = 1 << 14
	benchUsers = benchLive * 2 / 3
)

func uuidish(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
}

type benchData struct {
	userIDs  []string
	live     []*fakeConn
	sessions []string
}

var benchOnce = sync.OnceValue(func() *benchData {
	r := rand.New(rand.NewPCG(1, 2))
	d := &benchData{userIDs: make([]string, benchUsers)}
	for i := range d.userIDs {
		d.userIDs[i] = uuidish(r)
	}
	for i := range benchLive {
		c := newConn(uuidish(r), d.userIDs[i%benchUsers])
		d.live = append(d.live, c)
		d.sessions = append(d.sessions, c.sid)
	}
	return d
})

func populate(b *testing.B, reg registry) *benchData {
	d := benchOnce()
	for _, c := range d.live {
		if err := reg.Register(c); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// churnConns returns n fresh conns not in the population; half belong to existing users, so
// Register and Unregister also grow and shrink existing user sets.
func churnConns(d *benchData, n int, seed uint64) []*fakeConn {
	r := rand.New(rand.NewPCG(seed, 3))
	conns := make([]*fakeConn, n)
	for i := range conns {
		uid := uuidish(r)
		if i%2 == 0 {
			uid = d.userIDs[r.IntN(len(d.userIDs))]
		}
		conns[i] = newConn(uuidish(r), uid)
	}
	return conns
}

func BenchmarkRegisterUnregister(b *testing.B) {
	for _, impl := range impls {
		b.Run("serial/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			conns := churnConns(d, 1024, 9)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := conns[i&1023]
				i++
				if reg.Register(c) != nil || !reg.Unregister(c) {
					b.Fatal("register/unregister failed")
				}
			}
		})
		b.Run("parallel/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			// One private batch per goroutine so that no two goroutines hold the same id.
			batches := make([][]*fakeConn, runtime.GOMAXPROCS(0)*4)
			for i := range batches {
				batches[i] = churnConns(d, 1024, uint64(i)+10)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				conns := batches[int(next.Add(1)-1)%len(batches)]
				i := 0
				for pb.Next() {
					c := conns[i&1023]
					i++
					if reg.Register(c) != nil || !reg.Unregister(c) {
						b.Error("register/unregister failed")
						return
					}
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, impl := range impls {
		b.Run("serial/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := reg.Get(d.sessions[i&(benchLive-1)]); !ok {
					b.Fatal("miss")
				}
				i += 7919 // a prime stride: successive lookups land on unrelated shards
			}
		})
		b.Run("parallel/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1) * 104729)
				for pb.Next() {
					if _, ok := reg.Get(d.sessions[i&(benchLive-1)]); !ok {
						b.Error("miss")
						return
					}
					i += 7919
				}
			})
		})
	}
}

func BenchmarkUserConns(b *testing.B) {
	for _, impl := range impls {
		b.Run("serial/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			dst := make([]Conn, 0, 8)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dst = reg.UserConns(d.userIDs[i%benchUsers], dst[:0])
				if len(dst) == 0 {
					b.Fatal("no conns")
				}
				i += 7919
			}
		})
		b.Run("parallel/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			d := populate(b, reg)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]Conn, 0, 8)
				i := int(seed.Add(1) * 104729)
				for pb.Next() {
					dst = reg.UserConns(d.userIDs[i%benchUsers], dst[:0])
					if len(dst) == 0 {
						b.Error("no conns")
						return
					}
					i += 7919
				}
			})
		})
	}
}
