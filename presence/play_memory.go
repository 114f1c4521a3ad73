package presence

import (
	"context"
	"sync"
	"time"
)

// MemoryPlay is the PlaySessions of the embedded single node: a map of deadlines kept in an
// indexed min-heap, so Expire finds the due sessions in O(log n) each.
type MemoryPlay struct {
	mu  sync.Mutex
	due deadlines // user id → deadline
	now func() time.Time
}

// NewMemoryPlay returns an empty in-memory play session store.
func NewMemoryPlay() *MemoryPlay { return &MemoryPlay{due: newDeadlines(), now: time.Now} }

// activeLocked reports whether the user's session is active at now (deadline still ahead).
func (m *MemoryPlay) activeLocked(userID string, now int64) bool {
	at, ok := m.due.get(userID)
	return ok && at > now
}

// Initiate implements PlaySessions.
func (m *MemoryPlay) Initiate(_ context.Context, userID string, timeout time.Duration) error {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.activeLocked(userID, now) {
		return ErrAlreadyInGame
	}
	m.due.set(userID, now+int64(timeout))
	return nil
}

// Heartbeat implements PlaySessions.
func (m *MemoryPlay) Heartbeat(_ context.Context, userID string, timeout time.Duration) error {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activeLocked(userID, now) {
		return ErrNoActiveSession
	}
	m.due.set(userID, now+int64(timeout))
	return nil
}

// End implements PlaySessions.
func (m *MemoryPlay) End(_ context.Context, userID string) error {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activeLocked(userID, now) {
		return ErrNoActiveSession
	}
	m.due.remove(userID)
	return nil
}

// Deadline implements PlaySessions.
func (m *MemoryPlay) Deadline(_ context.Context, userID string) (time.Time, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activeLocked(userID, now) {
		return time.Time{}, ErrNoActiveSession
	}
	at, _ := m.due.get(userID)
	return time.Unix(0, at), nil
}

// Touch implements PlaySessions.
func (m *MemoryPlay) Touch(_ context.Context, userIDs []string, timeout time.Duration) (int, error) {
	now := m.now().UnixNano()
	next := now + int64(timeout)
	n := 0
	inLockedBatches(&m.mu, userIDs, func(batch []string) bool {
		if len(m.due.items) == 0 {
			return false // no session left to touch
		}
		for _, u := range batch {
			if at, ok := m.due.get(u); ok && at > now && at < next {
				m.due.set(u, next)
				n++
			}
		}
		return true
	})
	return n, nil
}

// inLockedBatches calls fn with consecutive batches of up to touchBatch ids, holding mu around
// each batch only, so that touching a whole node's users never holds a store for long (a
// batch takes tens of microseconds). It stops early when fn reports false: the store holds no
// session left to touch (an idle node's liveness pass then costs next to nothing).
func inLockedBatches(mu *sync.Mutex, ids []string, fn func([]string) bool) {
	for len(ids) > 0 {
		n := min(len(ids), touchBatch)
		mu.Lock()
		more := fn(ids[:n])
		mu.Unlock()
		if !more {
			return
		}
		ids = ids[n:]
	}
}

// Expire implements PlaySessions.
func (m *MemoryPlay) Expire(_ context.Context, limit int) ([]Expired, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	items := m.due.popDue(now, limit, nil)
	m.mu.Unlock()
	return expiredOf(items), nil
}

func expiredOf(items []deadlineItem) []Expired {
	if len(items) == 0 {
		return nil
	}
	out := make([]Expired, len(items))
	for i, it := range items {
		out[i] = Expired{ID: it.id, Deadline: time.Unix(0, it.at)}
	}
	return out
}
