package hub

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Conn is what the hub needs from a live socket. The real implementation lives in gateway/;
// the hub only indexes, finds, messages and closes sockets through these four methods.
//
// The hub never holds one of its locks while it calls a Conn method, so every method may call
// back into the Hub (a Close that unregisters its own socket is the expected case).
//
// Implementations must be comparable with == (pointer types are): the hub tells a socket from its
// replacement under the same session id by identity. Register rejects a Conn whose dynamic type
// is not comparable.
type Conn interface {
	// SessionID returns the socket's session id, unique among the sockets registered in one Hub.
	// It must not change while the socket is registered and must be safe for concurrent use;
	// the hub calls it on Register and Unregister, so it should be a plain field read.
	SessionID() string

	// UserID returns the id of the user that owns the socket. Like SessionID it must be constant
	// and cheap. The hub records it at Register, so a later change cannot corrupt the user index,
	// but the socket would then be found under its old user.
	UserID() string

	// Send enqueues msg on the socket's bounded outgoing queue without blocking, because one slow
	// client must never stall the sender (often a fan-out to many sockets). It reports whether
	// msg was queued. On a full queue it returns false and closes the socket itself as a slow
	// consumer; on a socket that is already closing it returns false. Send must be safe for
	// concurrent use. msg may be shared by many sockets and must be treated as read-only; it may
	// be retained until written.
	Send(msg []byte) bool

	// Close asks the socket to close with the given WebSocket close code and reason. It must not
	// block (the close handshake happens on the socket's own goroutine), must be idempotent (the
	// first code and reason win), and must be safe for concurrent use. Closing does not
	// unregister: the socket calls Hub.Unregister itself when its loops end, so that teardown
	// (presence, metrics) happens in exactly one place.
	Close(code int, reason string)
}

// Errors returned by New and Register. Callers should match them with errors.Is; the returned
// errors wrap them with detail.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot honour.
	ErrInvalidConfig = errors.New("hub: invalid config")
	// ErrInvalidConn is returned by Register for a nil Conn, an empty session or user id, or a
	// Conn whose dynamic type is not comparable.
	ErrInvalidConn = errors.New("hub: invalid conn")
	// ErrDuplicateSession is returned by Register when the session id is already registered.
	// The registered socket is left untouched.
	ErrDuplicateSession = errors.New("hub: duplicate session id")
)

// MaxShards bounds Config.Shards. Beyond a few thousand shards lock contention is already gone
// and more shards only cost memory and make Range slower.
const MaxShards = 1 << 12

// Config configures a Hub.
type Config struct {
	// Shards is the number of shards: a power of two (so a shard is picked with a mask, not a
	// division) from 1 to MaxShards. 0 selects DefaultShards().
	Shards int
}

// DefaultShards returns the shard count used when Config.Shards is 0: the smallest power of two
// that is at least 16 × runtime.GOMAXPROCS(0), capped at MaxShards. Even lookups write to the
// shard's lock word (RLock is an atomic add), so every core that touches a shard another core
// just touched pays a cache-line transfer; measured with 2 Ps, parallel Get costs about 60 ns/op
// with 4 shards per P and about 38 ns/op with 16 or 64 per P. A shard costs a few hundred bytes,
// so the extra shards are cheap, and Range and per-shard sweeps stay fast.
func DefaultShards() int {
	n := shardsPerP * runtime.GOMAXPROCS(0)
	if n >= MaxShards {
		return MaxShards
	}
	return 1 << bits.Len(uint(n-1))
}

const shardsPerP = 16

// cacheLine is the padding unit for shards. 128 rather than 64 bytes because Intel's adjacent-
// line prefetcher pulls lines in pairs and Apple's arm64 cores use 128-byte lines: without it,
// two neighbouring shards' locks would still bounce between cores.
const cacheLine = 128

// sessionEntry records the user id seen at Register, so that Unregister removes the socket
// from the user index it was actually put in, whatever UserID returns later.
type sessionEntry struct {
	c   Conn
	uid string
}

type sessionShardData struct {
	mu sync.RWMutex
	m  map[string]sessionEntry
}

type sessionShard struct {
	sessionShardData
	_ [cacheLine - unsafe.Sizeof(sessionShardData{})%cacheLine]byte
}

type userShardData struct {
	mu sync.RWMutex
	m  map[string]userSet
}

type userShard struct {
	userShardData
	_ [cacheLine - unsafe.Sizeof(userShardData{})%cacheLine]byte
}

type paddedCount struct {
	n atomic.Int64
	_ [cacheLine - unsafe.Sizeof(atomic.Int64{})]byte
}

// Hub is this node's registry of live sockets, indexed by session id and by user id.
// All methods are safe for concurrent use. The zero value is not usable; call New.
//
// A session is indexed in the shard its session id hashes to and, independently, in the shard
// its user id hashes to; each kind of shard has its own lock. Register and Unregister hold the
// session shard's lock while they update the user shard, so both indexes change together as seen
// by any other Register or Unregister of that session id, and a socket is in the user index
// exactly while it is in the session index. Locks are always taken session-shard first, then
// user-shard, and never two of one kind, so there is no lock-order cycle.
// Readers take one read lock at a time and may see the two indexes a moment apart.
type Hub struct {
	seed     maphash.Seed
	mask     uint64
	sessions []sessionShard
	users    []userShard
	live     paddedCount
}

// New returns an empty Hub. It returns an error wrapping ErrInvalidConfig if cfg.Shards is
// negative, not a power of two, or above MaxShards.
func New(cfg Config) (*Hub, error) {
	n := cfg.Shards
	if n == 0 {
		n = DefaultShards()
	}
	if n < 0 || n > MaxShards || n&(n-1) != 0 {
		return nil, fmt.Errorf("%w: Shards must be 0 or a power of two from 1 to %d, got %d",
			ErrInvalidConfig, MaxShards, cfg.Shards)
	}
	h := &Hub{
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		sessions: make([]sessionShard, n),
		users:    make([]userShard, n),
	}
	for i := range h.sessions {
		h.sessions[i].m = make(map[string]sessionEntry)
		h.users[i].m = make(map[string]userSet)
	}
	return h, nil
}

// Shards returns the number of shards. RangeShard and AppendShard accept indexes from 0 to
// Shards()-1, so a sweeper can spread its work over time shard by shard.
func (h *Hub) Shards() int { return len(h.sessions) }

// The seed is random per Hub so that clients cannot choose ids that pile into one shard.
func (h *Hub) sessionShard(sessionID string) *sessionShard {
	return &h.sessions[maphash.String(h.seed, sessionID)&h.mask]
}

func (h *Hub) userShard(userID string) *userShard {
	return &h.users[maphash.String(h.seed, userID)&h.mask]
}

// validate reads the ids once, outside any lock, because they are Conn method calls.
func validate(c Conn) (sid, uid string, err error) {
	if c == nil {
		return "", "", fmt.Errorf("%w: nil", ErrInvalidConn)
	}
	// Identity comparison (==) and map keys on an uncomparable dynamic type panic at run time;
	// refusing it here keeps every later comparison safe.
	if !reflect.TypeOf(c).Comparable() {
		return "", "", fmt.Errorf("%w: type %T is not comparable", ErrInvalidConn, c)
	}
	sid, uid = c.SessionID(), c.UserID()
	if sid == "" {
		return "", "", fmt.Errorf("%w: empty session id", ErrInvalidConn)
	}
	if uid == "" {
		return "", "", fmt.Errorf("%w: empty user id", ErrInvalidConn)
	}
	return sid, uid, nil
}

// Register adds c under its session id and its user id. It fails with ErrDuplicateSession if the
// session id is already registered (to replace a socket, unregister the old one first) and with
// ErrInvalidConn for a nil Conn, an empty id or an uncomparable Conn type. O(1) expected.
func (h *Hub) Register(c Conn) error {
	_, err := h.register(c, nil, false)
	return err
}

// RegisterExclusive registers c like Register and appends to dst the user's other sockets that
// were registered at that instant, for single-socket mode: the caller notifies and closes them.
// Because the snapshot and the insert happen under the same user-shard lock, two sockets of a
// user registered this way at the same moment always see each other in one direction, so if
// each caller closes what it gets back, exactly one socket survives. On error nothing is
// registered and dst is returned unchanged.
func (h *Hub) RegisterExclusive(c Conn, dst []Conn) ([]Conn, error) {
	return h.register(c, dst, true)
}

func (h *Hub) register(c Conn, dst []Conn, exclusive bool) ([]Conn, error) {
	sid, uid, err := validate(c)
	if err != nil {
		return dst, err
	}
	ss := h.sessionShard(sid)
	ss.mu.Lock()
	if _, dup := ss.m[sid]; dup {
		ss.mu.Unlock()
		return dst, fmt.Errorf("%w: %q", ErrDuplicateSession, sid)
	}
	ss.m[sid] = sessionEntry{c: c, uid: uid}
	us := h.userShard(uid)
	us.mu.Lock()
	set := us.m[uid]
	if exclusive {
		dst = set.appendTo(dst)
	}
	set.add(c)
	us.m[uid] = set
	us.mu.Unlock()
	// Counted under the session lock so that, for any one session, the increment is ordered
	// before the matching decrement and Len never dips below zero.
	h.live.n.Add(1)
	ss.mu.Unlock()
	return dst, nil
}

// Unregister removes c and reports whether it did. It removes nothing unless c itself is the
// socket registered under c.SessionID(): a replaced socket whose teardown runs late must not
// remove its successor. Calling it twice, or for a Conn never registered, is harmless.
func (h *Hub) Unregister(c Conn) bool {
	if c == nil {
		return false
	}
	sid := c.SessionID()
	ss := h.sessionShard(sid)
	ss.mu.Lock()
	e, ok := ss.m[sid]
	// e.c's type is comparable (checked at Register); if c has another type the comparison is
	// simply false, so this cannot panic.
	if !ok || e.c != c {
		ss.mu.Unlock()
		return false
	}
	delete(ss.m, sid)
	us := h.userShard(e.uid)
	us.mu.Lock()
	set := us.m[e.uid]
	set.remove(c)
	if set.len() == 0 {
		delete(us.m, e.uid)
	} else {
		us.m[e.uid] = set
	}
	us.mu.Unlock()
	h.live.n.Add(-1)
	ss.mu.Unlock()
	return true
}

// Get returns the socket registered under sessionID. It does not allocate.
func (h *Hub) Get(sessionID string) (Conn, bool) {
	ss := h.sessionShard(sessionID)
	ss.mu.RLock()
	e, ok := ss.m[sessionID]
	ss.mu.RUnlock()
	return e.c, ok
}

// UserConns appends the user's registered sockets to dst, in no particular order, and returns
// the extended slice. It allocates only if dst lacks capacity, so a caller can pass a stack
// buffer. The result is a snapshot: sockets may close or register right after.
func (h *Hub) UserConns(userID string, dst []Conn) []Conn {
	us := h.userShard(userID)
	us.mu.RLock()
	set := us.m[userID]
	dst = set.appendTo(dst)
	us.mu.RUnlock()
	return dst
}

// UserCount returns how many sockets the user has registered. It does not allocate.
func (h *Hub) UserCount(userID string) int {
	us := h.userShard(userID)
	us.mu.RLock()
	set := us.m[userID]
	n := set.len()
	us.mu.RUnlock()
	return n
}

// Len returns the number of registered sockets, from one atomic counter: cheap enough for a
// metrics gauge or a drain loop.
func (h *Hub) Len() int { return int(h.live.n.Load()) }

// SendToSession sends msg to the socket registered under sessionID and reports whether it was
// queued: false if there is no such socket, or its queue was full (it then closed itself) or it
// is closing. It never blocks on the socket.
func (h *Hub) SendToSession(sessionID string, msg []byte) bool {
	c, ok := h.Get(sessionID)
	return ok && c.Send(msg)
}

// smallFanout sizes the stack buffer of the user fan-outs: enough for any ordinary user, so
// they do not allocate.
const smallFanout = 8

// SendToUser sends msg to every socket of the user and returns how many queued it. The same msg
// slice is handed to every socket, so the caller must not modify it afterwards. It never
// blocks on a socket and does not allocate for users with up to 8 sockets.
func (h *Hub) SendToUser(userID string, msg []byte) int {
	var buf [smallFanout]Conn
	n := 0
	for _, c := range h.UserConns(userID, buf[:0]) {
		if c.Send(msg) {
			n++
		}
	}
	return n
}

// DisconnectSession asks the socket registered under sessionID to close with code and reason,
// and reports whether there was one. The socket stays registered until it unregisters itself.
func (h *Hub) DisconnectSession(sessionID string, code int, reason string) bool {
	c, ok := h.Get(sessionID)
	if ok {
		c.Close(code, reason)
	}
	return ok
}

// DisconnectUser asks every socket of the user to close with code and reason and returns how
// many it asked. The sockets stay registered until each unregisters itself.
func (h *Hub) DisconnectUser(userID string, code int, reason string) int {
	var buf [smallFanout]Conn
	conns := h.UserConns(userID, buf[:0])
	for _, c := range conns {
		c.Close(code, reason)
	}
	return len(conns)
}

// AppendShard appends the sockets of session shard i (0 ≤ i < Shards()) to dst and returns the
// extended slice; an i out of range appends nothing. Each socket lives in exactly one shard, so
// calling it for every i visits every socket once. It holds the shard's read lock only while
// copying and allocates only if dst lacks capacity, which makes it the building block for a
// periodic per-shard sweep (heartbeats) that reuses one buffer.
func (h *Hub) AppendShard(i int, dst []Conn) []Conn {
	if i < 0 || i >= len(h.sessions) {
		return dst
	}
	ss := &h.sessions[i]
	ss.mu.RLock()
	dst = slices.Grow(dst, len(ss.m))
	for _, e := range ss.m {
		dst = append(dst, e.c)
	}
	ss.mu.RUnlock()
	return dst
}

// AppendUsers appends the ids of the users holding sockets in user shard i (0 ≤ i < Shards())
// to dst and returns the extended slice; an i out of range appends nothing. Each user lives in
// exactly one user shard, so calling it for every i lists every user once, with no set to
// deduplicate them and without touching the sockets themselves: only the shard's map is read,
// under its read lock.
func (h *Hub) AppendUsers(i int, dst []string) []string {
	if i < 0 || i >= len(h.users) {
		return dst
	}
	us := &h.users[i]
	us.mu.RLock()
	dst = slices.Grow(dst, len(us.m))
	for uid := range us.m {
		dst = append(dst, uid)
	}
	us.mu.RUnlock()
	return dst
}

// RangeShard calls fn for each socket of session shard i until fn returns false; an i out of
// range calls nothing. See Range for what it sees and why fn may call back into the Hub.
func (h *Hub) RangeShard(i int, fn func(Conn) bool) {
	if i < 0 || i >= len(h.sessions) {
		return
	}
	bp := getBuf()
	defer putBuf(bp)
	h.rangeShard(i, bp, fn)
}

// Range calls fn for every registered socket until fn returns false, for drain and sweeps.
// It copies one shard at a time and calls fn with no lock held, so fn may do anything,
// including Close on a socket whose Close unregisters it, or Register and Unregister directly.
// A socket registered for the whole call is seen exactly once; one registered or unregistered
// during the call may or may not be seen, and may be seen just after it was unregistered.
func (h *Hub) Range(fn func(Conn) bool) {
	bp := getBuf()
	defer putBuf(bp)
	for i := range h.sessions {
		if !h.rangeShard(i, bp, fn) {
			return
		}
	}
}

func (h *Hub) rangeShard(i int, bp *[]Conn, fn func(Conn) bool) bool {
	buf := h.AppendShard(i, (*bp)[:0])
	*bp = buf
	for _, c := range buf {
		if !fn(c) {
			return false
		}
	}
	return true
}

// bufPool recycles Range's copy buffers: a heartbeat sweep ranges every shard every period, and
// allocating a shard-sized slice each time would be steady garbage.
var bufPool = sync.Pool{New: func() any { return new([]Conn) }}

// maxPooledBuf keeps one drain of a huge node from pinning a huge buffer in the pool.
const maxPooledBuf = 1 << 14

func getBuf() *[]Conn { return bufPool.Get().(*[]Conn) }

func putBuf(bp *[]Conn) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	clear((*bp)[:cap(*bp)]) // a pooled buffer must not keep closed sockets reachable
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}
