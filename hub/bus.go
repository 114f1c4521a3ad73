package hub

import (
	"context"
	"errors"
)

// Bus carries messages between the nodes of a cluster. Every node has an inbox named by its
// node id; Send puts a message in another node's inbox and Run delivers this node's inbox.
// The Bus moves bytes only: requests, replies and events are the Exchange's (bus_exchange.go).
//
// Implementations: MemoryNetwork (bus_memory.go), the in-process bus of the embedded single
// node and of tests that run several nodes in one process, and RedisBus (bus_redis.go), Redis
// pub/sub (sharded pub/sub on Redis Cluster).
type Bus interface {
	// Send delivers msg to the inbox of node. It fails with an error wrapping ErrUnreachable
	// when no live subscriber holds that inbox (the node is down, or its subscription is
	// being restored), so that the caller can report the failure instead of waiting.
	// A nil error means the message reached the node's subscriber. Safe for concurrent use.
	Send(ctx context.Context, node string, msg []byte) error
	// Run receives this node's inbox until ctx ends, calling deliver for each message, and
	// returns ctx.Err(). deliver may be called from several goroutines at once; msg belongs to
	// deliver. Run is called once.
	Run(ctx context.Context, deliver func(msg []byte)) error
	// Ready reports nil while this node's inbox subscription is live, and why not otherwise.
	Ready() error
	// Generation counts how many times the subscription was established: it grows by one on
	// each restore after a loss, so its owner can republish state a Redis restart lost.
	Generation() uint64
}

// ErrUnreachable is wrapped by Bus.Send when the target node has no live inbox.
var ErrUnreachable = errors.New("hub: node unreachable")

// errNotRunning is Ready's answer before Run has subscribed.
var errNotRunning = errors.New("cluster bus not subscribed")
