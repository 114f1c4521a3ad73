package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// Tests of what only the Redis stores can do wrong: losing the feed and finding it again,
// garbage on the wire, and the keys they leave behind.

// redisPair returns a server, a watched store and a writer store (another node) on it.
func redisPair(t *testing.T, opts ...RedisRevocationsOption) (*redisproc.Server, redis.UniversalClient, *RedisRevocations, *RedisRevocations) {
	srv := redisproc.ForTest(t)
	newClient := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	prefix := testPrefix()
	writerClient := newClient()
	return srv, writerClient, NewRedisRevocations(newClient(), prefix, opts...), NewRedisRevocations(writerClient, prefix)
}

// revokeEventually retries Revoke while the writer's pool recovers from a restarted server.
func revokeEventually(t *testing.T, s RevocationStore, r Revocation) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Revoke(context.Background(), r)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Revoke: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Killing Redis under a running Watch must make it report unsynced, and once Redis is back it
// must resubscribe, re-read the snapshot (so a revocation made before it resubscribed is not
// lost), report synced, and then deliver new revocations again.
func TestRedisRevocationsSurviveRedisRestart(t *testing.T) {
	srv, _, watched, writer := redisPair(t)
	w := startWatch(t, watched)
	w.waitSynced(5 * time.Second)

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	w.waitUnsynced(5 * time.Second)
	if err := watched.Ping(context.Background()); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Most likely made while Watch is still backing off: it must come with the new snapshot.
	during := liveRevocation(RevokeUser)
	revokeEventually(t, writer, during)
	w.waitSynced(10 * time.Second)
	w.waitApplied(during, 2*time.Second)

	after := liveRevocation(RevokeSession)
	revokeEventually(t, writer, after)
	w.waitApplied(after, time.Second)
	if err := w.stop(); err != context.Canceled {
		t.Fatalf("Watch = %v, want context.Canceled", err)
	}
}

// A subscription connection closed by the server (CLIENT KILL, a proxy, an idle timeout) is
// a lost feed like any other.
func TestRedisRevocationsSubscriberKilled(t *testing.T) {
	_, client, watched, writer := redisPair(t)
	w := startWatch(t, watched)
	w.waitSynced(5 * time.Second)

	if err := client.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	w.waitUnsynced(5 * time.Second)
	w.waitSynced(5 * time.Second)
	r := liveRevocation(RevokeRefresh)
	revokeEventually(t, writer, r)
	w.waitApplied(r, time.Second)
}

// A subscription that stops answering without the connection breaking (here: Redis paused)
// is caught by the health check's ping and treated as lost.
func TestRedisRevocationsHealthCheck(t *testing.T) {
	_, client, watched, writer := redisPair(t, WithRedisWatchHealthCheck(100*time.Millisecond))
	w := startWatch(t, watched)
	w.waitSynced(5 * time.Second)

	if err := client.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	w.waitUnsynced(2 * time.Second)
	w.waitSynced(5 * time.Second)
	r := liveRevocation(RevokeSession)
	revokeEventually(t, writer, r)
	w.waitApplied(r, time.Second)
}

// Garbage in the set or on the channel is skipped; it never stops the feed or panics.
func TestRedisRevocationsSkipMalformed(t *testing.T) {
	_, client, watched, writer := redisPair(t)
	ctx := context.Background()
	good := liveRevocation(RevokeUser)
	mustRevoke(t, writer, good)
	garbage := []string{"not json", `{"k":9,"id":"x","b":1,"u":99999999999}`, `{}`, `[1,2]`, `{"k":"1"}`}
	for _, g := range garbage {
		if err := client.ZAdd(ctx, watched.key, redis.Z{Score: 99999999999, Member: g}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatch(t, watched)
	w.waitSynced(5 * time.Second)
	if got := w.snapshotCopy(); len(got) != 1 || got[0] != good {
		t.Fatalf("snapshot = %+v, want only %+v", got, good)
	}

	for _, g := range garbage {
		if err := client.Publish(ctx, watched.channel, g).Err(); err != nil {
			t.Fatal(err)
		}
	}
	next := liveRevocation(RevokeSession)
	mustRevoke(t, writer, next)
	w.waitApplied(next, time.Second)
	if got := w.allCopy(); len(got) != 2 {
		t.Fatalf("applied %+v, want only the two valid revocations", got)
	}
}

// The revocation set forgets entries past their Until and expires with the last of them.
func TestRedisRevocationsExpire(t *testing.T) {
	_, client, watched, _ := redisPair(t)
	ctx := context.Background()
	now := time.Now().Unix()

	past := Revocation{Kind: RevokeSession, ID: "old", Before: now - 100, Until: now - 10}
	mustRevoke(t, watched, past)
	if n, err := client.Exists(ctx, watched.key).Result(); err != nil || n != 0 {
		t.Fatalf("an already expired revocation was kept: exists=%d err=%v", n, err)
	}

	r := Revocation{Kind: RevokeSession, ID: "soon", Before: now, Until: now + 30}
	mustRevoke(t, watched, r)
	later := Revocation{Kind: RevokeUser, ID: "later", Before: now, Until: now + 300}
	mustRevoke(t, watched, later)
	mustRevoke(t, watched, r) // an earlier Until must not shorten the key's life
	at, err := client.ExpireTime(ctx, watched.key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Duration(later.Until+1) * time.Second; at != want {
		t.Fatalf("key expires at %v, want %v (latest Until + 1s)", at, want)
	}
	if n, err := client.ZCard(ctx, watched.key).Result(); err != nil || n != 2 {
		t.Fatalf("set holds %d entries (err %v), want 2: a repeated revocation is stored once", n, err)
	}
}

// Every account key carries the {accounts} hash tag, so on Cluster they share one slot.
func TestRedisAccountKeysShareSlot(t *testing.T) {
	s := NewRedisAccounts(nil, "")
	keys := []string{
		s.userKey("u"), s.usernameKey("name{x}"),
		s.identityKey(ProviderDevice, "d}{"), s.identityKey(ProviderCustom, "c"), s.identityKey(ProviderEmail, "e"),
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "sessiongate:{accounts}:") {
			t.Fatalf("key %q lacks the prefix and hash tag", k)
		}
	}
	if s.identityKey(Provider("user"), "x") != "" {
		t.Fatal("an unknown provider got an index key")
	}
}
