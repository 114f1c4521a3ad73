package hub

import (
	"context"
	"fmt"
	"sync"
)

// MemoryNetwork is an in-process Bus network: the inboxes of the nodes that run in this
// process. The embedded single node uses a network of one; tests may put several nodes on
// one network. The zero value is not usable; call NewMemoryNetwork.
type MemoryNetwork struct {
	mu      sync.RWMutex
	inboxes map[string]func([]byte)
}

// NewMemoryNetwork returns an empty network.
func NewMemoryNetwork() *MemoryNetwork {
	return &MemoryNetwork{inboxes: make(map[string]func([]byte))}
}

// Bus returns the Bus of node on the network.
func (n *MemoryNetwork) Bus(node string) Bus { return &memoryBus{net: n, node: node} }

type memoryBus struct {
	net  *MemoryNetwork
	node string
}

// Send calls the target's deliver on the caller's goroutine, so a message is delivered by the
// time Send returns.
func (b *memoryBus) Send(_ context.Context, node string, msg []byte) error {
	b.net.mu.RLock()
	deliver := b.net.inboxes[node]
	b.net.mu.RUnlock()
	if deliver == nil {
		return fmt.Errorf("%w: %s", ErrUnreachable, node)
	}
	deliver(append([]byte(nil), msg...))
	return nil
}

func (b *memoryBus) Run(ctx context.Context, deliver func([]byte)) error {
	b.net.mu.Lock()
	b.net.inboxes[b.node] = deliver
	b.net.mu.Unlock()
	<-ctx.Done()
	b.net.mu.Lock()
	delete(b.net.inboxes, b.node)
	b.net.mu.Unlock()
	return ctx.Err()
}

func (b *memoryBus) Ready() error {
	b.net.mu.RLock()
	defer b.net.mu.RUnlock()
	if b.net.inboxes[b.node] == nil {
		return errNotRunning
	}
	return nil
}

func (b *memoryBus) Generation() uint64 {
	if b.Ready() != nil {
		return 0
	}
	return 1
}
