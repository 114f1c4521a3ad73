package hub

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisfeed"
)

// RedisBusConfig configures NewRedisBus.
type RedisBusConfig struct {
	// Node is this node's id: Run subscribes to its inbox.
	Node string
	// Prefix starts every channel name. Default "sessiongate:".
	Prefix string
	// MinBackoff and MaxBackoff bound the wait before resubscribing after the subscription
	// is lost (doubling from the first to the second). Defaults 50ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// HealthEvery is how long the subscription may stay silent before it is pinged; an
	// unanswered ping counts as a lost subscription. Default 10s.
	HealthEvery time.Duration
}

// RedisBus is the Bus of a cluster on Redis. Node N's inbox is the channel
// <prefix>bus:{N}. On Redis Cluster it uses sharded pub/sub (SSUBSCRIBE / SPUBLISH, Redis 7+):
// a message travels only to the shard that owns the channel's slot, and the inboxes (hash tag
// = node id) spread over the shards, so the bus's load grows with the shards rather than
// being copied to every master as classic PUBLISH is. On a single server or Sentinel it uses
// SUBSCRIBE / PUBLISH.
//
// Send learns from Redis how many subscribers received the message: none means the node is
// down or resubscribing, and Send reports ErrUnreachable, so no message is silently dropped.
type RedisBus struct {
	client  redis.UniversalClient
	cfg     RedisBusConfig
	sharded bool
	ready   atomic.Bool
	gen     atomic.Uint64
}

// NewRedisBus returns a bus on client; the caller owns client and closes it after Run returns.
func NewRedisBus(client redis.UniversalClient, cfg RedisBusConfig) *RedisBus {
	if cfg.Prefix == "" {
		cfg.Prefix = "sessiongate:"
	}
	_, sharded := client.(*redis.ClusterClient)
	return &RedisBus{client: client, cfg: cfg, sharded: sharded}
}

// Sharded reports whether the bus uses sharded pub/sub.
func (b *RedisBus) Sharded() bool { return b.sharded }

func (b *RedisBus) channel(node string) string { return b.cfg.Prefix + "bus:{" + node + "}" }

// Send implements Bus.
func (b *RedisBus) Send(ctx context.Context, node string, msg []byte) error {
	n, err := redisfeed.Publish(ctx, b.client, b.sharded, b.channel(node), msg)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, node, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s has no live subscription", ErrUnreachable, node)
	}
	return nil
}

// Run implements Bus: it keeps the inbox subscription alive, resubscribing after Redis
// restarts or the connection drops; Ready is false while it is down.
func (b *RedisBus) Run(ctx context.Context, deliver func([]byte)) error {
	defer b.ready.Store(false)
	return redisfeed.Run(ctx, b.client, b.channel(b.cfg.Node), redisfeed.Options{
		Sharded: b.sharded, MinBackoff: b.cfg.MinBackoff, MaxBackoff: b.cfg.MaxBackoff, HealthEvery: b.cfg.HealthEvery,
	}, redisfeed.Handler{
		Message: func(payload string) { deliver([]byte(payload)) },
		Synced: func() {
			b.gen.Add(1)
			b.ready.Store(true)
		},
		Lost: func() { b.ready.Store(false) },
	})
}

// Ready implements Bus.
func (b *RedisBus) Ready() error {
	if !b.ready.Load() {
		return fmt.Errorf("cluster bus: %w", errNotRunning)
	}
	return nil
}

// Generation implements Bus.
func (b *RedisBus) Generation() uint64 { return b.gen.Load() }
