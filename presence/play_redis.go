package presence

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix the Redis stores use when given an empty one; the same
// as the auth stores'.
const DefaultRedisPrefix = "sessiongate:"

// RedisPlay is the PlaySessions shared by the nodes of a cluster: one sorted set,
// P{play}:deadlines, of user ids scored by their deadline in Unix milliseconds.
//
// Every operation is one Lua script, which Redis runs atomically, so exclusivity holds across
// nodes: of concurrent Initiates for one user exactly one finds no active session. The scripts
// read the clock with Redis's TIME, so every node judges deadlines by one clock and node clock
// skew does not matter. Expire removes the due members in the same script that finds them:
// each expiry is claimed by exactly one node.
type RedisPlay struct {
	client redis.UniversalClient
	key    string
}

// NewRedisPlay returns a play session store on client with keys under prefix
// (DefaultRedisPrefix if empty). The caller owns client.
func NewRedisPlay(client redis.UniversalClient, prefix string) *RedisPlay {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &RedisPlay{client: client, key: prefix + "{play}:deadlines"}
}

// luaNow sets now to Redis's clock in milliseconds. Redis 7 replicates a script's effects,
// so reading TIME before writing is allowed.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS[1] deadlines; ARGV[1] user, ARGV[2] timeout ms. 1 started, 0 already active.
var playInitiate = redis.NewScript(luaNow + `
local d = redis.call('ZSCORE', KEYS[1], ARGV[1])
if d and tonumber(d) > now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// KEYS[1] deadlines; ARGV[1] user, ARGV[2] timeout ms. 1 extended, 0 no active session.
var playHeartbeat = redis.NewScript(luaNow + `
local d = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not d or tonumber(d) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// KEYS[1] deadlines; ARGV[1] user. 1 ended, 0 no active session (an expired one is left to Expire).
var playEnd = redis.NewScript(luaNow + `
local d = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not d then return 0 end
if tonumber(d) <= now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`)

// KEYS[1] deadlines; ARGV[1] timeout ms, ARGV[2..] users. Returns how many it extended. One
// ZMSCORE reads every user's deadline (most users of a node's sockets have no session).
var playTouch = redis.NewScript(luaNow + `
local next = now + tonumber(ARGV[1])
local users = {}
for i = 2, #ARGV do users[#users + 1] = ARGV[i] end
local ds = redis.call('ZMSCORE', KEYS[1], unpack(users))
local n = 0
for i, d in ipairs(ds) do
  if d then
    d = tonumber(d)
    if d > now and d < next then
      redis.call('ZADD', KEYS[1], next, users[i])
      n = n + 1
    end
  end
end
return n
`)

// KEYS[1] a deadline sorted set; ARGV[1] limit. Removes and returns [member, score, ...] of
// the members due now, earliest first.
var claimDue = redis.NewScript(luaNow + `
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]), 'WITHSCORES')
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
return due
`)

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// Initiate implements PlaySessions.
func (s *RedisPlay) Initiate(ctx context.Context, userID string, timeout time.Duration) error {
	ok, err := playInitiate.Run(ctx, s.client, []string{s.key}, userID, ms(timeout)).Int()
	if err != nil {
		return fmt.Errorf("failed to initiate play session: %w", err)
	}
	if ok == 0 {
		return ErrAlreadyInGame
	}
	return nil
}

// Heartbeat implements PlaySessions.
func (s *RedisPlay) Heartbeat(ctx context.Context, userID string, timeout time.Duration) error {
	return s.run(ctx, playHeartbeat, "heartbeat", userID, ms(timeout))
}

// End implements PlaySessions.
func (s *RedisPlay) End(ctx context.Context, userID string) error {
	return s.run(ctx, playEnd, "end", userID)
}

// KEYS[1] deadlines; ARGV[1] user. The deadline in Unix ms, or 0 for no active session.
var playDeadline = redis.NewScript(luaNow + `
local d = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not d or tonumber(d) <= now then return 0 end
return tonumber(d)
`)

// Deadline implements PlaySessions.
func (s *RedisPlay) Deadline(ctx context.Context, userID string) (time.Time, error) {
	at, err := playDeadline.Run(ctx, s.client, []string{s.key}, userID).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to read play session: %w", err)
	}
	if at == 0 {
		return time.Time{}, ErrNoActiveSession
	}
	return time.UnixMilli(at), nil
}

// run runs a script that answers 1 for done and 0 for no active session.
func (s *RedisPlay) run(ctx context.Context, script *redis.Script, what string, args ...any) error {
	ok, err := script.Run(ctx, s.client, []string{s.key}, args...).Int()
	if err != nil {
		return fmt.Errorf("failed to %s play session: %w", what, err)
	}
	if ok == 0 {
		return ErrNoActiveSession
	}
	return nil
}

// touchBatch bounds the users of one Touch script, so that one script never holds Redis for
// long (a thousand ZSCOREs take well under a millisecond).
const touchBatch = 1000

// Touch implements PlaySessions, in scripts of up to touchBatch users.
func (s *RedisPlay) Touch(ctx context.Context, userIDs []string, timeout time.Duration) (int, error) {
	n, err := touchInBatches(userIDs, timeout, func(args []any) (any, error) {
		return playTouch.Run(ctx, s.client, []string{s.key}, args...).Result()
	})
	if err != nil {
		return n, fmt.Errorf("failed to touch play sessions: %w", err)
	}
	return n, nil
}

// touchInBatches calls run with the arguments of a touch script, [timeout ms, user ids...],
// for consecutive batches of up to touchBatch users, and sums the counts the script returns.
func touchInBatches(ids []string, timeout time.Duration, run func(args []any) (any, error)) (int, error) {
	total := 0
	args := make([]any, 0, min(len(ids), touchBatch)+1)
	for len(ids) > 0 {
		n := min(len(ids), touchBatch)
		args = append(args[:0], ms(timeout))
		for _, u := range ids[:n] {
			args = append(args, u)
		}
		v, err := run(args)
		if err != nil {
			return total, err
		}
		c, _ := v.(int64)
		total += int(c)
		ids = ids[n:]
	}
	return total, nil
}

// Expire implements PlaySessions.
func (s *RedisPlay) Expire(ctx context.Context, limit int) ([]Expired, error) {
	due, err := claimDue.Run(ctx, s.client, []string{s.key}, limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("failed to expire play sessions: %w", err)
	}
	return parseDue(due)
}

// parseDue turns claimDue's [member, score, ...] into Expired values.
func parseDue(due []string) ([]Expired, error) {
	if len(due) == 0 {
		return nil, nil
	}
	out := make([]Expired, 0, len(due)/2)
	for i := 0; i+1 < len(due); i += 2 {
		at, err := strconv.ParseFloat(due[i+1], 64)
		if err != nil {
			return out, fmt.Errorf("bad deadline %q: %w", due[i+1], err)
		}
		out = append(out, Expired{ID: due[i], Deadline: time.UnixMilli(int64(at))})
	}
	return out, nil
}
