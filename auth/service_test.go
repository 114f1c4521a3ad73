package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a settable time source for the service.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// serviceConfig is a valid auth config with the cheapest bcrypt cost.
func serviceConfig() Config {
	return Config{EncryptionKey: "svc-session-key", RefreshEncryptionKey: "svc-refresh-key", BcryptCost: bcrypt.MinCost}
}

// runService starts svc.Run until the test ends, checking that it returns nil promptly.
func runService(t *testing.T, svc *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
	})
	waitUntil(t, "the service to be ready", func() bool { return svc.Ready(context.Background()) == nil })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestService returns a running service over fresh memory stores with a fake clock.
func newTestService(t *testing.T, mutate func(*Config), opts ...Option) (*Service, *fakeClock) {
	t.Helper()
	cfg := serviceConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	clock := newFakeClock(time.Now())
	svc, err := NewService(cfg, NewMemoryAccounts(), NewMemoryRevocations(), append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	runService(t, svc)
	return svc, clock
}

func wantCode(t *testing.T, err error, code Code, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want *Error code %d %q", err, code, msg)
	}
	if e.Code != code || e.Message != msg {
		t.Errorf("error code %d %q, want %d %q", e.Code, e.Message, code, msg)
	}
}

func device(id string) AuthRequest {
	return AuthRequest{Provider: ProviderDevice, ID: id, Create: true, ClientIP: "192.0.2.1"}
}

func mustAuth(t *testing.T, svc *Service, req AuthRequest) *Session {
	t.Helper()
	sess, err := svc.Authenticate(context.Background(), req)
	if err != nil {
		t.Fatalf("Authenticate %+v: %v", req, err)
	}
	return sess
}

func mustVerify(t *testing.T, svc *Service, token string) *Claims {
	t.Helper()
	c, err := svc.VerifySession(token)
	if err != nil {
		t.Fatalf("VerifySession: %v", err)
	}
	return c
}

func wantSessionRevoked(t *testing.T, svc *Service, sess *Session, what string) {
	t.Helper()
	if _, err := svc.VerifySession(sess.Token); err == nil {
		t.Errorf("%s: session token still valid", what)
	} else {
		wantCode(t, err, CodeUnauthenticated, "Auth token invalid")
	}
	if _, err := svc.Refresh(context.Background(), sess.RefreshToken, nil); err == nil {
		t.Errorf("%s: refresh token still valid", what)
	} else {
		wantCode(t, err, CodeUnauthenticated, "Refresh token invalid or expired.")
	}
}

func wantSessionValid(t *testing.T, svc *Service, sess *Session, what string) {
	t.Helper()
	if _, err := svc.VerifySession(sess.Token); err != nil {
		t.Errorf("%s: session token refused: %v", what, err)
	}
	if _, err := svc.Refresh(context.Background(), sess.RefreshToken, nil); err != nil {
		t.Errorf("%s: refresh token refused: %v", what, err)
	}
}

func TestServiceTokenExpiry(t *testing.T) {
	svc, clock := newTestService(t, nil)
	sess := mustAuth(t, svc, device("device-0123456789"))
	c := mustVerify(t, svc, sess.Token)
	if c.ExpiresAt-c.IssuedAt != 60 {
		t.Errorf("default session lifetime %ds, want 60", c.ExpiresAt-c.IssuedAt)
	}
	clock.Advance(59 * time.Second)
	mustVerify(t, svc, sess.Token)
	clock.Advance(time.Second)
	_, err := svc.VerifySession(sess.Token)
	wantCode(t, err, CodeUnauthenticated, "Auth token invalid")
	// The refresh token outlives it and yields a working session token.
	next, err := svc.Refresh(context.Background(), sess.RefreshToken, nil)
	if err != nil {
		t.Fatalf("Refresh after the session expired: %v", err)
	}
	mustVerify(t, svc, next.Token)
	clock.Advance(time.Hour)
	_, err = svc.Refresh(context.Background(), sess.RefreshToken, nil)
	wantCode(t, err, CodeUnauthenticated, "Refresh token invalid or expired.")
	_, err = svc.Refresh(context.Background(), "", nil)
	wantCode(t, err, CodeInvalidArgument, "Refresh token is required.")
}

// TestServiceLogoutEndsChain: a game logs out with the pair it got at login after its client
// refreshed that pair in a later second; the whole login chain ends, the refreshed pair too.
func TestServiceLogoutEndsChain(t *testing.T) {
	svc, clock := newTestService(t, nil)
	ctx := context.Background()
	first := mustAuth(t, svc, device("device-0123456789"))
	other := mustAuth(t, svc, device("device-0123456789"))
	clock.Advance(1100 * time.Millisecond)
	refreshed, err := svc.Refresh(ctx, first.RefreshToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	caller := mustVerify(t, svc, refreshed.Token)
	if err := svc.Logout(ctx, caller, first.Token, first.RefreshToken); err != nil {
		t.Fatal(err)
	}
	wantSessionRevoked(t, svc, first, "logged-out pair")
	wantSessionRevoked(t, svc, refreshed, "pair refreshed from it")
	wantSessionValid(t, svc, other, "another login of the user")
	// A new login right after, in the same second, works.
	wantSessionValid(t, svc, mustAuth(t, svc, device("device-0123456789")), "login after logout")
}

// TestServiceLogoutSessionRepeatedly: logging out only the session token leaves the refresh
// token, and each refresh in the same second yields a working session token again.
func TestServiceLogoutSessionRepeatedly(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	sess := mustAuth(t, svc, device("device-0123456789"))
	refreshToken := sess.RefreshToken
	for i := range 4 {
		caller := mustVerify(t, svc, sess.Token)
		if err := svc.Logout(ctx, caller, sess.Token, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.VerifySession(sess.Token); err == nil {
			t.Fatalf("round %d: logged-out session token still valid", i)
		}
		next, err := svc.Refresh(ctx, refreshToken, nil)
		if err != nil {
			t.Fatalf("round %d: refresh after session logout: %v", i, err)
		}
		mustVerify(t, svc, next.Token)
		sess = next
	}
	// The first refresh token, never logged out, still works.
	if _, err := svc.Refresh(ctx, refreshToken, nil); err != nil {
		t.Errorf("original refresh token: %v", err)
	}
}

// TestServiceLogoutAllTwiceInOneSecond: a login right after a logout-all is not born revoked,
// and a second logout-all in the same second still ends it.
func TestServiceLogoutAllTwiceInOneSecond(t *testing.T) {
	svc, clock := newTestService(t, nil)
	ctx := context.Background()
	clock.ns.Store(time.Now().Truncate(time.Second).Add(100 * time.Millisecond).UnixNano())
	a := mustAuth(t, svc, device("device-0123456789"))
	bystander := mustAuth(t, svc, device("device-someone-else"))
	uid := a.UserID
	for round := range 3 {
		if err := svc.RevokeUser(ctx, uid); err != nil {
			t.Fatal(err)
		}
		wantSessionRevoked(t, svc, a, "login before logout-all")
		a = mustAuth(t, svc, device("device-0123456789"))
		wantSessionValid(t, svc, a, "login right after logout-all")
		clock.Advance(10 * time.Millisecond)
		_ = round
	}
	// Through Logout with both tokens empty, too.
	caller := mustVerify(t, svc, a.Token)
	if err := svc.Logout(ctx, caller, "", ""); err != nil {
		t.Fatal(err)
	}
	wantSessionRevoked(t, svc, a, "after Logout with no tokens")
	wantSessionValid(t, svc, bystander, "another user")
	clock.Advance(2 * time.Second)
	wantSessionValid(t, svc, mustAuth(t, svc, device("device-0123456789")), "login seconds later")
}

// TestServiceRevocationsReachOtherNodes: two services on shared stores, as two nodes on one
// Redis; a logout on one is enforced by the other.
func TestServiceRevocationsReachOtherNodes(t *testing.T) {
	accounts, revs := NewMemoryAccounts(), NewMemoryRevocations()
	var nodes [2]*Service
	for i := range nodes {
		svc, err := NewService(serviceConfig(), accounts, revs)
		if err != nil {
			t.Fatal(err)
		}
		runService(t, svc)
		nodes[i] = svc
	}
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	sess := mustAuth(t, a, device("device-0123456789"))
	wantSessionValid(t, b, sess, "on the other node")
	sess = mustAuth(t, a, device("device-0123456789"))
	if err := a.Logout(ctx, mustVerify(t, a, sess.Token), sess.Token, sess.RefreshToken); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "node b to see the logout", func() bool { _, err := b.VerifySession(sess.Token); return err != nil })
	wantSessionRevoked(t, b, sess, "on the other node")
	sess = mustAuth(t, b, device("device-0123456789"))
	if err := b.RevokeUser(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "node a to see the logout-all", func() bool { _, err := a.VerifySession(sess.Token); return err != nil })
	// A node started after the logouts learns them from the store.
	late, err := NewService(serviceConfig(), accounts, revs)
	if err != nil {
		t.Fatal(err)
	}
	if late.Ready(ctx) == nil {
		t.Error("a service that is not running reports ready")
	}
	runService(t, late)
	wantSessionRevoked(t, late, sess, "on a node started later")
}

func TestServiceAuthenticateStoresBcrypt(t *testing.T) {
	accounts := NewMemoryAccounts()
	svc, err := NewService(serviceConfig(), accounts, NewMemoryRevocations())
	if err != nil {
		t.Fatal(err)
	}
	sess := mustAuth(t, svc, AuthRequest{Provider: ProviderEmail, Email: "Some@Example.com", Password: "password1", Create: true})
	if !sess.Created {
		t.Error("Created false for a new account")
	}
	acct, err := accounts.FindByIdentity(context.Background(), ProviderEmail, "some@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(acct.PasswordHash); err != nil || cost != bcrypt.MinCost {
		t.Errorf("password hash cost %d (%v), want the configured %d", cost, err, bcrypt.MinCost)
	}
	if strings.Contains(string(acct.PasswordHash), "password1") {
		t.Error("password stored in the clear")
	}
	if acct.Email != "some@example.com" || len(acct.DeviceIDs) != 0 || acct.CustomID != "" {
		t.Errorf("account %+v", acct)
	}
	_, err = svc.Authenticate(context.Background(), AuthRequest{Provider: "facebook", ID: "x", Create: true})
	wantCode(t, err, CodeInvalidArgument, "Unknown authentication provider.")
}

// TestServiceConcurrentFirstLogins: racing first logins of one identity make one account.
func TestServiceConcurrentFirstLogins(t *testing.T) {
	svc, _ := newTestService(t, nil)
	for _, req := range []AuthRequest{
		device("device-0123456789"),
		{Provider: ProviderCustom, ID: "custom-123", Create: true},
		{Provider: ProviderEmail, Email: "race@example.com", Password: "password1", Create: true},
	} {
		const n = 16
		var wg sync.WaitGroup
		sessions := make([]*Session, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sessions[i], errs[i] = svc.Authenticate(context.Background(), req)
			}()
		}
		wg.Wait()
		created := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("%s: %v", req.Provider, errs[i])
			}
			if sessions[i].UserID != sessions[0].UserID {
				t.Errorf("%s: two accounts %s and %s", req.Provider, sessions[i].UserID, sessions[0].UserID)
			}
			if sessions[i].Created {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%s: %d logins report creating the account, want 1", req.Provider, created)
		}
	}
	// A racing email create with another password is checked against the winner's.
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := "password-a"
			if i%2 == 1 {
				pw = "password-b"
			}
			_, err := svc.Authenticate(context.Background(), AuthRequest{Provider: ProviderEmail, Email: "race2@example.com", Password: pw, Create: true, ClientIP: "192.0.2.9"})
			var e *Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &e) && e.Code == CodeUnauthenticated:
				refused.Add(1)
			default:
				t.Errorf("racing email create: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 4 || refused.Load() != 4 {
		t.Errorf("racing email creates: %d succeeded, %d refused; want 4 and 4", ok.Load(), refused.Load())
	}
}

// collidingAccounts fails the first n creates with ErrUsernameTaken.
type collidingAccounts struct {
	AccountStore
	n, calls int
	mu       sync.Mutex
}

func (c *collidingAccounts) Create(ctx context.Context, a *Account, p Provider) error {
	c.mu.Lock()
	c.calls++
	collide := c.calls <= c.n
	c.mu.Unlock()
	if collide {
		return ErrUsernameTaken
	}
	return c.AccountStore.Create(ctx, a, p)
}

func TestServiceUsernameCollisions(t *testing.T) {
	for _, tc := range []struct {
		collisions int
		username   string
		wantErr    bool
		wantCalls  int
	}{
		{4, "", false, 5}, // generated names are retried up to 5 times
		{5, "", true, 5},
		{1, "chosen", true, 1}, // a chosen name is not
	} {
		store := &collidingAccounts{AccountStore: NewMemoryAccounts(), n: tc.collisions}
		svc, err := NewService(serviceConfig(), store, NewMemoryRevocations())
		if err != nil {
			t.Fatal(err)
		}
		req := device("device-0123456789")
		req.Username = tc.username
		_, err = svc.Authenticate(context.Background(), req)
		if tc.wantErr {
			wantCode(t, err, CodeAlreadyExists, "Username is already in use.")
		} else if err != nil {
			t.Errorf("%d collisions: %v", tc.collisions, err)
		}
		if store.calls != tc.wantCalls {
			t.Errorf("%d collisions, username %q: %d creates, want %d", tc.collisions, tc.username, store.calls, tc.wantCalls)
		}
	}
}

var errBoom = errors.New("boom")

// failingAccounts fails the methods named in fail with errBoom, or reports not found.
type failingAccounts struct {
	AccountStore
	fail     map[string]bool
	notFound bool
}

func (f *failingAccounts) Get(ctx context.Context, id string) (*Account, error) {
	if f.notFound {
		return nil, ErrAccountNotFound
	}
	if f.fail["Get"] {
		return nil, errBoom
	}
	return f.AccountStore.Get(ctx, id)
}

func (f *failingAccounts) FindByIdentity(ctx context.Context, p Provider, id string) (*Account, error) {
	if f.fail["FindByIdentity"] {
		return nil, errBoom
	}
	return f.AccountStore.FindByIdentity(ctx, p, id)
}

func (f *failingAccounts) FindByUsername(ctx context.Context, u string) (*Account, error) {
	if f.fail["FindByUsername"] {
		return nil, errBoom
	}
	return f.AccountStore.FindByUsername(ctx, u)
}

func (f *failingAccounts) Create(ctx context.Context, a *Account, p Provider) error {
	if f.fail["Create"] {
		return errBoom
	}
	return f.AccountStore.Create(ctx, a, p)
}

func (f *failingAccounts) Ping(ctx context.Context) error {
	if f.fail["Ping"] {
		return errBoom
	}
	return nil
}

type failingRevocations struct{ *MemoryRevocations }

func (failingRevocations) Revoke(context.Context, Revocation) error { return errBoom }
func (failingRevocations) Ping(context.Context) error               { return errBoom }

func TestServiceStoreErrors(t *testing.T) {
	ctx := context.Background()
	store := &failingAccounts{AccountStore: NewMemoryAccounts(), fail: map[string]bool{}}
	svc, err := NewService(serviceConfig(), store, failingRevocations{NewMemoryRevocations()})
	if err != nil {
		t.Fatal(err)
	}
	sess := mustAuth(t, svc, device("device-0123456789"))
	mustAuth(t, svc, AuthRequest{Provider: ProviderEmail, Email: "e@example.com", Password: "password1", Username: "named", Create: true})
	check := func(err error, msg string) {
		t.Helper()
		wantCode(t, err, CodeInternal, msg)
		if !errors.Is(err, errBoom) {
			t.Errorf("%q does not wrap the store's error", msg)
		}
	}
	store.fail["FindByIdentity"] = true
	_, err = svc.Authenticate(ctx, device("device-0123456789"))
	check(err, "Error finding user account.")
	_, err = svc.Authenticate(ctx, AuthRequest{Provider: ProviderEmail, Email: "e@example.com", Password: "password1"})
	check(err, "Error finding user account.")
	store.fail["FindByUsername"] = true
	_, err = svc.Authenticate(ctx, AuthRequest{Provider: ProviderEmail, Username: "named", Password: "password1"})
	check(err, "Error finding user account.")
	store.fail = map[string]bool{"Create": true}
	_, err = svc.Authenticate(ctx, device("device-new-account"))
	check(err, "Error creating user account.")
	store.fail = map[string]bool{"Get": true}
	_, err = svc.Refresh(ctx, sess.RefreshToken, nil)
	check(err, "Error finding user account.")
	_, err = svc.Account(ctx, sess.UserID)
	check(err, "Error finding user account.")
	caller := mustVerify(t, svc, sess.Token)
	check(svc.Logout(ctx, caller, sess.Token, ""), "Error processing session logout.")
	check(svc.Logout(ctx, caller, "", ""), "Error processing session logout.")
	// A failed logout revoked nothing locally either.
	mustVerify(t, svc, sess.Token)

	// Readiness names the store that does not answer.
	store.fail = map[string]bool{"Ping": true}
	svc.synced.Store(true)
	if err := svc.Ready(ctx); err == nil || !strings.Contains(err.Error(), "account store") {
		t.Errorf("Ready with the account store down: %v", err)
	}
	store.fail = map[string]bool{}
	if err := svc.Ready(ctx); err == nil || !strings.Contains(err.Error(), "revocation store") {
		t.Errorf("Ready with the revocation store down: %v", err)
	}

	// A refresh token for an account that no longer exists.
	store.notFound = true
	_, err = svc.Refresh(ctx, sess.RefreshToken, nil)
	wantCode(t, err, CodeNotFound, "User account not found.")
	_, err = svc.Account(ctx, sess.UserID)
	wantCode(t, err, CodeNotFound, "User account not found.")
}

func TestServiceOutcomes(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "banned") {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer hook.Close()
	svc, _ := newTestService(t, func(c *Config) {
		c.LoginFailuresPerAccount = 1
		c.BeforeAuthURL = hook.URL
	}, WithOutcomeObserver(func(p Provider, outcome string) {
		mu.Lock()
		got = append(got, string(p)+":"+outcome)
		mu.Unlock()
	}))
	ctx := context.Background()
	email := func(pw string) AuthRequest {
		return AuthRequest{Provider: ProviderEmail, Email: "o@example.com", Password: pw, Create: true}
	}
	_, _ = svc.Authenticate(ctx, device("device-0123456789"))
	_, _ = svc.Authenticate(ctx, device("device-0123456789"))
	_, _ = svc.Authenticate(ctx, device("short"))
	_, _ = svc.Authenticate(ctx, AuthRequest{Provider: ProviderCustom, ID: "custom-unknown"})
	_, _ = svc.Authenticate(ctx, AuthRequest{Provider: ProviderCustom, ID: "custom-banned", Create: true})
	_, _ = svc.Authenticate(ctx, email("password1"))
	_, _ = svc.Authenticate(ctx, email("wrongpass"))
	_, _ = svc.Authenticate(ctx, email("password1"))
	taken := device("device-9876543210")
	taken.Username = mustVerify(t, svc, mustAuth(t, svc, device("device-0123456789")).Token).Username
	_, _ = svc.Authenticate(ctx, taken)
	want := []string{
		"device:created", "device:existing", "device:invalid_argument", "custom:not_found", "custom:hook_rejected",
		"email:created", "email:invalid_credentials", "email:rate_limited", "device:existing", "device:username_taken",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("outcomes\n got %v\nwant %v", got, want)
	}
}

func TestServiceRateLimitWindow(t *testing.T) {
	svc, clock := newTestService(t, func(c *Config) {
		c.LoginFailuresPerAccount = 2
		c.LoginWindow = time.Minute
	})
	ctx := context.Background()
	mustAuth(t, svc, AuthRequest{Provider: ProviderEmail, Email: "w@example.com", Password: "password1", Create: true})
	wrong := AuthRequest{Provider: ProviderEmail, Email: "w@example.com", Password: "wrongpass", ClientIP: "192.0.2.1"}
	for range 2 {
		_, err := svc.Authenticate(ctx, wrong)
		wantCode(t, err, CodeUnauthenticated, "Invalid credentials.")
	}
	_, err := svc.Authenticate(ctx, wrong)
	wantCode(t, err, CodeResourceExhausted, "Try again later.")
	clock.Advance(59 * time.Second)
	_, err = svc.Authenticate(ctx, wrong)
	wantCode(t, err, CodeResourceExhausted, "Try again later.")
	// The window has passed: attempts are counted afresh.
	clock.Advance(time.Second)
	_, err = svc.Authenticate(ctx, wrong)
	wantCode(t, err, CodeUnauthenticated, "Invalid credentials.")
	ok := wrong
	ok.Password = "password1"
	mustAuth(t, svc, ok)
}

func TestServiceRateLimitDisabled(t *testing.T) {
	svc, _ := newTestService(t, func(c *Config) {
		c.LoginFailuresPerAccount = -1
		c.LoginFailuresPerIP = -1
	})
	ctx := context.Background()
	mustAuth(t, svc, AuthRequest{Provider: ProviderEmail, Email: "d@example.com", Password: "password1", Create: true})
	for range 30 {
		_, err := svc.Authenticate(ctx, AuthRequest{Provider: ProviderEmail, Email: "d@example.com", Password: "wrongpass", ClientIP: "192.0.2.1"})
		wantCode(t, err, CodeUnauthenticated, "Invalid credentials.")
	}
	mustAuth(t, svc, AuthRequest{Provider: ProviderEmail, Email: "d@example.com", Password: "password1", ClientIP: "192.0.2.1"})
}

func TestLoginLimiter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	l := newLoginLimiter(time.Minute, 2, 3)
	if !l.allowed("acct", "ip1", t0) {
		t.Fatal("fresh limiter refuses")
	}
	l.failed("acct", "ip1", t0)
	l.failed("acct", "ip2", t0)
	if l.allowed("acct", "ip3", t0) {
		t.Error("account past its limit allowed from a new IP")
	}
	if !l.allowed("other", "ip1", t0) {
		t.Error("another account refused from an IP under its limit")
	}
	l.failed("other", "ip1", t0)
	l.failed("third", "ip1", t0)
	if l.allowed("fourth", "ip1", t0) {
		t.Error("IP past its limit allowed")
	}
	if !l.allowed("fourth", "", t0) {
		t.Error("an unknown IP is not limited")
	}
	// Success clears the account, not the IP.
	l.succeeded("acct")
	if !l.allowed("acct", "ip2", t0) {
		t.Error("account still limited after a successful login")
	}
	if l.allowed("acct", "ip1", t0) {
		t.Error("IP cleared by an account's success")
	}
	// The window passes.
	if !l.allowed("fourth", "ip1", t0.Add(time.Minute)) {
		t.Error("IP still limited after the window")
	}
	l.sweep(t0.Add(30 * time.Second))
	if len(l.entries) == 0 {
		t.Error("sweep dropped windows still open")
	}
	l.sweep(t0.Add(time.Minute))
	if len(l.entries) != 0 {
		t.Errorf("sweep left %d closed windows", len(l.entries))
	}
	// Zero or negative limits disable; a nil limiter allows everything.
	off := newLoginLimiter(time.Minute, -1, 0)
	for range 10 {
		off.failed("a", "ip", t0)
	}
	if !off.allowed("a", "ip", t0) {
		t.Error("disabled limiter refuses")
	}
	var none *loginLimiter
	none.failed("a", "ip", t0)
	none.succeeded("a")
	if !none.allowed("a", "ip", t0) {
		t.Error("nil limiter refuses")
	}
}

func TestServiceHookCall(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	big := strings.Repeat("x", maxHookResponse+10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, `{"vars":{"a":"`+big+`"}}`)
		}
	}))
	defer hook.Close()
	ctx := context.Background()
	for _, tc := range []struct{ key, want string }{{"the-key", "Bearer the-key"}, {"", ""}} {
		svc, _ := newTestService(t, func(c *Config) { c.BeforeAuthURL, c.BeforeAuthKey = hook.URL, tc.key })
		mustAuth(t, svc, device("device-0123456789"))
		mu.Lock()
		if len(auths) != 1 || auths[0] != tc.want {
			t.Errorf("key %q: hook saw Authorization %q, want %q", tc.key, auths, tc.want)
		}
		auths = nil
		mu.Unlock()
	}
	// An answer past the 64 KiB cap is cut and so fails to decode: the login fails closed.
	svc, _ := newTestService(t, func(c *Config) { c.BeforeAuthURL = hook.URL + "/big" })
	_, err := svc.Authenticate(ctx, device("device-0123456789"))
	wantCode(t, err, CodeUnavailable, "Authentication hook unavailable.")
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{EncryptionKey: "a", RefreshEncryptionKey: "b"}.Defaults()
	if c.TokenExpiry != time.Minute || c.RefreshTokenExpiry != time.Hour || c.LoginWindow != time.Minute ||
		c.LoginFailuresPerAccount != 5 || c.LoginFailuresPerIP != 20 || c.BeforeAuthTimeout != 2*time.Second || c.BcryptCost != bcrypt.DefaultCost {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no session key":   func(c *Config) { c.EncryptionKey = "" },
		"no refresh key":   func(c *Config) { c.RefreshEncryptionKey = "" },
		"same keys":        func(c *Config) { c.RefreshEncryptionKey = c.EncryptionKey },
		"negative expiry":  func(c *Config) { c.TokenExpiry = -1 },
		"negative refresh": func(c *Config) { c.RefreshTokenExpiry = -1 },
		"cost too low":     func(c *Config) { c.BcryptCost = bcrypt.MinCost - 1 },
		"cost too high":    func(c *Config) { c.BcryptCost = bcrypt.MaxCost + 1 },
	} {
		bad := c
		mutate(&bad)
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
		if _, err := NewService(bad, NewMemoryAccounts(), NewMemoryRevocations()); err == nil {
			t.Errorf("%s: NewService accepted it", name)
		}
	}
}
