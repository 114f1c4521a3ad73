package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// Config holds the auth settings. Zero values take the documented defaults (see Defaults).
type Config struct {
	// EncryptionKey signs session tokens (HS256). Required.
	EncryptionKey string
	// RefreshEncryptionKey signs refresh tokens; it must differ from EncryptionKey so one kind
	// can never pass for the other. Required.
	RefreshEncryptionKey string
	// TokenExpiry is the session token lifetime. Default 60s.
	TokenExpiry time.Duration
	// RefreshTokenExpiry is the refresh token lifetime. Default 1h.
	RefreshTokenExpiry time.Duration
	// LoginWindow is the window over which failed password logins are counted. Default 1m.
	LoginWindow time.Duration
	// LoginFailuresPerAccount is how many failed logins an account (email or username) may see
	// per window before further attempts get code 8. Default 5; negative disables.
	LoginFailuresPerAccount int
	// LoginFailuresPerIP is the same limit per client IP. Default 20; negative disables.
	LoginFailuresPerIP int
	// BeforeAuthURL, when set, is POSTed a BeforeAuthRequest before each authentication.
	BeforeAuthURL string
	// BeforeAuthKey is sent to the hook as "Authorization: Bearer <key>" so it can trust the call.
	BeforeAuthKey string
	// BeforeAuthTimeout bounds each hook call. Default 2s.
	BeforeAuthTimeout time.Duration
	// BcryptCost is the password hashing cost. Default bcrypt.DefaultCost (10).
	BcryptCost int
}

// Defaults returns c with every zero field set to its documented default.
func (c Config) Defaults() Config {
	if c.TokenExpiry == 0 {
		c.TokenExpiry = 60 * time.Second
	}
	if c.RefreshTokenExpiry == 0 {
		c.RefreshTokenExpiry = time.Hour
	}
	if c.LoginWindow == 0 {
		c.LoginWindow = time.Minute
	}
	if c.LoginFailuresPerAccount == 0 {
		c.LoginFailuresPerAccount = 5
	}
	if c.LoginFailuresPerIP == 0 {
		c.LoginFailuresPerIP = 20
	}
	if c.BeforeAuthTimeout == 0 {
		c.BeforeAuthTimeout = 2 * time.Second
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.EncryptionKey == "":
		return errors.New("encryption key is required")
	case c.RefreshEncryptionKey == "":
		return errors.New("refresh encryption key is required")
	case c.EncryptionKey == c.RefreshEncryptionKey:
		return errors.New("encryption key and refresh encryption key must differ")
	case c.TokenExpiry <= 0 || c.RefreshTokenExpiry <= 0:
		return errors.New("token expiries must be positive")
	case c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost:
		return fmt.Errorf("bcrypt cost must be %d-%d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// Service authenticates users and issues, verifies, refreshes and revokes their tokens. It is
// safe for concurrent use. Run must be running for revocations made on other nodes to apply.
type Service struct {
	cfg         Config
	accounts    AccountStore
	revocations RevocationStore
	cache       *revocationCache
	session     *signer
	refresh     *signer
	limiter     *loginLimiter
	hook        *beforeAuthHook
	now         func() time.Time
	synced      atomic.Bool
	observe     func(p Provider, outcome string)
}

// Option adjusts a Service at construction.
type Option func(*Service)

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithOutcomeObserver registers fn to be told each authentication's provider and outcome
// ("created", "existing", or an error label such as "invalid_credentials"), for metrics.
func WithOutcomeObserver(fn func(p Provider, outcome string)) Option {
	return func(s *Service) { s.observe = fn }
}

// NewService builds a Service over the given stores. cfg is defaulted and validated.
func NewService(cfg Config, accounts AccountStore, revocations RevocationStore, opts ...Option) (*Service, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid auth config: %w", err)
	}
	s := &Service{
		cfg:         cfg,
		accounts:    accounts,
		revocations: revocations,
		cache:       newRevocationCache(),
		session:     newSigner(cfg.EncryptionKey, cfg.TokenExpiry),
		refresh:     newSigner(cfg.RefreshEncryptionKey, cfg.RefreshTokenExpiry),
		limiter:     newLoginLimiter(cfg.LoginWindow, cfg.LoginFailuresPerAccount, cfg.LoginFailuresPerIP),
		hook:        newBeforeAuthHook(cfg.BeforeAuthURL, cfg.BeforeAuthKey, cfg.BeforeAuthTimeout),
		now:         time.Now,
		observe:     func(Provider, string) {},
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Run keeps the local revocation cache current from the revocation store and sweeps expired
// state, until ctx ends. Its owner (the server) starts it once and waits for it on shutdown.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				now := s.now()
				s.cache.expire(now)
				s.limiter.sweep(now)
			}
		}
	}()
	err := s.revocations.Watch(ctx, s.cache.apply, func() { s.synced.Store(true) }, func() { s.synced.Store(false) })
	<-done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Ready reports nil when both stores answer and the revocation cache holds a complete
// snapshot; until then, a revoked token could be accepted, so the node must not take traffic.
func (s *Service) Ready(ctx context.Context) error {
	if !s.synced.Load() {
		return errors.New("revocation cache not yet synced")
	}
	if err := s.accounts.Ping(ctx); err != nil {
		return fmt.Errorf("account store: %w", err)
	}
	if err := s.revocations.Ping(ctx); err != nil {
		return fmt.Errorf("revocation store: %w", err)
	}
	return nil
}

// AuthRequest is one authentication attempt.
type AuthRequest struct {
	Provider Provider
	// ID is the device id or custom id.
	ID string
	// Email and Password authenticate the email provider; with Email empty and Username set,
	// Username and Password log in by username (never creating an account).
	Email, Password string
	// Username is the wanted username for a new account; empty generates one.
	Username string
	// Create allows creating the account when none matches.
	Create bool
	// Vars are session variables to embed in the tokens.
	Vars map[string]string
	// ClientIP is used for rate limiting and passed to the hook.
	ClientIP string
}

// Session is an issued token pair.
type Session struct {
	Token        string
	RefreshToken string
	Created      bool
	UserID       string
	Username     string
}

// Authenticate validates req, finds or creates the account and issues a token pair.
func (s *Service) Authenticate(ctx context.Context, req AuthRequest) (*Session, error) {
	sess, outcome, err := s.authenticate(ctx, req)
	s.observe(req.Provider, outcome)
	if err != nil {
		return nil, err
	}
	return sess, nil
}

func (s *Service) authenticate(ctx context.Context, req AuthRequest) (*Session, string, error) {
	byUsername := false
	switch req.Provider {
	case ProviderDevice, ProviderCustom:
		if err := validateIdentity(req.Provider, req.ID); err != nil {
			return nil, "invalid_argument", err
		}
	case ProviderEmail:
		if req.Email == "" {
			byUsername = true
		} else {
			email, err := validateEmail(req.Email)
			if err != nil {
				return nil, "invalid_argument", err
			}
			req.Email, req.ID = email, email
		}
		if err := validatePassword(req.Password); err != nil {
			return nil, "invalid_argument", err
		}
		if byUsername && req.Username == "" {
			return nil, "invalid_argument", newError(CodeInvalidArgument, "Username is required when email address is not supplied.")
		}
	default:
		return nil, "invalid_argument", newError(CodeInvalidArgument, "Unknown authentication provider.")
	}
	if err := validateUsername(req.Username); err != nil {
		return nil, "invalid_argument", err
	}

	if s.hook != nil {
		if err := s.runHook(ctx, &req); err != nil {
			return nil, "hook_rejected", err
		}
	}

	var (
		acct    *Account
		created bool
		err     error
	)
	switch {
	case byUsername:
		acct, err = s.loginByUsername(ctx, req)
	case req.Provider == ProviderEmail:
		acct, created, err = s.loginByEmail(ctx, req)
	default:
		acct, created, err = s.findOrCreate(ctx, req, nil)
	}
	if err != nil {
		return nil, outcomeOf(err), err
	}
	sess, err := s.issue(acct.ID, acct.Username, req.Vars, "")
	if err != nil {
		return nil, "internal", err
	}
	sess.Created = created
	if created {
		return sess, "created", nil
	}
	return sess, "existing", nil
}

func (s *Service) runHook(ctx context.Context, req *AuthRequest) error {
	out, err := s.hook.call(ctx, &BeforeAuthRequest{
		Provider: req.Provider, ID: req.ID, Email: req.Email, Username: req.Username,
		Create: req.Create, Vars: req.Vars, ClientIP: req.ClientIP,
	})
	if err != nil {
		return err
	}
	if out.Username != "" {
		if err := validateUsername(out.Username); err != nil {
			return internalError("Authentication hook returned an invalid username.", err)
		}
		req.Username = out.Username
	}
	if len(out.Vars) > 0 {
		merged := make(map[string]string, len(req.Vars)+len(out.Vars))
		for k, v := range req.Vars {
			merged[k] = v
		}
		for k, v := range out.Vars {
			merged[k] = v
		}
		req.Vars = merged
	}
	return nil
}

// outcomeOf labels an error for the auth outcome metric.
func outcomeOf(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return "internal"
	}
	switch e.Code {
	case CodeNotFound:
		return "not_found"
	case CodeUnauthenticated:
		return "invalid_credentials"
	case CodeAlreadyExists:
		return "username_taken"
	case CodeResourceExhausted:
		return "rate_limited"
	case CodeInvalidArgument:
		return "invalid_argument"
	default:
		return "internal"
	}
}

const maxUsernameAttempts = 5

// findOrCreate returns the account linked to req's identity, creating it when allowed. A
// generated username that collides is regenerated; an identity linked concurrently by another
// request is read back, so two racing first logins of one device get one account.
func (s *Service) findOrCreate(ctx context.Context, req AuthRequest, passwordHash []byte) (*Account, bool, error) {
	acct, err := s.accounts.FindByIdentity(ctx, req.Provider, req.ID)
	if err == nil {
		return acct, false, nil
	}
	if !errors.Is(err, ErrAccountNotFound) {
		return nil, false, internalError("Error finding user account.", err)
	}
	if !req.Create {
		return nil, false, newError(CodeNotFound, msgAccountNotFound)
	}
	for attempt := 0; ; attempt++ {
		username := req.Username
		if username == "" {
			username = generateUsername()
		}
		now := s.now().UTC()
		acct = &Account{ID: uuid.NewString(), Username: username, PasswordHash: passwordHash, CreateTime: now, UpdateTime: now}
		switch req.Provider {
		case ProviderDevice:
			acct.DeviceIDs = []string{req.ID}
		case ProviderCustom:
			acct.CustomID = req.ID
		case ProviderEmail:
			acct.Email = req.ID
		}
		err = s.accounts.Create(ctx, acct, req.Provider)
		switch {
		case err == nil:
			return acct, true, nil
		case errors.Is(err, ErrIdentityTaken):
			existing, ferr := s.accounts.FindByIdentity(ctx, req.Provider, req.ID)
			if ferr != nil {
				return nil, false, internalError("Error finding user account.", ferr)
			}
			return existing, false, nil
		case errors.Is(err, ErrUsernameTaken):
			if req.Username != "" || attempt+1 >= maxUsernameAttempts {
				return nil, false, newError(CodeAlreadyExists, msgUsernameTaken)
			}
		default:
			return nil, false, internalError("Error creating user account.", err)
		}
	}
}

func (s *Service) loginByEmail(ctx context.Context, req AuthRequest) (*Account, bool, error) {
	if !s.limiter.allowed(req.Email, req.ClientIP, s.now()) {
		return nil, false, newError(CodeResourceExhausted, msgTryLater)
	}
	acct, err := s.accounts.FindByIdentity(ctx, ProviderEmail, req.Email)
	switch {
	case err == nil:
		if err := s.checkPassword(acct, req.Email, req.Password, req.ClientIP); err != nil {
			return nil, false, err
		}
		return acct, false, nil
	case !errors.Is(err, ErrAccountNotFound):
		return nil, false, internalError("Error finding user account.", err)
	case !req.Create:
		return nil, false, newError(CodeNotFound, msgAccountNotFound)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), s.cfg.BcryptCost)
	if err != nil {
		return nil, false, internalError("Error creating user account.", fmt.Errorf("failed to hash password: %w", err))
	}
	acct, created, err := s.findOrCreate(ctx, req, hash)
	if err != nil || created {
		return acct, created, err
	}
	// Another request created this email's account between our lookup and create: its
	// password, not ours, is the one to check.
	if err := s.checkPassword(acct, req.Email, req.Password, req.ClientIP); err != nil {
		return nil, false, err
	}
	return acct, false, nil
}

func (s *Service) loginByUsername(ctx context.Context, req AuthRequest) (*Account, error) {
	if !s.limiter.allowed(req.Username, req.ClientIP, s.now()) {
		return nil, newError(CodeResourceExhausted, msgTryLater)
	}
	acct, err := s.accounts.FindByUsername(ctx, req.Username)
	if errors.Is(err, ErrAccountNotFound) {
		s.limiter.failed(req.Username, req.ClientIP, s.now())
		return nil, newError(CodeNotFound, msgAccountNotFound)
	}
	if err != nil {
		return nil, internalError("Error finding user account.", err)
	}
	if err := s.checkPassword(acct, req.Username, req.Password, req.ClientIP); err != nil {
		return nil, err
	}
	return acct, nil
}

func (s *Service) checkPassword(acct *Account, limitKey, password, ip string) error {
	if len(acct.PasswordHash) == 0 || bcrypt.CompareHashAndPassword(acct.PasswordHash, []byte(password)) != nil {
		s.limiter.failed(limitKey, ip, s.now())
		return newError(CodeUnauthenticated, msgInvalidCredentials)
	}
	s.limiter.succeeded(limitKey)
	return nil
}

// issue signs a session and refresh token pair. tokenID continues a login chain on refresh;
// empty starts a new one. iat is lifted past any revocation in force for the user or chain, so
// a token issued in the same second as a logout is not born revoked.
func (s *Service) issue(userID, username string, vars map[string]string, tokenID string) (*Session, error) {
	if tokenID == "" {
		tokenID = uuid.NewString()
	}
	now := s.now().Unix()
	sc := &Claims{TokenID: tokenID, UserID: userID, Username: username, Vars: vars,
		IssuedAt: max(now, s.cache.minIssuedAt(RevokeSession, tokenID, userID)), ExpiresAt: now + int64(s.cfg.TokenExpiry/time.Second)}
	rc := &Claims{TokenID: tokenID, UserID: userID, Username: username, Vars: vars,
		IssuedAt: max(now, s.cache.minIssuedAt(RevokeRefresh, tokenID, userID)), ExpiresAt: now + int64(s.cfg.RefreshTokenExpiry/time.Second)}
	token, err := s.session.sign(sc)
	if err != nil {
		return nil, internalError("Error issuing session token.", err)
	}
	refresh, err := s.refresh.sign(rc)
	if err != nil {
		return nil, internalError("Error issuing refresh token.", err)
	}
	return &Session{Token: token, RefreshToken: refresh, UserID: userID, Username: username}, nil
}

// VerifySession checks a session token's signature, expiry and revocation. It makes no store
// round trip. Any failure is code 16 "Auth token invalid", as in Nakama.
func (s *Service) VerifySession(token string) (*Claims, error) {
	c, err := s.session.verify(token, s.now())
	if err != nil || s.cache.revoked(RevokeSession, c.TokenID, c.UserID, c.IssuedAt) {
		return nil, newError(CodeUnauthenticated, msgTokenInvalid)
	}
	return c, nil
}

// Refresh exchanges a valid refresh token for a new pair in the same login chain. Non-empty
// vars replace the token's vars; empty vars keep them.
func (s *Service) Refresh(ctx context.Context, refreshToken string, vars map[string]string) (*Session, error) {
	if refreshToken == "" {
		return nil, newError(CodeInvalidArgument, "Refresh token is required.")
	}
	c, err := s.refresh.verify(refreshToken, s.now())
	if err != nil || s.cache.revoked(RevokeRefresh, c.TokenID, c.UserID, c.IssuedAt) {
		return nil, newError(CodeUnauthenticated, msgRefreshInvalid)
	}
	acct, err := s.accounts.Get(ctx, c.UserID)
	if errors.Is(err, ErrAccountNotFound) {
		return nil, newError(CodeNotFound, msgAccountNotFound)
	}
	if err != nil {
		return nil, internalError("Error finding user account.", err)
	}
	if len(vars) == 0 {
		vars = c.Vars
	}
	return s.issue(acct.ID, acct.Username, vars, c.TokenID)
}

// Logout revokes the given session and refresh tokens of the caller; with both empty it
// revokes every token of the caller issued until now. Open sockets are not touched.
func (s *Service) Logout(ctx context.Context, caller *Claims, token, refreshToken string) error {
	if token == "" && refreshToken == "" {
		return s.RevokeUser(ctx, caller.UserID)
	}
	var revs []Revocation
	now := s.now()
	if token != "" {
		c, err := s.session.verify(token, now)
		if err != nil || c.UserID != caller.UserID {
			return newError(CodeInvalidArgument, "Session token invalid.")
		}
		revs = append(revs, s.chainRevocation(RevokeSession, c, now, s.cfg.TokenExpiry))
	}
	if refreshToken != "" {
		c, err := s.refresh.verify(refreshToken, now)
		if err != nil || c.UserID != caller.UserID {
			return newError(CodeInvalidArgument, "Refresh token invalid.")
		}
		revs = append(revs, s.chainRevocation(RevokeRefresh, c, now, s.cfg.RefreshTokenExpiry))
	}
	for _, r := range revs {
		if err := s.revoke(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// chainRevocation revokes every token of kind in c's login chain (its token id) issued until
// now: the named token and any pair refreshed from it since, as Nakama ends the whole login.
// issue lifts the iat of a token made in the same second as an earlier revocation past that
// revocation's cutoff, so the cutoff here is at least as far.
func (s *Service) chainRevocation(kind RevocationKind, c *Claims, now time.Time, expiry time.Duration) Revocation {
	return Revocation{Kind: kind, ID: c.TokenID,
		Before: max(now.Unix(), c.IssuedAt, s.cache.minIssuedAt(kind, c.TokenID, c.UserID)),
		Until:  max(c.ExpiresAt, now.Add(expiry).Unix()+1)}
}

// RevokeUser revokes every token of the user issued until now, on every node.
func (s *Service) RevokeUser(ctx context.Context, userID string) error {
	now := s.now()
	// Any token issued until now expires within the longer of the two lifetimes.
	until := now.Add(max(s.cfg.TokenExpiry, s.cfg.RefreshTokenExpiry)).Unix() + 1
	// A login right after an earlier logout-all in the same second got an iat one past that
	// cutoff (see issue): this revocation must cover it too.
	before := max(now.Unix(), s.cache.minIssuedAt(RevokeUser, "", userID))
	return s.revoke(ctx, Revocation{Kind: RevokeUser, ID: userID, Before: before, Until: until})
}

// revoke stores r for every node, then applies it here at once, so this node refuses the
// token even before the store's announcement comes back.
func (s *Service) revoke(ctx context.Context, r Revocation) error {
	if err := s.revocations.Revoke(ctx, r); err != nil {
		return internalError("Error processing session logout.", err)
	}
	s.cache.apply(r)
	return nil
}

// Account returns the caller's account.
func (s *Service) Account(ctx context.Context, userID string) (*Account, error) {
	acct, err := s.accounts.Get(ctx, userID)
	if errors.Is(err, ErrAccountNotFound) {
		return nil, newError(CodeNotFound, msgAccountNotFound)
	}
	if err != nil {
		return nil, internalError("Error finding user account.", err)
	}
	return acct, nil
}

// LookupUsers resolves user ids and usernames to existing accounts, for status follow: it
// returns the ids of the accounts found, in request order (ids first, then usernames), without
// duplicates. Unknown ids and usernames are skipped, as Nakama skips them. userIDs must be in
// canonical form. It fails only when the store does.
func (s *Service) LookupUsers(ctx context.Context, userIDs, usernames []string) ([]string, error) {
	found := make([]string, 0, len(userIDs)+len(usernames))
	seen := make(map[string]struct{}, cap(found))
	add := func(id string) {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			found = append(found, id)
		}
	}
	for _, id := range userIDs {
		if _, dup := seen[id]; dup {
			continue
		}
		acct, err := s.accounts.Get(ctx, id)
		if errors.Is(err, ErrAccountNotFound) {
			continue
		}
		if err != nil {
			return nil, internalError("Could not check users", err)
		}
		add(acct.ID)
	}
	for _, name := range usernames {
		acct, err := s.accounts.FindByUsername(ctx, name)
		if errors.Is(err, ErrAccountNotFound) {
			continue
		}
		if err != nil {
			return nil, internalError("Could not check users", err)
		}
		add(acct.ID)
	}
	return found, nil
}
