package presence

import (
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryGames is the GameSessions of the embedded single node: maps under one mutex, and the
// deadlines in an indexed min-heap, so Expire finds the due sessions in O(log n) each.
type MemoryGames struct {
	mu     sync.Mutex
	byID   map[string]*GameSession
	byKey  map[gameKey]string
	byExt  map[string]string
	byUser map[string]map[string]struct{}
	due    deadlines // session id → deadline
	now    func() time.Time
}

type gameKey struct{ user, game, currency string }

// NewMemoryGames returns an empty in-memory game session store.
func NewMemoryGames() *MemoryGames {
	return &MemoryGames{
		byID:   make(map[string]*GameSession),
		byKey:  make(map[gameKey]string),
		byExt:  make(map[string]string),
		byUser: make(map[string]map[string]struct{}),
		due:    newDeadlines(),
		now:    time.Now,
	}
}

// copyLocked returns a copy of the stored session the caller may keep. Data is never modified
// in place (WriteData replaces the slice), so the copy shares it.
func (m *MemoryGames) copyLocked(id string) *GameSession {
	gs := *m.byID[id]
	at, _ := m.due.get(id)
	gs.ExpiresAt = time.Unix(0, at)
	return &gs
}

// Create implements GameSessions.
func (m *MemoryGames) Create(_ context.Context, s NewGameSession, ttl time.Duration) (*GameSession, bool, error) {
	now := m.now()
	k := gameKey{s.UserID, s.GameID, s.Currency}
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byKey[k]; ok {
		cur := m.copyLocked(id)
		if cur.ExternalID == s.ExternalID {
			return cur, false, nil
		}
		return nil, false, &ActiveSessionError{Active: cur}
	}
	if _, ok := m.byExt[s.ExternalID]; ok {
		return nil, false, ErrExternalIDInUse
	}
	if s.MaxPerUser > 0 && len(m.byUser[s.UserID]) >= s.MaxPerUser {
		return nil, false, ErrTooManyGameSessions
	}
	gs := &GameSession{ID: newID(), UserID: s.UserID, GameID: s.GameID, Currency: s.Currency,
		ExternalID: s.ExternalID, CreatedAt: now.Truncate(time.Millisecond), Data: []byte("{}"), Version: 1}
	m.byID[gs.ID] = gs
	m.byKey[k] = gs.ID
	m.byExt[s.ExternalID] = gs.ID
	ids := m.byUser[s.UserID]
	if ids == nil {
		ids = make(map[string]struct{})
		m.byUser[s.UserID] = ids
	}
	ids[gs.ID] = struct{}{}
	m.due.set(gs.ID, now.Add(ttl).UnixNano())
	return m.copyLocked(gs.ID), true, nil
}

// Get implements GameSessions.
func (m *MemoryGames) Get(_ context.Context, id string) (*GameSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return nil, ErrGameSessionNotFound
	}
	return m.copyLocked(id), nil
}

// GetByExternalID implements GameSessions.
func (m *MemoryGames) GetByExternalID(_ context.Context, externalID string) (*GameSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byExt[externalID]
	if !ok {
		return nil, ErrGameSessionNotFound
	}
	return m.copyLocked(id), nil
}

// List implements GameSessions.
func (m *MemoryGames) List(_ context.Context, userID string) ([]*GameSession, error) {
	m.mu.Lock()
	out := make([]*GameSession, 0, len(m.byUser[userID]))
	for id := range m.byUser[userID] {
		out = append(out, m.copyLocked(id))
	}
	m.mu.Unlock()
	sortSessions(out)
	return out, nil
}

// sortSessions orders sessions oldest first (by id among equal creation times).
func sortSessions(s []*GameSession) {
	slices.SortFunc(s, func(a, b *GameSession) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
}

// Refresh implements GameSessions.
func (m *MemoryGames) Refresh(_ context.Context, id string, ttl time.Duration) (*GameSession, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return nil, ErrGameSessionNotFound
	}
	m.due.set(id, now.Add(ttl).UnixNano())
	return m.copyLocked(id), nil
}

// WriteData implements GameSessions.
func (m *MemoryGames) WriteData(_ context.Context, id string, data []byte, version int64, ttl time.Duration) (*GameSession, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	gs, ok := m.byID[id]
	if !ok {
		return nil, ErrGameSessionNotFound
	}
	if gs.Version != version {
		return m.copyLocked(id), ErrVersionConflict
	}
	gs.Data = slices.Clone(data)
	gs.Version++
	m.due.set(id, now.Add(ttl).UnixNano())
	return m.copyLocked(id), nil
}

// Close implements GameSessions.
func (m *MemoryGames) Close(_ context.Context, id string) (*GameSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return nil, ErrGameSessionNotFound
	}
	return m.closeLocked(id), nil
}

// closeLocked removes the session from every index and returns it as it was.
func (m *MemoryGames) closeLocked(id string) *GameSession {
	gs := m.copyLocked(id)
	delete(m.byID, id)
	delete(m.byKey, gameKey{gs.UserID, gs.GameID, gs.Currency})
	delete(m.byExt, gs.ExternalID)
	if ids := m.byUser[gs.UserID]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.byUser, gs.UserID)
		}
	}
	m.due.remove(id)
	return gs
}

// Touch implements GameSessions.
func (m *MemoryGames) Touch(_ context.Context, userIDs []string, ttl time.Duration) (int, error) {
	next := m.now().Add(ttl).UnixNano()
	n := 0
	inLockedBatches(&m.mu, userIDs, func(batch []string) bool {
		if len(m.due.items) == 0 {
			return false // no session left to touch
		}
		for _, u := range batch {
			for id := range m.byUser[u] {
				if at, ok := m.due.get(id); ok && at < next {
					m.due.set(id, next)
					n++
				}
			}
		}
		return true
	})
	return n, nil
}

// Expire implements GameSessions.
func (m *MemoryGames) Expire(_ context.Context, limit int) ([]*GameSession, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*GameSession
	for len(out) < limit {
		it, ok := m.due.peek()
		if !ok || it.at > now {
			break
		}
		out = append(out, m.closeLocked(it.id))
	}
	return out, nil
}
