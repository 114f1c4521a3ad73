package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// The conformance suite: every AccountStore and RevocationStore implementation must pass the
// same tests, so the embedded single-node mode and the Redis mode behave alike.

// newAccountStore returns an empty account store for one test.
type newAccountStore func(t *testing.T) AccountStore

// newRevocationStores returns an empty revocation store for one test and a second handle on
// the same data, as another node of the cluster would hold (the same store when the backend
// has no cluster).
type newRevocationStores func(t *testing.T) (RevocationStore, RevocationStore)

// storeBackend is one implementation under test. setup runs once per top-level test and may
// start a server for it.
type storeBackend struct {
	name        string
	accounts    func(t *testing.T) newAccountStore
	revocations func(t *testing.T) newRevocationStores
}

func storeBackends() []storeBackend {
	return []storeBackend{
		{
			name: "memory",
			accounts: func(*testing.T) newAccountStore {
				return func(*testing.T) AccountStore { return NewMemoryAccounts() }
			},
			revocations: func(*testing.T) newRevocationStores {
				return func(*testing.T) (RevocationStore, RevocationStore) {
					s := NewMemoryRevocations()
					return s, s
				}
			},
		},
		{
			name: "redis",
			accounts: func(t *testing.T) newAccountStore {
				return redisAccountStores(redisSingleClients(t))
			},
			revocations: func(t *testing.T) newRevocationStores {
				return redisRevocationStores(redisSingleClients(t))
			},
		},
	}
}

// testPrefixSeq gives every Redis-backed test its own key prefix, so tests sharing a server
// start empty without flushing it.
var testPrefixSeq atomic.Int64

func testPrefix() string { return "test" + strconv.FormatInt(testPrefixSeq.Add(1), 10) + ":" }

// redisSingleClients starts a redis-server for t and returns a constructor of clients to it,
// each closed when the test that made it ends.
func redisSingleClients(t *testing.T) func(t *testing.T) redis.UniversalClient {
	srv := redisproc.ForTest(t)
	return func(t *testing.T) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
}

func redisAccountStores(newClient func(*testing.T) redis.UniversalClient) newAccountStore {
	return func(t *testing.T) AccountStore {
		return NewRedisAccounts(newClient(t), testPrefix())
	}
}

func redisRevocationStores(newClient func(*testing.T) redis.UniversalClient) newRevocationStores {
	return func(t *testing.T) (RevocationStore, RevocationStore) {
		prefix := testPrefix()
		// Two clients, two connection pools: the second store is another node.
		return NewRedisRevocations(newClient(t), prefix), NewRedisRevocations(newClient(t), prefix)
	}
}

func TestAccountStores(t *testing.T) {
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) { testAccountStore(t, b.accounts(t)) })
	}
}

func TestRevocationStores(t *testing.T) {
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) { testRevocationStore(t, b.revocations(t)) })
	}
}

// TestRedisStoresCluster runs the suite on a 3-master Redis Cluster: the hash-tagged account
// keys must let Create's script and the lookup script run there, and the revocation feed
// must reach a subscriber on any node.
func TestRedisStoresCluster(t *testing.T) {
	cluster := redisproc.ClusterForTest(t, 3)
	opts, err := redis.ParseClusterURL(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	newClient := func(t *testing.T) redis.UniversalClient {
		c := redis.NewClusterClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	t.Run("accounts", func(t *testing.T) { testAccountStore(t, redisAccountStores(newClient)) })
	t.Run("revocations", func(t *testing.T) { testRevocationStore(t, redisRevocationStores(newClient)) })
}

// --- accounts ---

var accountSeq atomic.Int64

// conformanceAccount returns an account with every identity set and unique values.
func conformanceAccount() *Account {
	n := strconv.FormatInt(accountSeq.Add(1), 10)
	ts := time.Unix(1_700_000_000, 0).UTC()
	return &Account{
		ID:           uuid.NewString(),
		Username:     "user-" + n,
		DeviceIDs:    []string{"device-" + n + "-0000000000", "device-" + n + "-second"},
		CustomID:     "custom-" + n,
		Email:        "user" + n + "@example.com",
		PasswordHash: []byte("$2a$10$hash-" + n),
		CreateTime:   ts,
		UpdateTime:   ts.Add(time.Second),
	}
}

func assertSameAccount(t *testing.T, got, want *Account) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil account, want %+v", want)
	}
	if got.ID != want.ID || got.Username != want.Username || got.CustomID != want.CustomID ||
		got.Email != want.Email || !slices.Equal(got.DeviceIDs, want.DeviceIDs) ||
		!bytes.Equal(got.PasswordHash, want.PasswordHash) ||
		!got.CreateTime.Equal(want.CreateTime) || !got.UpdateTime.Equal(want.UpdateTime) {
		t.Fatalf("got account %+v, want %+v", got, want)
	}
}

func assertNotFound(t *testing.T, a *Account, err error) {
	t.Helper()
	if !errors.Is(err, ErrAccountNotFound) || a != nil {
		t.Fatalf("got (%+v, %v), want ErrAccountNotFound", a, err)
	}
}

func mustCreate(t *testing.T, s AccountStore, a *Account, p Provider) {
	t.Helper()
	if err := s.Create(context.Background(), a, p); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

var allProviders = []Provider{ProviderDevice, ProviderCustom, ProviderEmail}

func testAccountStore(t *testing.T, newStore newAccountStore) {
	ctx := context.Background()

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		mustCreate(t, s, conformanceAccount(), ProviderDevice) // not empty: misses must not hit it
		lookups := []struct {
			name string
			find func() (*Account, error)
		}{
			{"Get", func() (*Account, error) { return s.Get(ctx, uuid.NewString()) }},
			{"device", func() (*Account, error) { return s.FindByIdentity(ctx, ProviderDevice, "no-such-device") }},
			{"custom", func() (*Account, error) { return s.FindByIdentity(ctx, ProviderCustom, "no-such-custom") }},
			{"email", func() (*Account, error) { return s.FindByIdentity(ctx, ProviderEmail, "nobody@example.com") }},
			{"unknown provider", func() (*Account, error) { return s.FindByIdentity(ctx, Provider("user"), "x") }},
			{"username", func() (*Account, error) { return s.FindByUsername(ctx, "no-such-user") }},
		}
		for _, l := range lookups {
			t.Run(l.name, func(t *testing.T) {
				a, err := l.find()
				assertNotFound(t, a, err)
			})
		}
	})

	t.Run("CreateThenFind", func(t *testing.T) {
		for _, p := range allProviders {
			t.Run(string(p), func(t *testing.T) {
				s := newStore(t)
				want := conformanceAccount()
				mustCreate(t, s, want, p)

				got, err := s.Get(ctx, want.ID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				assertSameAccount(t, got, want)
				got, err = s.FindByIdentity(ctx, p, want.identity(p))
				if err != nil {
					t.Fatalf("FindByIdentity: %v", err)
				}
				assertSameAccount(t, got, want)
				got, err = s.FindByUsername(ctx, want.Username)
				if err != nil {
					t.Fatalf("FindByUsername: %v", err)
				}
				assertSameAccount(t, got, want)

				// Create indexes only the identity of the provider it was given.
				for _, other := range allProviders {
					if other != p {
						a, err := s.FindByIdentity(ctx, other, want.identity(other))
						assertNotFound(t, a, err)
					}
				}
				// A username is matched exactly.
				a, err := s.FindByUsername(ctx, want.Username+"x")
				assertNotFound(t, a, err)
			})
		}
	})

	t.Run("Conflicts", func(t *testing.T) {
		cases := []struct {
			name string
			// edit turns a fresh account into the one to create next to existing.
			edit func(a, existing *Account)
			p    Provider
			want error
		}{
			{
				name: "identity and username taken: identity reported first",
				edit: func(a, e *Account) { a.DeviceIDs = []string{e.DeviceIDs[0]}; a.Username = e.Username },
				p:    ProviderDevice,
				want: ErrIdentityTaken,
			},
			{
				name: "identity taken",
				edit: func(a, e *Account) { a.DeviceIDs = []string{e.DeviceIDs[0]} },
				p:    ProviderDevice,
				want: ErrIdentityTaken,
			},
			{
				name: "username taken",
				edit: func(a, e *Account) { a.Username = e.Username },
				p:    ProviderDevice,
				want: ErrUsernameTaken,
			},
			{
				name: "custom id taken",
				edit: func(a, e *Account) { a.CustomID = "shared-custom" },
				p:    ProviderCustom,
				want: ErrIdentityTaken,
			},
			{
				name: "email taken",
				edit: func(a, e *Account) { a.Email = "shared@example.com" },
				p:    ProviderEmail,
				want: ErrIdentityTaken,
			},
			{
				name: "same string under another provider is free",
				edit: func(a, e *Account) { a.CustomID = e.DeviceIDs[0] },
				p:    ProviderCustom,
				want: nil,
			},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				existing := conformanceAccount()
				existing.CustomID, existing.Email = "shared-custom", "shared@example.com"
				mustCreate(t, s, existing, ProviderDevice)
				if tc.p != ProviderDevice {
					// Index the existing account's identity for tc.p too, through a second
					// account that owns it, so the conflict is on that provider's index.
					holder := conformanceAccount()
					holder.CustomID, holder.Email = existing.CustomID, existing.Email
					mustCreate(t, s, holder, tc.p)
				}

				a := conformanceAccount()
				tc.edit(a, existing)
				err := s.Create(ctx, a, tc.p)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("Create = %v, want %v", err, tc.want)
				}
				if tc.want == nil {
					got, err := s.FindByIdentity(ctx, tc.p, a.identity(tc.p))
					if err != nil {
						t.Fatal(err)
					}
					assertSameAccount(t, got, a)
					return
				}

				// Nothing of the failed account was stored.
				got, err := s.Get(ctx, a.ID)
				assertNotFound(t, got, err)
				if a.Username != existing.Username {
					got, err := s.FindByUsername(ctx, a.Username)
					assertNotFound(t, got, err)
				}
				if tc.want == ErrUsernameTaken {
					got, err := s.FindByIdentity(ctx, tc.p, a.identity(tc.p))
					assertNotFound(t, got, err)
				}
				// And the existing account is intact.
				got, err = s.FindByUsername(ctx, existing.Username)
				if err != nil {
					t.Fatal(err)
				}
				assertSameAccount(t, got, existing)
				got, err = s.FindByIdentity(ctx, ProviderDevice, existing.DeviceIDs[0])
				if err != nil {
					t.Fatal(err)
				}
				assertSameAccount(t, got, existing)
			})
		}
	})

	t.Run("ReturnsCopies", func(t *testing.T) {
		s := newStore(t)
		a := conformanceAccount()
		want := copyAccount(a)
		mustCreate(t, s, a, ProviderDevice)
		// The caller's account is not the stored one.
		a.Username, a.DeviceIDs[0], a.PasswordHash[0] = "changed", "changed", 'X'

		finds := []func() (*Account, error){
			func() (*Account, error) { return s.Get(ctx, want.ID) },
			func() (*Account, error) { return s.FindByIdentity(ctx, ProviderDevice, want.DeviceIDs[0]) },
			func() (*Account, error) { return s.FindByUsername(ctx, want.Username) },
		}
		for i, find := range finds {
			got, err := find()
			if err != nil {
				t.Fatalf("lookup %d: %v", i, err)
			}
			assertSameAccount(t, got, want)
			// Neither is a returned one.
			got.Username, got.DeviceIDs[0], got.PasswordHash[0] = "changed", "changed", 'X'
			got.DeviceIDs = append(got.DeviceIDs, "appended")
		}
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertSameAccount(t, got, want)
	})

	// createRace runs n concurrent Creates of accounts made by mk and returns the winners'
	// index and every loser's error.
	createRace := func(t *testing.T, s AccountStore, n int, mk func(i int) *Account) (accounts []*Account, winners []int, errs []error) {
		accounts = make([]*Account, n)
		for i := range accounts {
			accounts[i] = mk(i)
		}
		errs = make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = s.Create(ctx, accounts[i], ProviderDevice)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				winners = append(winners, i)
			}
		}
		return accounts, winners, errs
	}

	t.Run("ConcurrentSameDevice", func(t *testing.T) {
		s := newStore(t)
		device := "device-" + uuid.NewString()
		accounts, winners, errs := createRace(t, s, 50, func(int) *Account {
			a := conformanceAccount()
			a.DeviceIDs = []string{device}
			return a
		})
		if len(winners) != 1 {
			t.Fatalf("%d creates succeeded, want exactly 1", len(winners))
		}
		w := accounts[winners[0]]
		got, err := s.FindByIdentity(ctx, ProviderDevice, device)
		if err != nil {
			t.Fatal(err)
		}
		assertSameAccount(t, got, w)
		for i, err := range errs {
			if i == winners[0] {
				continue
			}
			if !errors.Is(err, ErrIdentityTaken) {
				t.Fatalf("loser %d: %v, want ErrIdentityTaken", i, err)
			}
			a, err := s.Get(ctx, accounts[i].ID)
			assertNotFound(t, a, err)
			a, err = s.FindByUsername(ctx, accounts[i].Username)
			assertNotFound(t, a, err)
		}
	})

	t.Run("ConcurrentSameUsername", func(t *testing.T) {
		s := newStore(t)
		username := "user-" + uuid.NewString()
		accounts, winners, errs := createRace(t, s, 50, func(int) *Account {
			a := conformanceAccount()
			a.Username = username
			return a
		})
		if len(winners) != 1 {
			t.Fatalf("%d creates succeeded, want exactly 1", len(winners))
		}
		got, err := s.FindByUsername(ctx, username)
		if err != nil {
			t.Fatal(err)
		}
		assertSameAccount(t, got, accounts[winners[0]])
		for i, err := range errs {
			if i == winners[0] {
				continue
			}
			if !errors.Is(err, ErrUsernameTaken) {
				t.Fatalf("loser %d: %v, want ErrUsernameTaken", i, err)
			}
			a, err := s.FindByIdentity(ctx, ProviderDevice, accounts[i].DeviceIDs[0])
			assertNotFound(t, a, err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// --- revocations ---

// watchRecorder runs a Watch and records what it delivers.
type watchRecorder struct {
	t        *testing.T
	cancel   context.CancelFunc
	done     chan error
	applied  chan Revocation
	synced   chan struct{}
	unsynced chan struct{}

	mu       sync.Mutex
	all      []Revocation
	snapshot []Revocation // what was applied before the first synced
	nSynced  int
}

// startWatch runs s.Watch until the test ends or stop is called.
func startWatch(t *testing.T, s RevocationStore) *watchRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRecorder{
		t:        t,
		cancel:   cancel,
		done:     make(chan error, 1),
		applied:  make(chan Revocation, 1024),
		synced:   make(chan struct{}, 64),
		unsynced: make(chan struct{}, 64),
	}
	apply := func(r Revocation) {
		w.mu.Lock()
		w.all = append(w.all, r)
		w.mu.Unlock()
		w.applied <- r
	}
	synced := func() {
		w.mu.Lock()
		if w.nSynced == 0 {
			w.snapshot = slices.Clone(w.all)
		}
		w.nSynced++
		w.mu.Unlock()
		w.synced <- struct{}{}
	}
	unsynced := func() { w.unsynced <- struct{}{} }
	go func() { w.done <- s.Watch(ctx, apply, synced, unsynced) }()
	t.Cleanup(func() { _ = w.stop() })
	return w
}

// stop cancels the Watch and returns its result; it fails the test if Watch does not return.
func (w *watchRecorder) stop() error {
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err // later stops see the same result
		return err
	case <-time.After(5 * time.Second):
		w.t.Fatal("Watch did not return within 5s of its context ending")
		return nil
	}
}

func (w *watchRecorder) waitSynced(timeout time.Duration) {
	w.t.Helper()
	select {
	case <-w.synced:
	case <-time.After(timeout):
		w.t.Fatalf("synced not called within %v", timeout)
	}
}

func (w *watchRecorder) waitUnsynced(timeout time.Duration) {
	w.t.Helper()
	select {
	case <-w.unsynced:
	case <-time.After(timeout):
		w.t.Fatalf("unsynced not called within %v", timeout)
	}
}

// waitApplied waits until want is applied, skipping others, and returns how long it took.
func (w *watchRecorder) waitApplied(want Revocation, timeout time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-w.applied:
			if r == want {
				return time.Since(start)
			}
		case <-deadline:
			w.t.Fatalf("revocation %+v not applied within %v", want, timeout)
		}
	}
}

func (w *watchRecorder) snapshotCopy() []Revocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.snapshot)
}

func (w *watchRecorder) allCopy() []Revocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.all)
}

var revocationSeq atomic.Int64

// liveRevocation returns a revocation in force for the next hour.
func liveRevocation(kind RevocationKind) Revocation {
	now := time.Now().Unix()
	return Revocation{
		Kind:   kind,
		ID:     fmt.Sprintf("id-%d-%s", revocationSeq.Add(1), uuid.NewString()),
		Before: now,
		Until:  now + 3600,
	}
}

func mustRevoke(t *testing.T, s RevocationStore, r Revocation) {
	t.Helper()
	if err := s.Revoke(context.Background(), r); err != nil {
		t.Fatalf("Revoke(%+v): %v", r, err)
	}
}

func testRevocationStore(t *testing.T, newStores newRevocationStores) {
	ctx := context.Background()

	t.Run("SnapshotDelivers", func(t *testing.T) {
		a, b := newStores(t)
		want := []Revocation{liveRevocation(RevokeSession), liveRevocation(RevokeRefresh), liveRevocation(RevokeUser)}
		for _, r := range want {
			mustRevoke(t, a, r)
		}
		w := startWatch(t, b)
		w.waitSynced(5 * time.Second)
		got := w.snapshotCopy()
		for _, r := range want {
			if !slices.Contains(got, r) {
				t.Fatalf("snapshot %+v lacks %+v", got, r)
			}
		}
		if err := w.stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch = %v, want context.Canceled", err)
		}
	})

	t.Run("ExpiredNotInSnapshot", func(t *testing.T) {
		a, b := newStores(t)
		expired := liveRevocation(RevokeSession)
		expired.Before, expired.Until = expired.Before-120, expired.Before-60
		live := liveRevocation(RevokeSession)
		mustRevoke(t, a, expired)
		mustRevoke(t, a, live)
		w := startWatch(t, b)
		w.waitSynced(5 * time.Second)
		got := w.snapshotCopy()
		if slices.Contains(got, expired) {
			t.Fatalf("snapshot %+v holds expired %+v", got, expired)
		}
		if !slices.Contains(got, live) {
			t.Fatalf("snapshot %+v lacks %+v", got, live)
		}
	})

	t.Run("LiveFromAnotherNode", func(t *testing.T) {
		a, b := newStores(t)
		w := startWatch(t, a)
		w.waitSynced(5 * time.Second)
		second := startWatch(t, a)
		second.waitSynced(5 * time.Second)
		for range 3 {
			r := liveRevocation(RevokeRefresh)
			start := time.Now()
			mustRevoke(t, b, r)
			w.waitApplied(r, time.Second)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Fatalf("revocation reached the other node after %v, want ≤ 100ms", took)
			}
			second.waitApplied(r, time.Second) // every watcher gets it
		}
		if len(w.snapshotCopy()) != 0 {
			t.Fatalf("empty store gave snapshot %+v", w.snapshotCopy())
		}
	})

	t.Run("InvalidRejected", func(t *testing.T) {
		a, b := newStores(t)
		now := time.Now().Unix()
		cases := []struct {
			name string
			r    Revocation
		}{
			{"zero", Revocation{}},
			{"no kind", Revocation{ID: "x", Before: now, Until: now + 60}},
			{"unknown kind", Revocation{Kind: RevokeUser + 1, ID: "x", Before: now, Until: now + 60}},
			{"no id", Revocation{Kind: RevokeSession, Before: now, Until: now + 60}},
			{"no until", Revocation{Kind: RevokeSession, ID: "x", Before: now}},
			{"negative until", Revocation{Kind: RevokeSession, ID: "x", Before: now, Until: -1}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if err := a.Revoke(ctx, tc.r); !errors.Is(err, errInvalidRevocation) {
					t.Fatalf("Revoke = %v, want errInvalidRevocation", err)
				}
			})
		}
		w := startWatch(t, b)
		w.waitSynced(5 * time.Second)
		if got := w.snapshotCopy(); len(got) != 0 {
			t.Fatalf("invalid revocations were stored: %+v", got)
		}
	})

	t.Run("WatchEndsWithContext", func(t *testing.T) {
		a, _ := newStores(t)
		// Cancelled while idle after the snapshot.
		w := startWatch(t, a)
		w.waitSynced(5 * time.Second)
		if err := w.stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch = %v, want context.Canceled", err)
		}
		// A deadline ends it the same way.
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := a.Watch(dctx, func(Revocation) {}, func() {}, func() {})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch = %v, want context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("Watch returned %v after its deadline", took)
		}
		// Cancelled before it starts.
		cctx, cancel2 := context.WithCancel(ctx)
		cancel2()
		if err := a.Watch(cctx, func(Revocation) {}, func() {}, func() {}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch = %v, want context.Canceled", err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		a, _ := newStores(t)
		if err := a.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
