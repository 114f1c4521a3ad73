// Package redisfeed keeps one Redis pub/sub subscription alive for a node: it subscribes (with
// SUBSCRIBE, or SSUBSCRIBE for sharded pub/sub on Redis Cluster), lets its owner re-read
// whatever state the messages update after every (re)subscription, delivers the messages, pings
// a silent subscription to detect a dead connection, and resubscribes with backoff after a
// loss. The revocation store and the cluster bus both run on it.
package redisfeed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures Run. Zero fields take the defaults given per field.
type Options struct {
	// Sharded subscribes with SSUBSCRIBE (Redis 7+ sharded pub/sub, routed by the channel's
	// hash slot on Redis Cluster) instead of SUBSCRIBE. Default false.
	Sharded bool
	// MinBackoff is the first wait before resubscribing after a loss, doubling on each failure
	// up to MaxBackoff. Defaults 50ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// HealthEvery is how long the subscription may stay silent before Run pings it; a ping
	// unanswered for as long again counts as a lost feed. It catches a connection that died
	// without a reset. Default 10s.
	HealthEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	if o.HealthEvery <= 0 {
		o.HealthEvery = 10 * time.Second
	}
	return o
}

// Handler receives what the feed produces. Run calls its functions from its own goroutine, one
// at a time.
type Handler struct {
	// Resync runs after each confirmation of the subscription (the first, and again whenever
	// go-redis or Run resubscribed and messages may have been missed): the owner re-reads the
	// state the messages keep current. An error counts as a lost feed. Nil skips it.
	Resync func(ctx context.Context) error
	// Message receives each message's payload.
	Message func(payload string)
	// Synced runs after each successful Resync; Lost runs when a synced feed is lost. Either
	// may be nil.
	Synced, Lost func()
}

// Run keeps the subscription to channel on client until ctx ends, then returns ctx.Err().
// A message published while the feed is down is lost to this subscriber, which is why Resync
// runs on every restore.
func Run(ctx context.Context, client redis.UniversalClient, channel string, o Options, h Handler) error {
	o = o.withDefaults()
	f := &feed{client: client, channel: channel, o: o, h: h}
	backoff := o.MinBackoff
	for {
		// The pass's error only says why the feed was lost; the retry is the answer to it.
		if f.once(ctx) {
			backoff = o.MinBackoff
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.lost()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

type feed struct {
	client  redis.UniversalClient
	channel string
	o       Options
	h       Handler
	inSync  bool
}

func (f *feed) synced() {
	f.inSync = true
	if f.h.Synced != nil {
		f.h.Synced()
	}
}

func (f *feed) lost() {
	if f.inSync {
		f.inSync = false
		if f.h.Lost != nil {
			f.h.Lost()
		}
	}
}

// once runs one subscription until it fails or ctx ends, and reports whether it got in sync.
func (f *feed) once(ctx context.Context) (wasSynced bool) {
	var ps *redis.PubSub
	kind := "subscribe"
	if f.o.Sharded {
		ps, kind = f.client.SSubscribe(ctx), "ssubscribe"
	} else {
		ps = f.client.Subscribe(ctx)
	}
	defer ps.Close()
	// Receive does not watch ctx, only deadlines; closing the subscription is what ends a
	// Receive blocked on a quiet channel when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	var err error
	if f.o.Sharded {
		err = ps.SSubscribe(ctx, f.channel)
	} else {
		err = ps.Subscribe(ctx, f.channel)
	}
	if err != nil {
		return false
	}
	subscribed, pinged := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, f.o.HealthEvery)
		if err != nil {
			if ctx.Err() != nil {
				return wasSynced
			}
			if subscribed && isTimeout(err) && !pinged {
				if ps.Ping(ctx) != nil {
					return wasSynced
				}
				pinged = true
				continue
			}
			return wasSynced
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			if f.h.Message != nil {
				f.h.Message(m.Payload)
			}
		case *redis.Subscription:
			if m.Kind != kind || m.Channel != f.channel {
				continue
			}
			// The first confirmation starts the feed. A later one means go-redis reconnected
			// and resubscribed on its own, and messages sent in between are lost: the state
			// must be read again.
			if subscribed {
				f.lost()
			}
			subscribed = true
			if f.h.Resync != nil {
				if err := f.h.Resync(ctx); err != nil {
					return wasSynced
				}
			}
			f.synced()
			wasSynced = true
		}
	}
}

// isTimeout reports a read deadline passing, as opposed to a broken connection.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Publish sends payload on channel, with SPUBLISH when sharded, and returns how many
// subscribers received it.
func Publish(ctx context.Context, client redis.Cmdable, sharded bool, channel string, payload any) (int64, error) {
	var cmd *redis.IntCmd
	if sharded {
		cmd = client.SPublish(ctx, channel, payload)
	} else {
		cmd = client.Publish(ctx, channel, payload)
	}
	n, err := cmd.Result()
	if err != nil {
		return 0, fmt.Errorf("failed to publish on %s: %w", channel, err)
	}
	return n, nil
}
