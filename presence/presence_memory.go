package presence

import (
	"context"
	"hash/maphash"
	"sync"
)

// MemoryConfig configures NewMemory.
type MemoryConfig struct {
	// Node is the node id recorded in presences that do not name one.
	Node string
	// Shards is the number of lock shards, a power of two; 0 picks 64.
	Shards int
	// OnEvent receives the events; nil discards them.
	OnEvent EventFunc
}

// Memory is the single-node Tracker: sharded maps, no goroutines. Every operation takes one or
// two shard locks and costs O(1) expected time per user or session involved (O(k) for a user
// with k online sockets, which is small).
//
// Presences are sharded by user id. Follows are indexed twice, by session (what a session
// follows, for UnfollowAll) and by user (who follows a user, for FollowersOf); a follow
// change holds the session shard's lock while it updates each user shard in turn, so the two
// indexes agree for any one session, and locks are always taken session shard first, never two
// of one kind, so there is no lock-order cycle.
type Memory struct {
	node     string
	onEvent  EventFunc
	seed     maphash.Seed
	mask     uint64
	users    []presenceShard
	sessions []setShard // session id -> followed user ids
	follows  []setShard // user id -> following session ids
}

type presenceShard struct {
	mu sync.RWMutex
	m  map[string][]Presence // user id -> its online sessions
	_  [64]byte
}

type setShard struct {
	mu sync.RWMutex
	m  map[string]map[string]struct{}
	_  [64]byte
}

var _ Tracker = (*Memory)(nil)

const defaultShards = 64

// NewMemory returns an empty in-memory Tracker.
func NewMemory(cfg MemoryConfig) *Memory {
	n := cfg.Shards
	if n <= 0 || n&(n-1) != 0 {
		n = defaultShards
	}
	t := &Memory{
		node:     cfg.Node,
		onEvent:  cfg.OnEvent,
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		users:    make([]presenceShard, n),
		sessions: make([]setShard, n),
		follows:  make([]setShard, n),
	}
	for i := range n {
		t.users[i].m = make(map[string][]Presence)
		t.sessions[i].m = make(map[string]map[string]struct{})
		t.follows[i].m = make(map[string]map[string]struct{})
	}
	return t
}

func (t *Memory) idx(key string) uint64 { return maphash.String(t.seed, key) & t.mask }

func (t *Memory) emit(e Event) {
	if t.onEvent != nil {
		t.onEvent(e)
	}
}

func (t *Memory) valid(p *Presence) error {
	if p.UserID == "" || p.SessionID == "" {
		return ErrInvalidPresence
	}
	if p.Node == "" {
		p.Node = t.node
	}
	return nil
}

// find returns the index of the session in ps, or -1.
func find(ps []Presence, sessionID string) int {
	for i := range ps {
		if ps[i].SessionID == sessionID {
			return i
		}
	}
	return -1
}

// Join implements Tracker.
func (t *Memory) Join(_ context.Context, p Presence) (bool, error) {
	if err := t.valid(&p); err != nil {
		return false, err
	}
	s := &t.users[t.idx(p.UserID)]
	s.mu.Lock()
	ps := s.m[p.UserID]
	if find(ps, p.SessionID) >= 0 {
		s.mu.Unlock()
		return false, nil
	}
	s.m[p.UserID] = append(ps, p)
	s.mu.Unlock()
	t.emit(Event{UserID: p.UserID, Joins: []Presence{p}})
	return true, nil
}

// Update implements Tracker.
func (t *Memory) Update(_ context.Context, p Presence) error {
	if err := t.valid(&p); err != nil {
		return err
	}
	e := Event{UserID: p.UserID, Joins: []Presence{p}}
	s := &t.users[t.idx(p.UserID)]
	s.mu.Lock()
	ps := s.m[p.UserID]
	if i := find(ps, p.SessionID); i >= 0 {
		e.Leaves = []Presence{ps[i]}
		ps[i] = p
	} else {
		s.m[p.UserID] = append(ps, p)
	}
	s.mu.Unlock()
	t.emit(e)
	return nil
}

// Leave implements Tracker.
func (t *Memory) Leave(_ context.Context, userID, sessionID string) (bool, error) {
	s := &t.users[t.idx(userID)]
	s.mu.Lock()
	ps := s.m[userID]
	i := find(ps, sessionID)
	if i < 0 {
		s.mu.Unlock()
		return false, nil
	}
	old := ps[i]
	last := len(ps) - 1
	ps[i] = ps[last]
	ps[last] = Presence{}
	if last == 0 {
		delete(s.m, userID)
	} else {
		s.m[userID] = ps[:last]
	}
	s.mu.Unlock()
	t.emit(Event{UserID: userID, Leaves: []Presence{old}})
	return true, nil
}

// List implements Tracker.
func (t *Memory) List(_ context.Context, userIDs []string, dst []Presence) ([]Presence, error) {
	for _, uid := range userIDs {
		s := &t.users[t.idx(uid)]
		s.mu.RLock()
		dst = append(dst, s.m[uid]...)
		s.mu.RUnlock()
	}
	return dst, nil
}

// Follow implements Tracker.
func (t *Memory) Follow(sessionID string, userIDs []string) {
	if len(userIDs) == 0 {
		return
	}
	ss := &t.sessions[t.idx(sessionID)]
	ss.mu.Lock()
	set := ss.m[sessionID]
	for _, uid := range userIDs {
		if _, ok := set[uid]; ok {
			continue
		}
		if set == nil {
			set = make(map[string]struct{}, len(userIDs))
			ss.m[sessionID] = set
		}
		set[uid] = struct{}{}
		fs := &t.follows[t.idx(uid)]
		fs.mu.Lock()
		followers := fs.m[uid]
		if followers == nil {
			followers = make(map[string]struct{}, 1)
			fs.m[uid] = followers
		}
		followers[sessionID] = struct{}{}
		fs.mu.Unlock()
	}
	ss.mu.Unlock()
}

// Unfollow implements Tracker.
func (t *Memory) Unfollow(sessionID string, userIDs []string) {
	ss := &t.sessions[t.idx(sessionID)]
	ss.mu.Lock()
	set := ss.m[sessionID]
	for _, uid := range userIDs {
		if _, ok := set[uid]; !ok {
			continue
		}
		delete(set, uid)
		t.dropFollower(uid, sessionID)
	}
	if set != nil && len(set) == 0 {
		delete(ss.m, sessionID)
	}
	ss.mu.Unlock()
}

// UnfollowAll implements Tracker.
func (t *Memory) UnfollowAll(sessionID string) {
	ss := &t.sessions[t.idx(sessionID)]
	ss.mu.Lock()
	for uid := range ss.m[sessionID] {
		t.dropFollower(uid, sessionID)
	}
	delete(ss.m, sessionID)
	ss.mu.Unlock()
}

// dropFollower removes sessionID from the user's followers; the caller holds the session shard.
func (t *Memory) dropFollower(userID, sessionID string) {
	fs := &t.follows[t.idx(userID)]
	fs.mu.Lock()
	if followers := fs.m[userID]; followers != nil {
		delete(followers, sessionID)
		if len(followers) == 0 {
			delete(fs.m, userID)
		}
	}
	fs.mu.Unlock()
}

// FollowersOf implements Tracker.
func (t *Memory) FollowersOf(userID string, dst []string) []string {
	fs := &t.follows[t.idx(userID)]
	fs.mu.RLock()
	for sid := range fs.m[userID] {
		dst = append(dst, sid)
	}
	fs.mu.RUnlock()
	return dst
}

// Counts reports the number of online presences and of (session, user) follows, for tests
// and metrics. It visits every shard.
func (t *Memory) Counts() (presences, follows int) {
	for i := range t.users {
		s := &t.users[i]
		s.mu.RLock()
		for _, ps := range s.m {
			presences += len(ps)
		}
		s.mu.RUnlock()
		ss := &t.sessions[i]
		ss.mu.RLock()
		for _, set := range ss.m {
			follows += len(set)
		}
		ss.mu.RUnlock()
	}
	return presences, follows
}
