package hub

import (
	"context"
	"time"
)

// NodeInfo is one node of the cluster as the registry holds it.
type NodeInfo struct {
	// ID is the node's id (--node-id).
	ID string `json:"node"`
	// Address is where the node serves its API.
	Address string `json:"address"`
	// Sessions is how many sockets the node held at its last heartbeat.
	Sessions int `json:"sessions"`
	// StartedAt is when the node started.
	StartedAt time.Time `json:"started_at"`
	// LastHeartbeatAt is the registry's time of the node's last heartbeat.
	LastHeartbeatAt time.Time `json:"last_heartbeat_at"`
}

// Registry is the cluster's list of live nodes. Every node heartbeats into it; a node that
// has not heartbeated for the registry's TTL is no longer live, and Expire removes it.
// Implementations: MemoryRegistry (nodes_memory.go), RedisRegistry (nodes_redis.go).
type Registry interface {
	// Heartbeat records n as live now (n.LastHeartbeatAt is set by the registry).
	Heartbeat(ctx context.Context, n NodeInfo) error
	// Nodes returns the live nodes, ordered by id.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Leave removes the node at once (a graceful stop).
	Leave(ctx context.Context, id string) error
	// Expire removes the nodes silent for longer than the TTL and returns their ids (of
	// concurrent callers exactly one gets each id). An expired node stays on the list of Dead
	// nodes until Cleaned is called for it, or it heartbeats again under the same id.
	Expire(ctx context.Context) ([]string, error)
	// Dead lists the expired nodes whose cleanup (removing their presences) has not been
	// reported done, so that a cleanup cut short by the cleaner's own death is finished by
	// another node.
	Dead(ctx context.Context) ([]string, error)
	// Cleaned takes the node off the Dead list.
	Cleaned(ctx context.Context, id string) error
	// TTL returns how long a node stays live after its last heartbeat.
	TTL() time.Duration
}
