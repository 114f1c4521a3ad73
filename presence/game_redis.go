package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisGames is the GameSessions shared by the nodes of a cluster.
//
// Key layout, where B is the prefix followed by "{games}:":
//
//	B s:<id>                                   the session: a hash (user, game, cur, ext, created, ver, data)
//	B k:<user>:<len(game)>:<game>:<currency>   id of the open session of that triple
//	B x:<external id>                          id of the open session linked to it
//	B u:<user>                                 set of the user's open session ids
//	B deadlines                                sorted set of ids by deadline, Unix ms
//
// The game id's length in the triple key keeps two triples from sharing a key whatever bytes
// the ids hold (the user id is a UUID). Every key carries the hash tag {games}, so on Redis
// Cluster they live in one slot and each operation is one Lua script over all of them, run
// atomically: exclusivity per triple, the version check of a data write and the claim of an
// expiry hold across nodes. The price, as for accounts, is that game sessions sit on one
// shard of a Cluster. The scripts read the clock with Redis's TIME (one clock for all nodes).
// The data is stored as the bytes given, never decoded in Redis.
type RedisGames struct {
	client redis.UniversalClient
	base   string
	dkey   string
}

// NewRedisGames returns a game session store on client with keys under prefix
// (DefaultRedisPrefix if empty), which must not contain '{' or '}'. The caller owns client.
func NewRedisGames(client redis.UniversalClient, prefix string) *RedisGames {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	base := prefix + "{games}:"
	return &RedisGames{client: client, base: base, dkey: base + "deadlines"}
}

// gameLib is the shared head of the game scripts. KEYS[1] is the deadlines key (declared so
// that Cluster routes the script to the {games} slot; the other keys are built from ARGV[1],
// the base, and carry the same hash tag). rec returns the session as
// {id, user, game, cur, ext, created, ver, data, deadline}, or false.
const gameLib = luaNow + `
local base = ARGV[1]
local dkey = KEYS[1]
local function rec(id)
  local f = redis.call('HMGET', base .. 's:' .. id, 'user', 'game', 'cur', 'ext', 'created', 'ver', 'data')
  if not f[1] then return false end
  return {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7], redis.call('ZSCORE', dkey, id)}
end
local function tripleKey(user, game, cur)
  return base .. 'k:' .. user .. ':' .. #game .. ':' .. game .. ':' .. cur
end
local function close(id)
  local r = rec(id)
  if not r then return false end
  local tk = tripleKey(r[2], r[3], r[4])
  if redis.call('GET', tk) == id then redis.call('DEL', tk) end
  local xk = base .. 'x:' .. r[5]
  if redis.call('GET', xk) == id then redis.call('DEL', xk) end
  redis.call('SREM', base .. 'u:' .. r[2], id)
  redis.call('DEL', base .. 's:' .. id)
  redis.call('ZREM', dkey, id)
  return r
end
`

// ARGV: base, id, user, game, currency, external id, ttl ms, max per user (0: no limit).
// Index entries whose session is gone (which only a Redis evicting keys could leave) are
// overwritten rather than obeyed.
// {0, rec} created, {1, rec} the same one already open, {2, rec} another one open, {3} the
// external id is linked elsewhere, {4} the user is at the limit.
var gameCreate = redis.NewScript(gameLib + `
local tk = tripleKey(ARGV[3], ARGV[4], ARGV[5])
local cur = redis.call('GET', tk)
if cur then
  local r = rec(cur)
  if r then
    if r[5] == ARGV[6] then return {1, r} end
    return {2, r}
  end
end
local xk = base .. 'x:' .. ARGV[6]
local linked = redis.call('GET', xk)
if linked and redis.call('EXISTS', base .. 's:' .. linked) == 1 then return {3} end
local limit = tonumber(ARGV[8])
if limit > 0 and redis.call('SCARD', base .. 'u:' .. ARGV[3]) >= limit then return {4} end
redis.call('HSET', base .. 's:' .. ARGV[2], 'user', ARGV[3], 'game', ARGV[4], 'cur', ARGV[5],
  'ext', ARGV[6], 'created', now, 'ver', 1, 'data', '{}')
redis.call('SET', tk, ARGV[2])
redis.call('SET', xk, ARGV[2])
redis.call('SADD', base .. 'u:' .. ARGV[3], ARGV[2])
redis.call('ZADD', dkey, now + tonumber(ARGV[7]), ARGV[2])
return {0, rec(ARGV[2])}
`)

// ARGV: base, id. rec or false.
var gameGet = redis.NewScript(gameLib + `return rec(ARGV[2])`)

// ARGV: base, external id. rec or false.
var gameGetExt = redis.NewScript(gameLib + `
local id = redis.call('GET', base .. 'x:' .. ARGV[2])
if not id then return false end
return rec(id)
`)

// ARGV: base, user. A list of recs.
var gameList = redis.NewScript(gameLib + `
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', base .. 'u:' .. ARGV[2])) do
  local r = rec(id)
  if r then out[#out + 1] = r end
end
return out
`)

// ARGV: base, id, ttl ms. rec or false.
var gameRefresh = redis.NewScript(gameLib + `
if redis.call('EXISTS', base .. 's:' .. ARGV[2]) == 0 then return false end
redis.call('ZADD', dkey, now + tonumber(ARGV[3]), ARGV[2])
return rec(ARGV[2])
`)

// ARGV: base, id, version, data, ttl ms. {0} not found, {1, rec} written, {2, rec} conflict.
var gameWrite = redis.NewScript(gameLib + `
local k = base .. 's:' .. ARGV[2]
local v = redis.call('HGET', k, 'ver')
if not v then return {0} end
if v ~= ARGV[3] then return {2, rec(ARGV[2])} end
redis.call('HSET', k, 'data', ARGV[4], 'ver', tonumber(v) + 1)
redis.call('ZADD', dkey, now + tonumber(ARGV[5]), ARGV[2])
return {1, rec(ARGV[2])}
`)

// ARGV: base, id. The closed rec or false.
var gameClose = redis.NewScript(gameLib + `return close(ARGV[2])`)

// ARGV: base, ttl ms, users... How many deadlines it moved.
var gameTouch = redis.NewScript(gameLib + `
local next = now + tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'u:' .. ARGV[i])) do
    local d = redis.call('ZSCORE', dkey, id)
    if d and tonumber(d) < next then
      redis.call('ZADD', dkey, next, id)
      n = n + 1
    end
  end
end
return n
`)

// ARGV: base, limit. The closed recs, earliest deadline first.
var gameExpire = redis.NewScript(gameLib + `
local due = redis.call('ZRANGE', dkey, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local r = close(id)
  if r then out[#out + 1] = r else redis.call('ZREM', dkey, id) end
end
return out
`)

func (s *RedisGames) run(ctx context.Context, script *redis.Script, args ...any) (any, error) {
	v, err := script.Run(ctx, s.client, []string{s.dkey}, append([]any{s.base}, args...)...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, err
}

// Create implements GameSessions.
func (s *RedisGames) Create(ctx context.Context, n NewGameSession, ttl time.Duration) (*GameSession, bool, error) {
	v, err := s.run(ctx, gameCreate, newID(), n.UserID, n.GameID, n.Currency, n.ExternalID, ms(ttl), max(n.MaxPerUser, 0))
	if err != nil {
		return nil, false, fmt.Errorf("failed to create game session: %w", err)
	}
	status, gs, err := statusAndSession(v)
	if err != nil {
		return nil, false, fmt.Errorf("failed to create game session: %w", err)
	}
	switch status {
	case 0:
		return gs, true, nil
	case 1:
		return gs, false, nil
	case 2:
		return nil, false, &ActiveSessionError{Active: gs}
	case 3:
		return nil, false, ErrExternalIDInUse
	default:
		return nil, false, ErrTooManyGameSessions
	}
}

// Get implements GameSessions.
func (s *RedisGames) Get(ctx context.Context, id string) (*GameSession, error) {
	return s.one(ctx, "get", gameGet, id)
}

// GetByExternalID implements GameSessions.
func (s *RedisGames) GetByExternalID(ctx context.Context, externalID string) (*GameSession, error) {
	return s.one(ctx, "get", gameGetExt, externalID)
}

// Refresh implements GameSessions.
func (s *RedisGames) Refresh(ctx context.Context, id string, ttl time.Duration) (*GameSession, error) {
	return s.one(ctx, "refresh", gameRefresh, id, ms(ttl))
}

// Close implements GameSessions.
func (s *RedisGames) Close(ctx context.Context, id string) (*GameSession, error) {
	return s.one(ctx, "close", gameClose, id)
}

// one runs a script that answers one session or false (not found).
func (s *RedisGames) one(ctx context.Context, what string, script *redis.Script, args ...any) (*GameSession, error) {
	v, err := s.run(ctx, script, args...)
	if err != nil {
		return nil, fmt.Errorf("failed to %s game session: %w", what, err)
	}
	if v == nil {
		return nil, ErrGameSessionNotFound
	}
	gs, err := parseGame(v)
	if err != nil {
		return nil, fmt.Errorf("failed to %s game session: %w", what, err)
	}
	return gs, nil
}

// List implements GameSessions.
func (s *RedisGames) List(ctx context.Context, userID string) ([]*GameSession, error) {
	out, err := s.many(ctx, "list", gameList, userID)
	if err != nil {
		return nil, err
	}
	sortSessions(out)
	return out, nil
}

// WriteData implements GameSessions.
func (s *RedisGames) WriteData(ctx context.Context, id string, data []byte, version int64, ttl time.Duration) (*GameSession, error) {
	v, err := s.run(ctx, gameWrite, id, version, data, ms(ttl))
	if err != nil {
		return nil, fmt.Errorf("failed to write game session data: %w", err)
	}
	status, gs, err := statusAndSession(v)
	if err != nil {
		return nil, fmt.Errorf("failed to write game session data: %w", err)
	}
	switch status {
	case 1:
		return gs, nil
	case 2:
		return gs, ErrVersionConflict
	default:
		return nil, ErrGameSessionNotFound
	}
}

// Touch implements GameSessions, in scripts of up to touchBatch users.
func (s *RedisGames) Touch(ctx context.Context, userIDs []string, ttl time.Duration) (int, error) {
	n, err := touchInBatches(userIDs, ttl, func(args []any) (any, error) { return s.run(ctx, gameTouch, args...) })
	if err != nil {
		return n, fmt.Errorf("failed to touch game sessions: %w", err)
	}
	return n, nil
}

// Expire implements GameSessions.
func (s *RedisGames) Expire(ctx context.Context, limit int) ([]*GameSession, error) {
	return s.many(ctx, "expire", gameExpire, limit)
}

// many runs a script that answers a list of sessions.
func (s *RedisGames) many(ctx context.Context, what string, script *redis.Script, args ...any) ([]*GameSession, error) {
	v, err := s.run(ctx, script, args...)
	if err != nil {
		return nil, fmt.Errorf("failed to %s game sessions: %w", what, err)
	}
	out, err := parseGames(v)
	if err != nil {
		return out, fmt.Errorf("failed to %s game sessions: %w", what, err)
	}
	return out, nil
}

// statusAndSession parses a script's {status, rec?} answer.
func statusAndSession(v any) (int64, *GameSession, error) {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return 0, nil, fmt.Errorf("unexpected script answer %T", v)
	}
	status, ok := a[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("unexpected script status %T", a[0])
	}
	if len(a) < 2 {
		return status, nil, nil
	}
	gs, err := parseGame(a[1])
	return status, gs, err
}

func parseGames(v any) ([]*GameSession, error) {
	a, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("unexpected script answer %T", v)
	}
	out := make([]*GameSession, 0, len(a))
	for _, r := range a {
		gs, err := parseGame(r)
		if err != nil {
			return out, err
		}
		out = append(out, gs)
	}
	return out, nil
}

// parseGame parses rec's {id, user, game, cur, ext, created, ver, data, deadline}.
func parseGame(v any) (*GameSession, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 9 {
		return nil, fmt.Errorf("unexpected game session record %T", v)
	}
	var f [9]string
	for i, x := range a {
		if f[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("unexpected game session field %d: %T", i, x)
		}
	}
	created, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad created time %q: %w", f[5], err)
	}
	version, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad version %q: %w", f[6], err)
	}
	deadline, err := strconv.ParseFloat(f[8], 64)
	if err != nil {
		return nil, fmt.Errorf("bad deadline %q: %w", f[8], err)
	}
	return &GameSession{ID: f[0], UserID: f[1], GameID: f[2], Currency: f[3], ExternalID: f[4],
		CreatedAt: time.UnixMilli(created), ExpiresAt: time.UnixMilli(int64(deadline)),
		Data: []byte(f[7]), Version: version}, nil
}
