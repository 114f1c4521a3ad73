package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/hub"
	"github.com/sessiongate/sessiongate/presence"
)

// The cluster: every node runs the same code whether it is alone (embedded mode: an in-process
// bus and registry that hold only itself) or one of many on Redis (Stores.Cluster). A node
// heartbeats into the registry, expires the nodes that stopped heartbeating (removing their
// presences, whose leaves reach every follower), answers the ops of the other nodes over the
// bus (cluster_ops.go), and carries its presence events to them (cluster_presence.go).

// ClusterStores make a node part of a cluster: a Bus for its inbox, the shared Registry of
// nodes, and the cluster presence tracker. RedisStores builds them on Redis.
type ClusterStores struct {
	// Bus returns the bus of the node with that id.
	Bus func(node string) hub.Bus
	// Nodes returns the registry, with nodes live for ttl after a heartbeat.
	Nodes func(ttl time.Duration) hub.Registry
	// Presence returns the node's presence tracker, which calls onEvent for the events of
	// this node's changes.
	Presence func(node string, onEvent presence.EventFunc) presence.Tracker
	// ConsoleSessions keep the console's logins for every node; nil keeps each node's own.
	ConsoleSessions ConsoleSessions
}

// RedisOptions tunes the Redis stores; zero fields take the defaults of the stores.
type RedisOptions struct {
	// MinBackoff and MaxBackoff bound the wait before a lost subscription (revocations, the
	// bus) is restored. Defaults 50ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// HealthEvery is how long a subscription may stay silent before it is pinged. Default 10s.
	HealthEvery time.Duration
}

// RedisStores returns the stores of a cluster node on client (single server, Sentinel or
// Redis Cluster) with every key and channel under prefix. The caller owns client.
func RedisStores(client redis.UniversalClient, prefix string, o RedisOptions) Stores {
	if prefix == "" {
		prefix = auth.DefaultRedisPrefix
	}
	return Stores{
		Accounts: auth.NewRedisAccounts(client, prefix),
		Revocations: auth.NewRedisRevocations(client, prefix,
			auth.WithRedisWatchBackoff(o.MinBackoff, o.MaxBackoff), auth.WithRedisWatchHealthCheck(o.HealthEvery)),
		Cluster: &ClusterStores{
			Bus: func(node string) hub.Bus {
				return hub.NewRedisBus(client, hub.RedisBusConfig{Node: node, Prefix: prefix,
					MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff, HealthEvery: o.HealthEvery})
			},
			Nodes: func(ttl time.Duration) hub.Registry { return hub.NewRedisRegistry(client, prefix, ttl) },
			Presence: func(node string, onEvent presence.EventFunc) presence.Tracker {
				return presence.NewRedis(client, presence.RedisConfig{Node: node, Prefix: prefix, OnEvent: onEvent})
			},
			ConsoleSessions: newRedisConsoleSessions(client, prefix),
		},
		Play:  presence.NewRedisPlay(client, prefix),
		Games: presence.NewRedisGames(client, prefix),
	}
}

// nodeCleaner is what a cluster tracker offers for dead nodes and Redis restarts.
type nodeCleaner interface {
	RemoveNode(ctx context.Context, node string) (int, error)
	Republish(ctx context.Context) error
	// Pending and Flush: this node's presence changes that Redis has not taken yet.
	Pending() int
	Flush(ctx context.Context) error
}

// cluster is a Server's membership of the cluster.
type cluster struct {
	s        *Server
	node     string
	x        *hub.Exchange
	bus      hub.Bus
	nodes    hub.Registry
	cleaner  nodeCleaner // nil in embedded mode
	metrics  *clusterMetrics
	started  time.Time
	addr     string
	every    time.Duration // heartbeat and sweep period
	liveness time.Duration // registry TTL

	mu   sync.Mutex
	seen map[string]time.Time // other nodes -> when a Nodes listing last showed them (local clock)
	// After the registry was out of reach (Redis restarted with its data, a Sentinel failover),
	// every node's last heartbeat in it is old, and so is this node's last sighting of them:
	// silence says nothing about death until the live nodes have heartbeated again. Their
	// clients may reach Redis later than this node's (go-redis redials a failing pool once a
	// second); a node is dead only if it stays out of reach a liveness window longer than this
	// one, and then heartbeats at its next tick. registryLost is set while this node's registry
	// calls fail; judgeFrom, a liveness window and a heartbeat period after they work again, is
	// when silence means death again (dead nodes expire, sightings age out).
	registryLost bool
	judgeFrom    time.Time

	// Casts (presence events, single-socket replacements) go to each other node through a lane
	// of its own, a queue and a sender: each node receives this node's events in the order they
	// happened, and a node that cannot take them for a while (its Redis Cluster shard failing
	// over) delays only its own.
	castMu   sync.Mutex
	stopped  bool                 // set under castMu when the node stops; nothing is queued after
	lanes    map[string]*castLane // by node, guarded by castMu
	castStop chan struct{}        // closed when the node stops: casts are no longer retried
	senders  sync.WaitGroup       // the lanes' senders

	bg sync.WaitGroup // the exchange's Run, started by start
}

// castLane is the casts queued for one node, oldest first, and the wake-up of its sender.
type castLane struct {
	q       []hub.Cast    // guarded by castMu; at most castQueueSize
	retired bool          // guarded by castMu: out of lanes (its node left); the sender ends
	wake    chan struct{} // holds a token while q has casts, or the lane or the node is ending
}

// wakeLocked leaves the lane's sender a token, unless one waits already. castMu must be held.
func (l *castLane) wakeLocked() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// castQueueSize bounds the casts waiting for one node; beyond it they are dropped and counted.
// A lane takes memory only while it holds casts; a mass disconnect of status sockets queues
// one leave per socket faster than any sender drains them, so it is sized for a node's bursts.
const castQueueSize = 65536

// newNodeID names a node whose config names none.
func newNodeID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return "node-" + hex.EncodeToString(b[:])
}

func newCluster(s *Server, cs *ClusterStores) {
	cfg := s.cfg
	c := &cluster{s: s, node: cfg.NodeID, started: time.Now().UTC(), seen: make(map[string]time.Time),
		every: cfg.NodeTTL / 4, liveness: cfg.NodeTTL * 3 / 4, lanes: map[string]*castLane{}, castStop: make(chan struct{})}
	if cs == nil {
		c.bus = hub.NewMemoryNetwork().Bus(c.node)
		c.nodes = hub.NewMemoryRegistry(c.liveness)
	} else {
		c.bus = cs.Bus(c.node)
		c.nodes = cs.Nodes(c.liveness)
		t := cs.Presence(c.node, s.rt.status.onEvent)
		s.rt.status.tracker = t
		c.cleaner, _ = t.(nodeCleaner)
		s.rt.status.forward = c.forwardPresence
	}
	c.x = hub.NewExchange(c.node, c.bus, cfg.ClusterTimeout)
	c.metrics = newClusterMetrics(s.metrics.Registry, c)
	c.registerOps()
	s.cluster = c
}

// start prepares the node before it serves, until ctx ends: it subscribes to its inbox (waiting
// at most ClusterTimeout for the subscription, so that no node finds it registered but
// unreachable), registers, removes the presences left by an earlier run under this id (their
// followers get the leaves) and introduces itself to the other nodes. run carries on.
func (c *cluster) start(ctx context.Context, addr string) {
	c.addr = addr
	c.bg.Go(func() {
		if err := c.x.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.s.log.Error().Err(err).Msg("cluster bus stopped")
		}
	})
	deadline := time.Now().Add(c.s.cfg.ClusterTimeout)
	for c.x.Ready() != nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	c.heartbeat(ctx) // registers, and learns the other nodes for the leaves below
	if c.cleaner != nil {
		if n, err := c.cleaner.RemoveNode(ctx, c.node); err != nil {
			c.s.log.Warn().Err(err).Msg("removing presences of this node's previous run")
		} else if n > 0 {
			c.s.log.Info().Int("presences", n).Msg("removed presences of this node's previous run")
		}
	}
	// The other nodes learn of this one now rather than at their next heartbeat, so that its
	// sockets get their presence events and replacements from the start.
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.ClusterTimeout)
	defer cancel()
	for _, n := range c.others() {
		_ = c.x.Cast(ctx, n, opHello, nil)
	}
}

// run heartbeats and sends the casts until ctx (the one given to start) ends, then waits for
// the bus and leaves the registry.
func (c *cluster) run(ctx context.Context) {
	t := time.NewTicker(c.every)
	var gen uint64 // the first subscription has nothing to restore
	for {
		select {
		case <-ctx.Done():
			t.Stop()
			c.castMu.Lock()
			c.stopped = true
			for _, l := range c.lanes {
				l.wakeLocked()
			}
			c.castMu.Unlock()
			close(c.castStop)
			c.senders.Wait()
			c.bg.Wait()
			c.leave()
			return
		case <-t.C:
		}
		c.heartbeat(ctx)
		c.expire(ctx)
		c.retireLanes()
		if c.cleaner != nil && c.cleaner.Pending() > 0 && c.x.Ready() == nil {
			// Presence changes Redis could not take; written once it is back (the bus is up
			// again: a Flush holds this node's presence writes while it runs).
			fctx, cancel := context.WithTimeout(ctx, c.every)
			if err := c.cleaner.Flush(fctx); err != nil {
				c.s.log.Debug().Err(err).Msg("pending presences not written yet")
			}
			cancel()
		}
		if g := c.bus.Generation(); g != gen {
			// The bus resubscribed: Redis may have restarted empty.
			first := gen == 0
			gen = g
			if c.cleaner != nil && !first {
				if err := c.cleaner.Republish(ctx); err != nil {
					c.s.log.Warn().Err(err).Msg("republishing presences")
				}
			}
		}
	}
}

func (c *cluster) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.every)
	defer cancel()
	err := c.nodes.Heartbeat(ctx, hub.NodeInfo{ID: c.node, Address: c.addr, Sessions: c.s.rt.hub.Len(), StartedAt: c.started})
	if err != nil {
		c.mu.Lock()
		c.registryLost = true
		c.mu.Unlock()
		c.s.log.Warn().Err(err).Msg("node heartbeat failed")
		return
	}
	_, _ = c.liveNodes(ctx)
}

// expire removes dead nodes from the registry, then removes the presences of every dead node
// not yet cleaned up (followers everywhere get the leaves): the nodes this node just expired,
// and any whose cleaner died before it finished. Concurrent cleanups of one node emit each
// leave once.
func (c *cluster) expire(ctx context.Context) {
	c.mu.Lock()
	judging := c.judgingLocked(time.Now())
	c.mu.Unlock()
	if !judging {
		return // the registry was out of reach: the live nodes are catching up on heartbeats
	}
	ctx, cancel := context.WithTimeout(ctx, c.every)
	defer cancel()
	gone, err := c.nodes.Expire(ctx)
	if err != nil {
		c.s.log.Warn().Err(err).Msg("expiring dead nodes")
		return
	}
	for _, id := range gone {
		c.metrics.deadNodes.Inc()
		c.forget(id)
		c.s.log.Warn().Str("dead_node", id).Msg("node stopped heartbeating; expired")
	}
	dead, err := c.nodes.Dead(ctx)
	if err != nil {
		c.s.log.Warn().Err(err).Msg("listing dead nodes")
		return
	}
	for _, id := range dead {
		if id == c.node {
			continue // this node's own previous run: start() removed its presences
		}
		if c.cleaner != nil {
			n, err := c.cleaner.RemoveNode(ctx, id)
			if err != nil {
				c.s.log.Warn().Err(err).Str("dead_node", id).Msg("removing presences of a dead node")
				continue
			}
			if n > 0 {
				c.s.log.Info().Str("dead_node", id).Int("presences", n).Msg("removed presences of a dead node")
			}
		}
		if err := c.nodes.Cleaned(ctx, id); err != nil {
			c.s.log.Warn().Err(err).Str("dead_node", id).Msg("marking a dead node cleaned")
		}
	}
}

// leave takes the node out of the registry and tells the other nodes, on a graceful stop.
func (c *cluster) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ClusterTimeout)
	defer cancel()
	for _, n := range c.others() {
		_ = c.x.Cast(ctx, n, opLeave, nil)
	}
	if err := c.nodes.Leave(ctx, c.node); err != nil {
		c.s.log.Warn().Err(err).Msg("leaving the node registry")
	}
}

func (c *cluster) forget(node string) {
	c.mu.Lock()
	delete(c.seen, node)
	c.mu.Unlock()
}

// judgingLocked reports whether a node silent in the registry for the liveness window is dead
// at now, which it is not while the registry is out of reach nor until judgeFrom after. The
// caller holds c.mu.
func (c *cluster) judgingLocked(now time.Time) bool {
	return !c.registryLost && !now.Before(c.judgeFrom)
}

// liveNodes returns the ids of the live nodes, this one included: the registry's listing, plus
// nodes a listing showed within the liveness window that this one lacks (the registry's data
// was lost with a Redis restart and they have not heartbeated since), and after the registry
// was out of reach every node seen before, until the live ones have heartbeated again. So a
// request is never answered for the whole cluster without asking a node that may hold the
// session.
func (c *cluster) liveNodes(ctx context.Context) ([]string, error) {
	infos, err := c.nodes.Nodes(ctx)
	now := time.Now()
	c.mu.Lock()
	if err != nil {
		c.registryLost = true
		c.mu.Unlock()
		return nil, err
	}
	if c.registryLost {
		c.registryLost, c.judgeFrom = false, now.Add(c.liveness+c.every)
	}
	judging := c.judgingLocked(now)
	ids := []string{c.node}
	for _, n := range infos {
		if n.ID != c.node {
			c.seen[n.ID] = now
		}
	}
	for id, at := range c.seen {
		if judging && now.Sub(at) > c.liveness {
			delete(c.seen, id)
			continue
		}
		ids = append(ids, id)
	}
	c.mu.Unlock()
	slices.Sort(ids)
	return ids, nil
}

// others returns the other nodes last seen live, without a registry round trip (for casts
// made on a socket's path: presence events, single-socket replacements).
func (c *cluster) others() []string {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	judging := c.judgingLocked(now)
	ids := make([]string, 0, len(c.seen))
	for id, at := range c.seen {
		if !judging || now.Sub(at) <= c.liveness {
			ids = append(ids, id)
		}
	}
	return ids
}

// castOthers queues op for every other live node without waiting; a full lane drops it
// (counted as outcome "dropped"). Receivers of presence events and replacements are
// best-effort by nature: a node that misses one is down or resubscribing, and a status_follow
// lists the current state again.
func (c *cluster) castOthers(op string, body any) {
	others := c.others()
	if len(others) == 0 {
		return
	}
	raw, err := json.Marshal(body)
	if err != nil {
		c.metrics.observe(op, err)
		c.s.log.Error().Err(err).Str("op", op).Msg("cluster cast not encodable; dropped")
		return
	}
	cast := hub.Cast{Op: op, Body: raw}
	c.castMu.Lock()
	defer c.castMu.Unlock()
	if c.stopped {
		return
	}
	dropped := 0
	for _, n := range others {
		l := c.lanes[n]
		if l == nil {
			l = &castLane{wake: make(chan struct{}, 1)}
			c.lanes[n] = l
			c.senders.Go(func() { c.sendLane(n, l) })
		}
		if len(l.q) >= castQueueSize {
			dropped++
			continue
		}
		l.q = append(l.q, cast)
		l.wakeLocked()
	}
	if dropped > 0 {
		c.metrics.calls.WithLabelValues(op, "dropped").Add(float64(dropped))
		c.s.log.Warn().Str("op", op).Int("nodes", dropped).Msg("cluster cast queue full; cast dropped")
	}
}

// retireLanes ends the lanes of the nodes that are no longer live and have nothing queued, so
// that nodes that come and go (new ids at each start) leave no sender behind. A node that
// comes back gets a new lane.
func (c *cluster) retireLanes() {
	live := c.others()
	c.castMu.Lock()
	defer c.castMu.Unlock()
	for n, l := range c.lanes {
		if len(l.q) == 0 && !slices.Contains(live, n) {
			l.retired = true
			l.wakeLocked()
			delete(c.lanes, n)
		}
	}
}

// takeLane waits for casts in l and takes them all, oldest first, reusing spare's array for
// the queue that follows. It returns nil once the lane or the node ends with nothing left.
func (c *cluster) takeLane(l *castLane, spare []hub.Cast) []hub.Cast {
	for {
		<-l.wake
		c.castMu.Lock()
		q := l.q
		if len(q) > 0 {
			l.q = spare[:0]
		}
		ending := c.stopped || l.retired
		if ending {
			l.wakeLocked() // the end stays seen once the rest is sent
		}
		c.castMu.Unlock()
		switch {
		case len(q) > 0:
			return q
		case ending:
			return nil
		}
	}
}

// maxCastBatch bounds the casts sent to a node in one message (hub.Exchange.CastBatch).
const maxCastBatch = 512

// sendLane sends node n's casts in order until its lane or this node ends. It takes everything
// queued at once and sends it in messages of up to maxCastBatch: one publish per cast kept up
// with a few thousand a second, and a mass disconnect's presence leaves overflowed the queue.
func (c *cluster) sendLane(n string, l *castLane) {
	var spare []hub.Cast
	for {
		q := c.takeLane(l, spare)
		if q == nil {
			return
		}
		for rest := q; len(rest) > 0; {
			batch := rest[:min(len(rest), maxCastBatch)]
			rest = rest[len(batch):]
			err := c.castTo(n, batch)
			for _, cs := range batch {
				c.metrics.observe(cs.Op, err)
			}
			if err != nil {
				c.s.log.Debug().Err(err).Str("node", n).Int("casts", len(batch)).Msg("cluster casts failed")
			}
		}
		clear(q) // the spare array must not keep the bodies alive
		spare = nil
		if cap(q) <= 4*maxCastBatch {
			spare = q // a burst's large array goes back to the heap
		}
	}
}

// Backoff of a batch of casts that did not reach its node.
const (
	castRetryMin = 50 * time.Millisecond
	castRetryMax = time.Second
)

// castTo sends a batch of casts to node n. While this node cannot reach Redis (its own bus is
// down), it retries until Redis is back, the node stops, or n is no longer a live node: the
// events of an outage reach the other nodes late and in order instead of not at all; the
// casts queued meanwhile wait behind (the queue bound still holds). A node that has no inbox
// while this one is fine is given one heartbeat period to resubscribe.
func (c *cluster) castTo(n string, casts []hub.Cast) error {
	var inboxGone time.Time // since when n has had no inbox while this node's bus was up
	for backoff := castRetryMin; ; backoff = min(2*backoff, castRetryMax) {
		select {
		case <-c.castStop:
			if err := c.x.Ready(); err != nil {
				// Stopping with the bus down: what is left is not tried, one timeout each.
				return &hub.NodeError{Node: n, Err: err}
			}
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ClusterTimeout)
		var err error
		if len(casts) == 1 {
			err = c.x.Cast(ctx, n, casts[0].Op, casts[0].Body) // the message earlier builds read
		} else {
			err = c.x.CastBatch(ctx, n, casts)
		}
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, hub.ErrUnreachable) && c.x.Ready() == nil {
			if inboxGone.IsZero() {
				inboxGone = time.Now()
			}
			if time.Since(inboxGone) >= c.every {
				return err
			}
		} else {
			inboxGone = time.Time{}
		}
		if !slices.Contains(c.others(), n) {
			return err
		}
		select {
		case <-c.castStop:
			return err
		case <-time.After(backoff):
		}
	}
}

// localLast lists the ops whose part on this node runs only once the other nodes have
// answered. They set many sockets closing or writing at once, and this node's own burst of
// socket writer goroutines would otherwise delay its handling of the other nodes' replies
// behind them (in process, 3 × 2,000 sockets: replies handled 70–120 ms late); the other
// nodes' bursts run in their own processes after they have replied.
var localLast = map[string]bool{opDisconnectUser: true, opNotifyUser: true}

// callAll is Exchange.CallAll, counted, with this node last for the ops of localLast.
func (c *cluster) callAll(ctx context.Context, nodes []string, op string, body any) []hub.Result {
	var res []hub.Result
	if i := slices.Index(nodes, c.node); i >= 0 && localLast[op] {
		others := slices.Delete(slices.Clone(nodes), i, i+1)
		res = c.x.CallAll(ctx, others, op, body)
		rep, err := c.x.Call(ctx, c.node, op, body)
		res = slices.Insert(res, i, hub.Result{Node: c.node, Reply: rep, Err: err})
	} else {
		res = c.x.CallAll(ctx, nodes, op, body)
	}
	for _, r := range res {
		c.metrics.observe(op, r.Err)
	}
	return res
}

// ready reports whether the node's bus subscription is live (/readyz).
func (c *cluster) ready() error { return c.x.Ready() }
