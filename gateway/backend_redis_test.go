package gateway_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

func init() {
	backendKinds = append(backendKinds, backendKind{name: "redis", open: openRedisBackend})
}

var redisPrefixSeq atomic.Int64

// openRedisBackend starts one redis-server for a top-level test; each of its cases gets a
// client of its own and a key prefix no other case uses.
func openRedisBackend(t *testing.T) backend {
	srv := redisproc.ForTest(t)
	return backend{
		name: "redis",
		stores: func(t *testing.T) gateway.Stores {
			return redisStores(t, srv.Addr())
		},
		killable: func(t *testing.T) (gateway.Stores, func(), func()) {
			own := redisproc.ForTest(t)
			stores := redisStores(t, own.Addr(), auth.WithRedisWatchBackoff(10*time.Millisecond, 200*time.Millisecond))
			kill := func() {
				if err := own.Kill(); err != nil {
					t.Fatalf("killing redis: %v", err)
				}
			}
			restart := func() {
				if err := own.Restart(); err != nil {
					t.Fatalf("restarting redis: %v", err)
				}
			}
			return stores, kill, restart
		},
	}
}

func redisStores(t *testing.T, addr string, opts ...auth.RedisRevocationsOption) gateway.Stores {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	prefix := "gwtest" + strconv.FormatInt(redisPrefixSeq.Add(1), 10) + ":"
	return gateway.Stores{
		Accounts:    auth.NewRedisAccounts(client, prefix),
		Revocations: auth.NewRedisRevocations(client, prefix, opts...),
		Play:        presence.NewRedisPlay(client, prefix),
		Games:       presence.NewRedisGames(client, prefix),
	}
}
