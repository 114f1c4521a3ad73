package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// benchLookupParallelism is goroutines per GOMAXPROCS in the parallel benchmarks: the gateway
// serves many requests at once, and a Redis lookup is mostly waiting, so 2 goroutines on a
// 2-core machine would measure latency, not the throughput the store can give.
const benchLookupParallelism = 16

// BenchmarkFindByIdentity measures the hot path of "authenticate an existing device".
// "redis" is the store's one-round-trip script; "redis-get-get" is the two-round-trip
// alternative (GET the index, then GET the record), kept here as the measured reason for
// the script.
func BenchmarkFindByIdentity(b *testing.B) {
	const accounts = 1000
	seed := func(b *testing.B, s AccountStore) []string {
		devices := make([]string, accounts)
		for i := range devices {
			a := conformanceAccount()
			if err := s.Create(context.Background(), a, ProviderDevice); err != nil {
				b.Fatal(err)
			}
			devices[i] = a.DeviceIDs[0]
		}
		return devices
	}
	run := func(b *testing.B, devices []string, find func(ctx context.Context, id string) (*Account, error)) {
		b.ReportAllocs()
		b.SetParallelism(benchLookupParallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			i := 0
			for pb.Next() {
				if _, err := find(ctx, devices[i%len(devices)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	}

	b.Run("memory", func(b *testing.B) {
		s := NewMemoryAccounts()
		devices := seed(b, s)
		run(b, devices, func(ctx context.Context, id string) (*Account, error) {
			return s.FindByIdentity(ctx, ProviderDevice, id)
		})
	})

	srv := redisproc.ForTest(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64})
	b.Cleanup(func() { _ = client.Close() })
	s := NewRedisAccounts(client, "")
	var devices []string

	b.Run("redis", func(b *testing.B) {
		if devices == nil {
			devices = seed(b, s)
		}
		run(b, devices, func(ctx context.Context, id string) (*Account, error) {
			return s.FindByIdentity(ctx, ProviderDevice, id)
		})
	})

	b.Run("redis-get-get", func(b *testing.B) {
		if devices == nil {
			devices = seed(b, s)
		}
		run(b, devices, func(ctx context.Context, id string) (*Account, error) {
			uid, err := client.Get(ctx, s.identityKey(ProviderDevice, id)).Result()
			if errors.Is(err, redis.Nil) {
				return nil, ErrAccountNotFound
			}
			if err != nil {
				return nil, err
			}
			rec, err := client.Get(ctx, s.userKey(uid)).Bytes()
			if err != nil {
				return nil, err
			}
			return decodeAccount(rec)
		})
	})
}
