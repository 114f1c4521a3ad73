package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// Node is this node's id, recorded in its presences.
	Node string
	// Prefix starts every key. Default "sessiongate:".
	Prefix string
	// OnEvent receives the events of this node's Join, Update, Leave and RemoveNode calls; nil
	// discards them. Events of other nodes reach the owner over the cluster bus, not here.
	OnEvent EventFunc
}

// Redis is the cluster Tracker: every node's status presences are in Redis, so List sees the
// whole cluster; the follower index stays in memory, because a follower is a socket of this
// node. The node also keeps its own presences in memory (a mirror), so a socket that never
// appeared online costs no Redis call when it closes, and Republish can restore them after
// Redis lost its data.
//
// Keys, P the prefix:
//
//	P presence:{<user id>}       hash: session id -> presence JSON (one slot per user)
//	P presence:node:{<node id>}  set: "<user id> <session id>" of the node's presences
//
// Each presence change is one atomic command or script on the user's hash; the node index is
// updated right after it. The node's own mirror is the truth about its sessions: when Redis
// cannot take a change (it is down), the change stands on this node, its event is emitted as
// usual (followers here see it at once, the other nodes once the cluster bus carries it), and
// the write waits in a pending set that Flush (and Republish) writes once Redis is back.
// RemoveNode (run by the node that expired a dead node from the registry, and by a node
// starting under an id that ran before) walks the dead node's index and removes each presence
// that still names that node, emitting its leave.
type Redis struct {
	client  redis.UniversalClient
	node    string
	prefix  string
	onEvent EventFunc
	local   *Memory // this node's presences and follows
	nodeKey string

	// pending holds, per session id, this node's presence writes that Redis did not take (it
	// was unreachable): the session's latest state, written by Flush.
	pendMu  sync.Mutex
	pending map[string]pendingWrite
	// flushMu: the live writes to Redis share it and Flush holds it alone, so that a pending
	// write cannot land after a newer change of the same session (a ghost of a session gone).
	flushMu sync.RWMutex
}

// pendingWrite is a session's presence as Redis still has to learn it: p stored, or removed.
type pendingWrite struct {
	p    Presence
	gone bool
}

var _ Tracker = (*Redis)(nil)

// NewRedis returns a cluster tracker on client; the caller owns client.
func NewRedis(client redis.UniversalClient, cfg RedisConfig) *Redis {
	if cfg.Prefix == "" {
		cfg.Prefix = "sessiongate:"
	}
	r := &Redis{client: client, node: cfg.Node, prefix: cfg.Prefix, onEvent: cfg.OnEvent,
		local: NewMemory(MemoryConfig{Node: cfg.Node}), pending: make(map[string]pendingWrite)}
	r.nodeKey = r.nodeIndexKey(cfg.Node)
	return r
}

func (r *Redis) userKey(userID string) string     { return r.prefix + "presence:{" + userID + "}" }
func (r *Redis) nodeIndexKey(node string) string  { return r.prefix + "presence:node:{" + node + "}" }
func indexMember(userID, sessionID string) string { return userID + " " + sessionID }

// wirePresence is a presence as stored in Redis.
type wirePresence struct {
	UserID    string `json:"u"`
	SessionID string `json:"s"`
	Username  string `json:"n,omitempty"`
	Status    string `json:"st,omitempty"`
	Node      string `json:"node"`
}

func encodePresence(p Presence) string {
	b, _ := json.Marshal(wirePresence(p)) // strings only
	return string(b)
}

func decodePresence(s string) (Presence, bool) {
	var w wirePresence
	if json.Unmarshal([]byte(s), &w) != nil || w.UserID == "" || w.SessionID == "" {
		return Presence{}, false
	}
	return Presence(w), true
}

func (r *Redis) emit(e Event) {
	if r.onEvent != nil {
		r.onEvent(e)
	}
}

// Join implements Tracker.
func (r *Redis) Join(ctx context.Context, p Presence) (bool, error) {
	if err := r.local.valid(&p); err != nil {
		return false, err
	}
	p.Node = r.node
	ok, err := r.local.Join(ctx, p)
	if err != nil || !ok {
		return ok, err
	}
	// One round trip: the presence and the node index (different slots on Redis Cluster, so a
	// pipeline, not a transaction; RemoveNode tolerates an index entry without a presence).
	// The join is new (the mirror said so): a session id lives on one node, so an entry
	// already in Redis can only be this node's own Republish racing this Join.
	r.flushMu.RLock()
	_, err = r.client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSetNX(ctx, r.userKey(p.UserID), p.SessionID, encodePresence(p))
		pl.SAdd(ctx, r.nodeKey, indexMember(p.UserID, p.SessionID))
		return nil
	})
	r.settle(p, false, err)
	r.flushMu.RUnlock()
	r.emit(Event{UserID: p.UserID, Joins: []Presence{p}})
	return true, nil
}

// settle records the outcome of writing p (or its removal, gone) to Redis: a failed write
// becomes the session's pending write, a successful one clears any older pending write.
func (r *Redis) settle(p Presence, gone bool, err error) {
	r.pendMu.Lock()
	if err != nil {
		r.pending[p.SessionID] = pendingWrite{p: p, gone: gone}
	} else {
		delete(r.pending, p.SessionID)
	}
	r.pendMu.Unlock()
}

// localPresence returns this node's presence of the session, if it has one.
func (r *Redis) localPresence(userID, sessionID string) (Presence, bool) {
	var buf [4]Presence
	ps, _ := r.local.List(context.Background(), []string{userID}, buf[:0])
	if i := find(ps, sessionID); i >= 0 {
		return ps[i], true
	}
	return Presence{}, false
}

// Pending reports how many sessions' presence writes wait for Redis (Flush).
func (r *Redis) Pending() int {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	return len(r.pending)
}

// Flush writes the pending presence writes to Redis, in one round trip; it returns the error
// that left them pending. The live writes wait for it (flushMu), so none of them is undone by
// an older pending one.
func (r *Redis) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.pendMu.Lock()
	ops := maps.Clone(r.pending)
	r.pendMu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for sid, op := range ops {
			// The session lives on this node, so its hash field is this node's to set or delete.
			if op.gone {
				pl.HDel(ctx, r.userKey(op.p.UserID), sid)
				pl.SRem(ctx, r.nodeKey, indexMember(op.p.UserID, sid))
			} else {
				pl.HSet(ctx, r.userKey(op.p.UserID), sid, encodePresence(op.p))
				pl.SAdd(ctx, r.nodeKey, indexMember(op.p.UserID, sid))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to write %d pending presences: %w", len(ops), err)
	}
	r.pendMu.Lock()
	for sid := range ops {
		delete(r.pending, sid)
	}
	r.pendMu.Unlock()
	return nil
}

// updateScript: KEYS user hash; ARGV session id, presence JSON. Returns the previous JSON.
var updateScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
`)

// Update implements Tracker.
func (r *Redis) Update(ctx context.Context, p Presence) error {
	if err := r.local.valid(&p); err != nil {
		return err
	}
	p.Node = r.node
	prev, hadPrev := r.localPresence(p.UserID, p.SessionID)
	if err := r.local.Update(ctx, p); err != nil {
		return err
	}
	r.flushMu.RLock()
	old, err := updateScript.Run(ctx, r.client, []string{r.userKey(p.UserID)}, p.SessionID, encodePresence(p)).Text()
	if err == redis.Nil {
		err = nil
	}
	if err == nil {
		err = r.client.SAdd(ctx, r.nodeKey, indexMember(p.UserID, p.SessionID)).Err()
	}
	r.settle(p, false, err)
	r.flushMu.RUnlock()
	e := Event{UserID: p.UserID, Joins: []Presence{p}}
	if stored, ok := decodePresence(old); ok && err == nil {
		e.Leaves = []Presence{stored}
	} else if hadPrev {
		e.Leaves = []Presence{prev}
	}
	r.emit(e)
	return nil
}

// leaveScript: KEYS user hash; ARGV session id, node id ("" for any). Removes the session's
// presence if it belongs to that node and returns it.
var leaveScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
if ARGV[2] ~= '' and cjson.decode(v).node ~= ARGV[2] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return v
`)

// Leave implements Tracker. A session that never appeared online on this node costs no Redis
// call.
func (r *Redis) Leave(ctx context.Context, userID, sessionID string) (bool, error) {
	mine, _ := r.localPresence(userID, sessionID)
	ok, err := r.local.Leave(ctx, userID, sessionID)
	if err != nil || !ok {
		return ok, err
	}
	// The leave is this node's presence as its mirror had it: Redis may lack it (its join is
	// still pending) or hold an older status (an update is).
	r.flushMu.RLock()
	_, _, err = r.unstore(ctx, r.node, userID, sessionID)
	r.settle(mine, true, err)
	r.flushMu.RUnlock()
	r.emit(Event{UserID: userID, Leaves: []Presence{mine}})
	return true, nil
}

// remove deletes one presence of node from Redis and emits its leave.
func (r *Redis) remove(ctx context.Context, node, userID, sessionID string) (bool, error) {
	p, ok, err := r.unstore(ctx, node, userID, sessionID)
	if err != nil {
		return false, err
	}
	if ok {
		r.emit(Event{UserID: userID, Leaves: []Presence{p}})
	}
	return ok, nil
}

// unstore deletes one presence of node from Redis and returns it, if Redis had it.
func (r *Redis) unstore(ctx context.Context, node, userID, sessionID string) (Presence, bool, error) {
	v, err := leaveScript.Run(ctx, r.client, []string{r.userKey(userID)}, sessionID, node).Text()
	if err == redis.Nil {
		err = nil
	}
	if err == nil {
		err = r.client.SRem(ctx, r.nodeIndexKey(node), indexMember(userID, sessionID)).Err()
	}
	if err != nil {
		return Presence{}, false, fmt.Errorf("failed to remove presence: %w", err)
	}
	p, ok := decodePresence(v)
	return p, ok, nil
}

// List implements Tracker: the presences of the users on every node, one pipelined round trip.
func (r *Redis) List(ctx context.Context, userIDs []string, dst []Presence) ([]Presence, error) {
	if len(userIDs) == 0 {
		return dst, nil
	}
	cmds := make([]*redis.StringSliceCmd, len(userIDs))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, uid := range userIDs {
			cmds[i] = p.HVals(ctx, r.userKey(uid))
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("failed to list presences: %w", err)
	}
	for _, c := range cmds {
		for _, v := range c.Val() {
			if p, ok := decodePresence(v); ok {
				dst = append(dst, p)
			}
		}
	}
	return dst, nil
}

// RemoveNode removes every presence of node (a node that stopped heartbeating, or this node's
// previous run under the same id) and emits a leave for each presence it removed. Presences
// another caller removed first are skipped, so concurrent cleanups emit each leave once.
func (r *Redis) RemoveNode(ctx context.Context, node string) (int, error) {
	key := r.nodeIndexKey(node)
	members, err := r.client.SMembers(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("failed to read presences of node %s: %w", node, err)
	}
	n := 0
	for _, m := range members {
		uid, sid, ok := strings.Cut(m, " ")
		if !ok {
			continue
		}
		removed, err := r.remove(ctx, node, uid, sid)
		if err != nil {
			return n, err
		}
		if removed {
			n++
		}
	}
	if err := r.client.Del(ctx, key).Err(); err != nil {
		return n, fmt.Errorf("failed to drop presence index of node %s: %w", node, err)
	}
	return n, nil
}

// Republish writes this node's presences to Redis again, after Redis restarted empty. It
// writes the pending changes first (Flush), then restores only what is missing (a presence
// changed meanwhile is newer there), and emits no events (followers saw them when they
// happened). A session that left while Republish ran is
// removed again, so no ghost is left behind.
func (r *Redis) Republish(ctx context.Context) error {
	if err := r.Flush(ctx); err != nil {
		return err
	}
	all := r.snapshot()
	if len(all) == 0 {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, pr := range all {
			p.HSetNX(ctx, r.userKey(pr.UserID), pr.SessionID, encodePresence(pr))
			p.SAdd(ctx, r.nodeKey, indexMember(pr.UserID, pr.SessionID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to republish presences: %w", err)
	}
	now := map[string]bool{}
	for _, pr := range r.snapshot() {
		now[pr.SessionID] = true
	}
	for _, pr := range all {
		if !now[pr.SessionID] {
			if err := leaveScript.Run(ctx, r.client, []string{r.userKey(pr.UserID)}, pr.SessionID, r.node).Err(); err != nil && err != redis.Nil {
				return fmt.Errorf("failed to remove a presence that left: %w", err)
			}
		}
	}
	return nil
}

// snapshot copies this node's presences.
func (r *Redis) snapshot() []Presence {
	var all []Presence
	for i := range r.local.users {
		s := &r.local.users[i]
		s.mu.RLock()
		for _, ps := range s.m {
			all = append(all, ps...)
		}
		s.mu.RUnlock()
	}
	return all
}

// Follow implements Tracker (node-local).
func (r *Redis) Follow(sessionID string, userIDs []string) { r.local.Follow(sessionID, userIDs) }

// Unfollow implements Tracker (node-local).
func (r *Redis) Unfollow(sessionID string, userIDs []string) { r.local.Unfollow(sessionID, userIDs) }

// UnfollowAll implements Tracker (node-local).
func (r *Redis) UnfollowAll(sessionID string) { r.local.UnfollowAll(sessionID) }

// FollowersOf implements Tracker (node-local).
func (r *Redis) FollowersOf(userID string, dst []string) []string {
	return r.local.FollowersOf(userID, dst)
}
