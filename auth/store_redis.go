package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisfeed"
)

// DefaultRedisPrefix is the key prefix the Redis stores use when given an empty one.
const DefaultRedisPrefix = "sessiongate:"

// RedisAccounts is the AccountStore shared by the nodes of a cluster, on a single Redis
// server, Sentinel or Redis Cluster.
//
// Key layout, where P is the prefix ("sessiongate:" by default):
//
//	P{accounts}:user:<user id>       the account as JSON
//	P{accounts}:username:<username>  user id
//	P{accounts}:device:<device id>   user id
//	P{accounts}:custom:<custom id>   user id
//	P{accounts}:email:<email>        user id
//
// Every key carries the hash tag {accounts}, so on Redis Cluster they all live in one slot.
// That is what lets Create check both unique indexes and write the record and both indexes
// in one Lua script, which Redis runs atomically; scripts may not touch keys in different
// slots, and without one atomic step two nodes could each create an account for the same
// device. It is also what lets a lookup follow an index to its record in one round trip. The
// price is that all accounts sit on one shard, so Cluster adds no capacity for accounts:
// account data must fit one master, and lookups share its one core (tens of thousands per
// second, each a few microseconds). Revocations use a key of their own, outside that slot.
//
// The prefix must not contain '{' or '}', or the hash tag above would not be the key's.
type RedisAccounts struct {
	client redis.UniversalClient
	// base is P{accounts}:, the start of every key.
	base string
}

// NewRedisAccounts returns an account store on client, with keys under prefix
// (DefaultRedisPrefix if empty). The caller owns client and closes it.
func NewRedisAccounts(client redis.UniversalClient, prefix string) *RedisAccounts {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &RedisAccounts{client: client, base: prefix + "{accounts}:"}
}

func (s *RedisAccounts) userKey(userID string) string { return s.base + "user:" + userID }

func (s *RedisAccounts) usernameKey(username string) string { return s.base + "username:" + username }

// identityKey returns the index key for p's identity id, or "" for an unknown provider, so
// that no provider name can alias another index ("user", "username").
func (s *RedisAccounts) identityKey(p Provider, id string) string {
	switch p {
	case ProviderDevice, ProviderCustom, ProviderEmail:
		return s.base + string(p) + ":" + id
	}
	return ""
}

// findScript follows an index key to the record in one round trip: the hot path, "sign in an
// existing device", is this one call. ARGV[1] is the record key prefix; the record key it
// builds carries the same hash tag as the index key, so on Cluster it is in the same slot.
var findScript = redis.NewScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('GET', ARGV[1] .. id)
`)

// createScript checks the identity index, then the username index (the order the memory store
// checks them in, so both report the same error), then writes the record and both indexes.
// Redis runs it atomically, so of two concurrent creates exactly one wins and a failed create
// writes nothing.
//
// KEYS: identity index, username index, record. ARGV: user id, record JSON.
// Returns 0 on success, 1 if the identity is taken, 2 if the username is, 3 if the user id is.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 3 end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
return 0
`)

// decodeAccount turns a stored record into an Account; each call returns a fresh copy.
func decodeAccount(b []byte) (*Account, error) {
	var a Account
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("failed to decode account: %w", err)
	}
	return &a, nil
}

// Get implements AccountStore.
func (s *RedisAccounts) Get(ctx context.Context, userID string) (*Account, error) {
	b, err := s.client.Get(ctx, s.userKey(userID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrAccountNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get account: %w", err)
	}
	return decodeAccount(b)
}

// FindByIdentity implements AccountStore in one round trip.
func (s *RedisAccounts) FindByIdentity(ctx context.Context, p Provider, id string) (*Account, error) {
	key := s.identityKey(p, id)
	if key == "" {
		return nil, ErrAccountNotFound
	}
	return s.find(ctx, key)
}

// FindByUsername implements AccountStore in one round trip.
func (s *RedisAccounts) FindByUsername(ctx context.Context, username string) (*Account, error) {
	return s.find(ctx, s.usernameKey(username))
}

func (s *RedisAccounts) find(ctx context.Context, indexKey string) (*Account, error) {
	b, err := findScript.Run(ctx, s.client, []string{indexKey}, s.base+"user:").Text()
	if errors.Is(err, redis.Nil) {
		return nil, ErrAccountNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to find account: %w", err)
	}
	return decodeAccount([]byte(b))
}

// Create implements AccountStore atomically, with one Lua script (see createScript).
func (s *RedisAccounts) Create(ctx context.Context, a *Account, p Provider) error {
	idKey := s.identityKey(p, a.identity(p))
	if idKey == "" {
		return fmt.Errorf("failed to create account: unknown provider %q", p)
	}
	record, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("failed to encode account: %w", err)
	}
	keys := []string{idKey, s.usernameKey(a.Username), s.userKey(a.ID)}
	res, err := createScript.Run(ctx, s.client, keys, a.ID, record).Int()
	if err != nil {
		return fmt.Errorf("failed to create account: %w", err)
	}
	switch res {
	case 0:
		return nil
	case 1:
		return ErrIdentityTaken
	case 2:
		return ErrUsernameTaken
	case 3:
		// User ids are fresh UUIDs, so this is a caller bug; refuse rather than overwrite.
		return fmt.Errorf("failed to create account: user id %q already exists", a.ID)
	default:
		return fmt.Errorf("failed to create account: unexpected script result %d", res)
	}
}

// Ping implements AccountStore.
func (s *RedisAccounts) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("failed to ping redis: %w", err)
	}
	return nil
}

// RedisRevocations is the RevocationStore shared by the nodes of a cluster, on a single Redis
// server, Sentinel or Redis Cluster.
//
// Revocations in force are members of one sorted set, P + "revoked" (P is the prefix): each
// member is the revocation's JSON and its score is its Until. One key keeps every operation
// single-slot on Cluster with no hash tag, makes the snapshot a ZSCAN of exactly the entries
// in force rather than a SCAN of every key on every master, and lets one Lua script store,
// prune and announce a revocation atomically. Entries past their Until are pruned by each
// Revoke, and the key expires after the latest Until, so nothing outlives its tokens.
//
// Each revocation is announced on the channel P + "revocations" as the same JSON. Watch
// subscribes before it reads the snapshot, so a revocation is either in the snapshot or
// arrives as a message after it; applying one twice is harmless.
type RedisRevocations struct {
	client  redis.UniversalClient
	key     string
	channel string

	minBackoff, maxBackoff time.Duration
	healthEvery            time.Duration
	now                    func() time.Time
}

// RedisRevocationsOption configures a RedisRevocations.
type RedisRevocationsOption func(*RedisRevocations)

// WithRedisWatchBackoff sets how long Watch waits before resubscribing after the feed is lost:
// first minimum, doubling on each failure up to maximum. The defaults are 50ms and 2s.
func WithRedisWatchBackoff(minimum, maximum time.Duration) RedisRevocationsOption {
	return func(s *RedisRevocations) {
		if minimum > 0 {
			s.minBackoff = minimum
		}
		if maximum >= s.minBackoff {
			s.maxBackoff = maximum
		}
	}
}

// WithRedisWatchHealthCheck sets how long Watch's subscription may stay silent before Watch
// pings it; a ping unanswered for as long again counts as a lost feed. It catches a
// connection that died without a reset (a network partition). The default is 10s.
func WithRedisWatchHealthCheck(every time.Duration) RedisRevocationsOption {
	return func(s *RedisRevocations) {
		if every > 0 {
			s.healthEvery = every
		}
	}
}

// NewRedisRevocations returns a revocation store on client, with its key and channel under
// prefix (DefaultRedisPrefix if empty). The caller owns client and closes it after Watch has
// returned.
func NewRedisRevocations(client redis.UniversalClient, prefix string, opts ...RedisRevocationsOption) *RedisRevocations {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	s := &RedisRevocations{
		client:      client,
		key:         prefix + "revoked",
		channel:     prefix + "revocations",
		minBackoff:  50 * time.Millisecond,
		maxBackoff:  2 * time.Second,
		healthEvery: 10 * time.Second,
		now:         time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// revokeScript adds the revocation, drops entries already past their Until, keeps the key
// alive until the latest Until, and announces the revocation, all atomically, so no Watch
// can read a snapshot without it and also miss its message.
//
// KEYS: the sorted set. ARGV: revocation JSON, its Until, now (Unix seconds), the channel.
var revokeScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('EXPIREAT', KEYS[1], math.floor(tonumber(last[2])) + 1)
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
`)

// Revoke implements RevocationStore.
func (s *RedisRevocations) Revoke(ctx context.Context, r Revocation) error {
	if !r.valid() {
		return errInvalidRevocation
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failed to encode revocation: %w", err)
	}
	err = revokeScript.Run(ctx, s.client, []string{s.key}, b, r.Until, s.now().Unix(), s.channel).Err()
	if err != nil {
		return fmt.Errorf("failed to store revocation: %w", err)
	}
	return nil
}

// Watch implements RevocationStore on internal/redisfeed: each pass subscribes, reads the
// snapshot, calls synced and applies messages until the subscription fails; then Watch calls
// unsynced (if it had called synced), waits a backoff and starts a new pass, so revocations
// made while it was cut off arrive with the next snapshot.
func (s *RedisRevocations) Watch(ctx context.Context, apply func(Revocation), synced, unsynced func()) error {
	return redisfeed.Run(ctx, s.client, s.channel, redisfeed.Options{
		MinBackoff: s.minBackoff, MaxBackoff: s.maxBackoff, HealthEvery: s.healthEvery,
	}, redisfeed.Handler{
		Resync: func(ctx context.Context) error { return s.snapshot(ctx, apply) },
		Message: func(payload string) {
			if r, ok := decodeRevocation(payload); ok {
				apply(r)
			}
		},
		Synced: synced,
		Lost:   unsynced,
	})
}

// snapshot applies every revocation in force.
func (s *RedisRevocations) snapshot(ctx context.Context, apply func(Revocation)) error {
	now := s.now().Unix()
	var cursor uint64
	for {
		// ZSCAN pages through large sets without blocking Redis, and returns every member
		// present for the whole scan at least once.
		kv, next, err := s.client.ZScan(ctx, s.key, cursor, "", 1000).Result()
		if err != nil {
			return fmt.Errorf("failed to read revocations: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r, ok := decodeRevocation(kv[i]); ok && r.Until >= now {
				apply(r)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// decodeRevocation parses a stored or announced revocation; anything malformed is skipped,
// since one bad writer must not stop a node from applying the good ones.
func decodeRevocation(s string) (Revocation, bool) {
	var r Revocation
	if err := json.Unmarshal([]byte(s), &r); err != nil || !r.valid() {
		return Revocation{}, false
	}
	return r, true
}

// Ping implements RevocationStore.
func (s *RedisRevocations) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("failed to ping redis: %w", err)
	}
	return nil
}
