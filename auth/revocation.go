package auth

import (
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// RevocationKind says which tokens a Revocation covers.
type RevocationKind uint8

// The revocation kinds. Session and refresh tokens of one login share a token id (tid), so a
// revocation names the kind as well as the id.
const (
	// RevokeSession revokes session tokens with the token id ID issued at or before Before.
	RevokeSession RevocationKind = iota + 1
	// RevokeRefresh revokes refresh tokens with the token id ID issued at or before Before.
	RevokeRefresh
	// RevokeUser revokes every token of the user ID issued at or before Before.
	RevokeUser
)

// Revocation is one logout fact. Before and Until are Unix seconds: tokens whose iat is at or
// before Before are revoked, and the fact can be forgotten after Until, when every token it
// covers has expired.
type Revocation struct {
	Kind   RevocationKind `json:"k"`
	ID     string         `json:"id"`
	Before int64          `json:"b"`
	Until  int64          `json:"u"`
}

// valid reports whether r is well formed; stores drop malformed entries instead of failing.
func (r Revocation) valid() bool {
	return r.Kind >= RevokeSession && r.Kind <= RevokeUser && r.ID != "" && r.Until > 0
}

const revocationShards = 32

// revocationCache is the node-local copy of every revocation in force. Token verification
// consults it on every request, so it is sharded to keep readers on different cores from
// contending, and a lookup does not allocate.
type revocationCache struct {
	seed   maphash.Seed
	shards [revocationShards]revocationShard
}

type revocationShard struct {
	mu sync.RWMutex
	// cutoff maps kind+id to the latest Before revoked for it, and until to when to forget it.
	entries map[revocationKey]revocationEntry
}

type revocationKey struct {
	kind RevocationKind
	id   string
}

type revocationEntry struct {
	before, until int64
}

func newRevocationCache() *revocationCache {
	c := &revocationCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].entries = make(map[revocationKey]revocationEntry)
	}
	return c
}

func (c *revocationCache) shard(id string) *revocationShard {
	return &c.shards[maphash.String(c.seed, id)&(revocationShards-1)]
}

// apply records r; a later Before for the same key wins, as it revokes a superset.
func (c *revocationCache) apply(r Revocation) {
	if !r.valid() {
		return
	}
	s := c.shard(r.ID)
	k := revocationKey{r.Kind, r.ID}
	s.mu.Lock()
	e := s.entries[k]
	if r.Before > e.before {
		e.before = r.Before
	}
	if r.Until > e.until {
		e.until = r.Until
	}
	s.entries[k] = e
	s.mu.Unlock()
}

// cutoff returns the Before in force for kind+id, or 0 when none is.
func (c *revocationCache) cutoff(kind RevocationKind, id string) int64 {
	s := c.shard(id)
	s.mu.RLock()
	e, ok := s.entries[revocationKey{kind, id}]
	s.mu.RUnlock()
	if !ok {
		return 0
	}
	return e.before
}

// revoked reports whether a token of kind (RevokeSession or RevokeRefresh) with the given
// token id, user id and issue time is covered by a revocation.
func (c *revocationCache) revoked(kind RevocationKind, tokenID, userID string, iat int64) bool {
	return iat <= c.cutoff(kind, tokenID) || iat <= c.cutoff(RevokeUser, userID)
}

// minIssuedAt is the earliest iat a new token of kind for this chain and user may carry so that
// no revocation in force covers it: a login in the same second as a logout must not be born
// revoked.
func (c *revocationCache) minIssuedAt(kind RevocationKind, tokenID, userID string) int64 {
	m := c.cutoff(RevokeUser, userID)
	if tokenID != "" {
		m = max(m, c.cutoff(kind, tokenID))
	}
	return m + 1
}

// expire forgets entries whose tokens have all expired, so the cache does not grow forever.
func (c *revocationCache) expire(now time.Time) int {
	n := 0
	unix := now.Unix()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.entries {
			if e.until < unix {
				delete(s.entries, k)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// size returns the number of entries held, for metrics and tests.
func (c *revocationCache) size() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}

var errInvalidRevocation = errors.New("invalid revocation")
