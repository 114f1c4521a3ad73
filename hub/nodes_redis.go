package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisRegistry is the Registry of a cluster on Redis. Three keys under one hash tag, so that
// every operation is one atomic script on a single server and on Redis Cluster alike:
//
//	<prefix>{nodes}       sorted set: node id, scored by its last heartbeat (Redis time, ms)
//	<prefix>{nodes}:info  hash: node id -> NodeInfo as JSON
//	<prefix>{nodes}:dead  set: expired nodes not yet cleaned up
//
// Times come from the Redis server's clock (TIME), so nodes with skewed clocks still agree on
// who is live. A registry this small (one entry per node) sits comfortably on one shard.
type RedisRegistry struct {
	client           redis.UniversalClient
	zset, hash, dead string
	ttl              time.Duration
}

// NewRedisRegistry returns a registry on client with keys under prefix ("sessiongate:" if
// empty), whose nodes stay live for ttl after a heartbeat.
func NewRedisRegistry(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisRegistry {
	if prefix == "" {
		prefix = "sessiongate:"
	}
	return &RedisRegistry{client: client, zset: prefix + "{nodes}", hash: prefix + "{nodes}:info",
		dead: prefix + "{nodes}:dead", ttl: ttl}
}

// TTL implements Registry.
func (r *RedisRegistry) TTL() time.Duration { return r.ttl }

// heartbeatScript: KEYS zset, hash, dead; ARGV node id, info JSON without the heartbeat time
// (the zset's score, Redis time in ms, is that). A node back under an expired id is no longer
// dead. Returns the score.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[1])
return ms
`)

// nodesScript: KEYS zset, hash; ARGV ttl ms. Returns {id, info, score, ...} of live nodes.
var nodesScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ms - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local info = redis.call('HGET', KEYS[2], ids[i])
  if info then
    table.insert(out, ids[i]); table.insert(out, info); table.insert(out, ids[i+1])
  end
end
return out
`)

// expireScript: KEYS zset, hash, dead; ARGV ttl ms. Moves the expired nodes to the dead set
// and returns their ids.
var expireScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (ms - tonumber(ARGV[1])))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('SADD', KEYS[3], id)
end
return ids
`)

// Heartbeat implements Registry.
func (r *RedisRegistry) Heartbeat(ctx context.Context, n NodeInfo) error {
	n.LastHeartbeatAt = time.Time{}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("failed to encode node info: %w", err)
	}
	if err := heartbeatScript.Run(ctx, r.client, []string{r.zset, r.hash, r.dead}, n.ID, b).Err(); err != nil {
		return fmt.Errorf("failed to heartbeat node %s: %w", n.ID, err)
	}
	return nil
}

// Nodes implements Registry.
func (r *RedisRegistry) Nodes(ctx context.Context) ([]NodeInfo, error) {
	vals, err := nodesScript.Run(ctx, r.client, []string{r.zset, r.hash}, r.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("failed to list nodes: %w", err)
	}
	out := make([]NodeInfo, 0, len(vals)/3)
	for i := 0; i+2 < len(vals); i += 3 {
		var n NodeInfo
		if json.Unmarshal([]byte(vals[i+1]), &n) != nil {
			continue // a malformed entry from a foreign writer is skipped, not fatal
		}
		var ms float64
		if _, err := fmt.Sscan(vals[i+2], &ms); err == nil {
			n.LastHeartbeatAt = time.UnixMilli(int64(ms)).UTC()
		}
		n.ID = vals[i]
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Leave implements Registry.
func (r *RedisRegistry) Leave(ctx context.Context, id string) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, r.zset, id)
		p.HDel(ctx, r.hash, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to remove node %s: %w", id, err)
	}
	return nil
}

// Expire implements Registry.
func (r *RedisRegistry) Expire(ctx context.Context) ([]string, error) {
	ids, err := expireScript.Run(ctx, r.client, []string{r.zset, r.hash, r.dead}, r.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("failed to expire nodes: %w", err)
	}
	return ids, nil
}

// Dead implements Registry.
func (r *RedisRegistry) Dead(ctx context.Context) ([]string, error) {
	ids, err := r.client.SMembers(ctx, r.dead).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to list dead nodes: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Cleaned implements Registry.
func (r *RedisRegistry) Cleaned(ctx context.Context, id string) error {
	if err := r.client.SRem(ctx, r.dead, id).Err(); err != nil {
		return fmt.Errorf("failed to mark node %s cleaned: %w", id, err)
	}
	return nil
}
