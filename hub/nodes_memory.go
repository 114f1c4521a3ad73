package hub

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryRegistry is an in-process Registry: the embedded single node's (which lists only
// itself), or several in-process nodes' in tests.
type MemoryRegistry struct {
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	nodes map[string]NodeInfo
	dead  map[string]bool
}

// NewMemoryRegistry returns an empty registry whose nodes stay live for ttl after a heartbeat.
func NewMemoryRegistry(ttl time.Duration) *MemoryRegistry {
	return &MemoryRegistry{ttl: ttl, now: time.Now, nodes: make(map[string]NodeInfo), dead: make(map[string]bool)}
}

// TTL implements Registry.
func (r *MemoryRegistry) TTL() time.Duration { return r.ttl }

// Heartbeat implements Registry.
func (r *MemoryRegistry) Heartbeat(_ context.Context, n NodeInfo) error {
	n.LastHeartbeatAt = r.now().UTC()
	r.mu.Lock()
	r.nodes[n.ID] = n
	delete(r.dead, n.ID)
	r.mu.Unlock()
	return nil
}

// Nodes implements Registry.
func (r *MemoryRegistry) Nodes(context.Context) ([]NodeInfo, error) {
	cutoff := r.now().Add(-r.ttl)
	r.mu.Lock()
	out := make([]NodeInfo, 0, len(r.nodes))
	for _, n := range r.nodes {
		if !n.LastHeartbeatAt.Before(cutoff) {
			out = append(out, n)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Leave implements Registry.
func (r *MemoryRegistry) Leave(_ context.Context, id string) error {
	r.mu.Lock()
	delete(r.nodes, id)
	r.mu.Unlock()
	return nil
}

// Expire implements Registry.
func (r *MemoryRegistry) Expire(context.Context) ([]string, error) {
	cutoff := r.now().Add(-r.ttl)
	var gone []string
	r.mu.Lock()
	for id, n := range r.nodes {
		if n.LastHeartbeatAt.Before(cutoff) {
			gone = append(gone, id)
			delete(r.nodes, id)
			r.dead[id] = true
		}
	}
	r.mu.Unlock()
	slices.Sort(gone)
	return gone, nil
}

// Dead implements Registry.
func (r *MemoryRegistry) Dead(context.Context) ([]string, error) {
	r.mu.Lock()
	out := make([]string, 0, len(r.dead))
	for id := range r.dead {
		out = append(out, id)
	}
	r.mu.Unlock()
	slices.Sort(out)
	return out, nil
}

// Cleaned implements Registry.
func (r *MemoryRegistry) Cleaned(_ context.Context, id string) error {
	r.mu.Lock()
	delete(r.dead, id)
	r.mu.Unlock()
	return nil
}
