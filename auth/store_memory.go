package auth

import (
	"context"
	"sync"
	"time"
)

// MemoryAccounts is the embedded AccountStore: a map guarded by one RWMutex. Lookups are reads
// under the shared lock; creates are rare next to logins, so one writer lock is enough.
// Accounts live as long as the process.
type MemoryAccounts struct {
	mu         sync.RWMutex
	byID       map[string]*Account
	byUsername map[string]string
	byIdentity map[identityKey]string
}

type identityKey struct {
	p  Provider
	id string
}

// NewMemoryAccounts returns an empty in-memory account store.
func NewMemoryAccounts() *MemoryAccounts {
	return &MemoryAccounts{
		byID:       make(map[string]*Account),
		byUsername: make(map[string]string),
		byIdentity: make(map[identityKey]string),
	}
}

// copyAccount returns a copy so callers cannot mutate the stored record.
func copyAccount(a *Account) *Account {
	c := *a
	c.DeviceIDs = append([]string(nil), a.DeviceIDs...)
	c.PasswordHash = append([]byte(nil), a.PasswordHash...)
	return &c
}

// Get implements AccountStore.
func (m *MemoryAccounts) Get(_ context.Context, userID string) (*Account, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.byID[userID]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return copyAccount(a), nil
}

// FindByIdentity implements AccountStore.
func (m *MemoryAccounts) FindByIdentity(_ context.Context, p Provider, id string) (*Account, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	uid, ok := m.byIdentity[identityKey{p, id}]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return copyAccount(m.byID[uid]), nil
}

// FindByUsername implements AccountStore.
func (m *MemoryAccounts) FindByUsername(_ context.Context, username string) (*Account, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	uid, ok := m.byUsername[username]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return copyAccount(m.byID[uid]), nil
}

// Create implements AccountStore.
func (m *MemoryAccounts) Create(_ context.Context, a *Account, p Provider) error {
	key := identityKey{p, a.identity(p)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byIdentity[key]; ok {
		return ErrIdentityTaken
	}
	if _, ok := m.byUsername[a.Username]; ok {
		return ErrUsernameTaken
	}
	m.byID[a.ID] = copyAccount(a)
	m.byUsername[a.Username] = a.ID
	m.byIdentity[key] = a.ID
	return nil
}

// Ping implements AccountStore; memory always answers.
func (m *MemoryAccounts) Ping(context.Context) error { return nil }

// MemoryRevocations is the embedded RevocationStore for a single node: it keeps revocations in
// memory and hands each to the watchers of this process.
type MemoryRevocations struct {
	mu       sync.Mutex
	entries  []Revocation
	watchers map[int]func(Revocation)
	next     int
	now      func() time.Time
}

// NewMemoryRevocations returns an empty in-memory revocation store.
func NewMemoryRevocations() *MemoryRevocations {
	return &MemoryRevocations{watchers: make(map[int]func(Revocation)), now: time.Now}
}

// Revoke implements RevocationStore. Entries past their Until are dropped as new ones arrive,
// so the list stays bounded by the revocations still in force.
func (m *MemoryRevocations) Revoke(_ context.Context, r Revocation) error {
	if !r.valid() {
		return errInvalidRevocation
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Unix()
	kept := m.entries[:0]
	for _, e := range m.entries {
		if e.Until >= now {
			kept = append(kept, e)
		}
	}
	m.entries = append(kept, r)
	for _, w := range m.watchers {
		w(r)
	}
	return nil
}

// Watch implements RevocationStore. The in-process feed cannot be lost, so unsynced is never
// called.
func (m *MemoryRevocations) Watch(ctx context.Context, apply func(Revocation), synced, _ func()) error {
	m.mu.Lock()
	now := m.now().Unix()
	for _, e := range m.entries {
		if e.Until >= now {
			apply(e)
		}
	}
	id := m.next
	m.next++
	m.watchers[id] = apply
	m.mu.Unlock()
	synced()
	<-ctx.Done()
	m.mu.Lock()
	delete(m.watchers, id)
	m.mu.Unlock()
	return ctx.Err()
}

// Ping implements RevocationStore; memory always answers.
func (m *MemoryRevocations) Ping(context.Context) error { return nil }
