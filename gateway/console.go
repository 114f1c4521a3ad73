package gateway

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/auth"
)

// The operator's console: a web page at /console on the API port, its assets embedded in the
// binary (gateway/console/), and its JSON API under /console/api/. An operator logs in with
// Config.ConsoleUsername and ConsolePassword; the login sets an HttpOnly, SameSite=Strict
// session cookie, and every action also needs the session's CSRF token in the X-CSRF-Token
// header, and a same-origin Origin when the browser sends one. Failed logins are limited per
// client IP. Actions go through the server API's own handlers (api_server.go) and are logged
// with the operator's name, never a secret. Console sessions live in the node's memory, or in
// Redis for a cluster, where every node honours them (console_sessions.go). See console_api.go
// for the pages' data.

//go:embed console
var consoleFiles embed.FS

const (
	consoleCookie = "sessiongate_console"
	// consoleCSRFHeader carries the session's CSRF token on every console action.
	consoleCSRFHeader = "X-CSRF-Token"
	// consoleSessionTTL is how long a console login lasts.
	consoleSessionTTL = 12 * time.Hour
	// consoleMaxSessions bounds the live console sessions of a node; a login beyond it ends
	// the oldest.
	consoleMaxSessions = 1000
	// consoleLoginFailures failed logins per client IP per consoleLoginWindow, then 429.
	consoleLoginFailures = 5
	consoleLoginWindow   = time.Minute
	// consoleMaxTrackedIPs bounds the failed-login table; beyond it, the expired entries are
	// swept, and if none is, the IP is refused (fail closed) until some expire.
	consoleMaxTrackedIPs = 100_000
)

// console is a node's console state: its credentials, sessions and failed logins.
type console struct {
	userSum, passSum [sha256.Size]byte // compared in constant time
	now              func() time.Time

	sessions ConsoleSessions // by cookie value

	mu       sync.Mutex
	failures map[string][]time.Time // by client IP: failed logins within the window
}

// newConsole returns the console of cfg, or nil when it is disabled (no password).
func newConsole(cfg Config) *console {
	if cfg.ConsolePassword == "" {
		return nil
	}
	c := &console{
		userSum:  sha256.Sum256([]byte(cfg.ConsoleUsername)),
		passSum:  sha256.Sum256([]byte(cfg.ConsolePassword)),
		now:      time.Now,
		failures: make(map[string][]time.Time),
	}
	c.sessions = newMemoryConsoleSessions(func() time.Time { return c.now() })
	return c
}

// consoleRoutes are the console's lines of the route table; none when it is disabled.
func (s *Server) consoleRoutes() []routeSpec {
	if s.console == nil {
		return nil
	}
	return []routeSpec{
		{http.MethodGet, "/console", s.handleConsolePage},
		{http.MethodGet, "/console/{file}", s.handleConsolePage},
		{http.MethodPost, "/console/api/login", s.handleConsoleLogin},
		{http.MethodPost, "/console/api/logout", s.handleConsoleLogout},
		{http.MethodGet, "/console/api/me", s.consoleRead(s.handleConsoleMe)},
		{http.MethodGet, "/console/api/overview", s.consoleRead(s.handleConsoleOverview)},
		{http.MethodGet, "/console/api/users", s.consoleRead(s.handleConsoleUsers)},
		{http.MethodPost, "/console/api/sessions/{session_id}/disconnect", s.consoleAction("disconnect_session", s.handleDisconnectSession)},
		{http.MethodPost, "/console/api/users/{user_id}/disconnect", s.consoleAction("disconnect_user", s.handleDisconnectUser)},
		{http.MethodPost, "/console/api/users/{user_id}/logout", s.consoleAction("logout_user", s.handleLogoutUser)},
		{http.MethodPost, "/console/api/game-sessions/{id}/close", s.consoleAction("close_game_session", s.handleConsoleGameClose)},
	}
}

// consoleHeaders are set on every console response: the page loads only its own assets and
// may not be framed.
func consoleHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// GET /console and /console/{file}: the embedded page and its assets.
func (s *Server) handleConsolePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(consoleFiles, path.Join("console", path.Clean("/"+name)))
	if err != nil {
		s.writeError(w, r, errorf(auth.CodeNotFound, "Not Found"))
		return
	}
	consoleHeaders(w.Header())
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write(b)
}

// session returns the request's cookie value and its live console session, or nil; an error
// when the session store cannot answer.
func (c *console) session(r *http.Request) (string, *ConsoleSession, error) {
	ck, err := r.Cookie(consoleCookie)
	if err != nil || ck.Value == "" {
		return "", nil, nil
	}
	cs, err := c.sessions.Get(r.Context(), ck.Value)
	if err != nil {
		return "", nil, errConsoleStore(err)
	}
	return ck.Value, cs, nil
}

// sameOrigin refuses a request whose Origin header (browsers send it on every POST) names
// another site than the one it was sent to.
func sameOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && !isSameOrigin(o, r.Host) {
		return errorf(auth.CodePermissionDenied, "Cross-origin console request refused.")
	}
	return nil
}

var errConsoleLogin = errorf(auth.CodeUnauthenticated, "Console login required.")

// errConsoleStore is the answer when the console session store fails (Redis down): 503 code 14,
// the cause logged, not shown.
func errConsoleStore(err error) error {
	return &auth.Error{Code: auth.CodeUnavailable, Message: "Console sessions unavailable.", Cause: err}
}

// consoleRead wraps a console GET: a live session required.
func (s *Server) consoleRead(h func(r *http.Request, cs *ConsoleSession) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		consoleHeaders(w.Header())
		_, cs, err := s.console.session(r)
		if cs == nil {
			s.writeError(w, r, cmp.Or(err, errConsoleLogin))
			return
		}
		v, err := h(r, cs)
		s.writeValue(w, r, v, err)
	}
}

// consoleAction wraps a console POST (consoleCheck), then runs the server API handler h and
// logs its outcome under the operator's name.
func (s *Server) consoleAction(action string, h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cs := s.consoleCheck(w, r, action)
		if cs == nil {
			return
		}
		v, err := h(r)
		ev := s.log.Info()
		if err != nil {
			ev = s.log.Warn().Str("error", errorMessage(err))
		}
		ev = ev.Str("action", action).Str("console_user", cs.User).Str("ip", s.clientIP(r))
		for _, p := range []string{"session_id", "user_id", "id"} {
			if id := r.PathValue(p); id != "" {
				ev = ev.Str(p, id)
			}
		}
		ev.Bool("ok", err == nil).Msg("console action")
		s.writeValue(w, r, v, err)
	}
}

// consoleCheck admits a console POST: same origin, a live session and its CSRF token. It
// returns the session, or nil after writing the error.
func (s *Server) consoleCheck(w http.ResponseWriter, r *http.Request, action string) *ConsoleSession {
	consoleHeaders(w.Header())
	if err := sameOrigin(r); err != nil {
		s.log.Warn().Str("action", action).Str("ip", s.clientIP(r)).Msg("console action refused: cross-origin")
		s.writeError(w, r, err)
		return nil
	}
	_, cs, err := s.console.session(r)
	if cs == nil {
		s.writeError(w, r, cmp.Or(err, errConsoleLogin))
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(consoleCSRFHeader)), []byte(cs.CSRF)) != 1 {
		s.log.Warn().Str("action", action).Str("console_user", cs.User).Str("ip", s.clientIP(r)).Msg("console action refused: missing or wrong CSRF token")
		s.writeError(w, r, errorf(auth.CodePermissionDenied, "Missing or invalid CSRF token."))
		return nil
	}
	return cs
}

// errorMessage is the client-facing message of err (never a cause, which may hold details).
func errorMessage(err error) string {
	var e *auth.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

type consoleLoginBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// consoleMe is what the page learns of its session.
type consoleMe struct {
	Username  string `json:"username"`
	CSRFToken string `json:"csrf_token"`
	Node      string `json:"node"`
}

// POST /console/api/login {"username","password"} → {"username","csrf_token","node"} and
// the session cookie; 401 code 16 on wrong credentials; 429 code 8 after
// consoleLoginFailures failures from the IP within consoleLoginWindow.
func (s *Server) handleConsoleLogin(w http.ResponseWriter, r *http.Request) {
	consoleHeaders(w.Header())
	ip := s.clientIP(r)
	if err := sameOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	c := s.console
	if !c.loginAllowed(ip) {
		s.log.Warn().Str("ip", ip).Msg("console login refused: too many failures")
		s.writeError(w, r, errorf(auth.CodeResourceExhausted, "Too many failed logins, try again later."))
		return
	}
	var body consoleLoginBody
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid request body."))
		return
	}
	userSum, passSum := sha256.Sum256([]byte(body.Username)), sha256.Sum256([]byte(body.Password))
	userOK := subtle.ConstantTimeCompare(userSum[:], c.userSum[:])
	passOK := subtle.ConstantTimeCompare(passSum[:], c.passSum[:])
	if userOK&passOK != 1 {
		c.loginFailed(ip)
		s.log.Warn().Str("ip", ip).Msg("console login failed")
		s.writeError(w, r, errorf(auth.CodeUnauthenticated, "Invalid credentials."))
		return
	}
	token, csrf := randomToken(), randomToken()
	if err := c.sessions.Put(r.Context(), token, ConsoleSession{User: body.Username, CSRF: csrf, Created: c.now()}); err != nil {
		// The console stays usable through an outage, on this node.
		s.log.Warn().Err(err).Str("ip", ip).Msg("console login known to this node only")
	}
	c.mu.Lock()
	delete(c.failures, ip)
	c.mu.Unlock()
	http.SetCookie(w, s.consoleCookie(r, token, int(consoleSessionTTL/time.Second)))
	s.log.Info().Str("console_user", body.Username).Str("ip", ip).Msg("console login")
	s.writeValue(w, r, consoleMe{Username: body.Username, CSRFToken: csrf, Node: s.cfg.NodeID}, nil)
}

// consoleCookie is the session cookie: HttpOnly, SameSite=Strict, for /console only, Secure
// when the API is served over TLS, here or (with TrustForwardedFor) by the proxy in front.
// maxAge < 0 deletes it.
func (s *Server) consoleCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	secure := r.TLS != nil || s.cfg.TLSCert != "" ||
		(s.cfg.TrustForwardedFor && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
	return &http.Cookie{
		Name: consoleCookie, Value: value, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure,
	}
}

// POST /console/api/logout → {} and the cookie deleted; the session ends on every node.
func (s *Server) handleConsoleLogout(w http.ResponseWriter, r *http.Request) {
	cs := s.consoleCheck(w, r, "logout")
	if cs == nil {
		return
	}
	token, _, _ := s.console.session(r)
	http.SetCookie(w, s.consoleCookie(r, "", -1))
	if err := s.console.sessions.Delete(r.Context(), token); err != nil {
		s.log.Warn().Err(err).Str("console_user", cs.User).Str("ip", s.clientIP(r)).Msg("console logout not shared")
		s.writeError(w, r, &auth.Error{Code: auth.CodeUnavailable, Cause: err,
			Message: "Logged out on this node; the other nodes could not be told (Redis unavailable) and honour the login until it expires or a logout reaches them."})
		return
	}
	s.log.Info().Str("console_user", cs.User).Str("ip", s.clientIP(r)).Msg("console logout")
	s.writeValue(w, r, struct{}{}, nil)
}

// GET /console/api/me → the session's operator, CSRF token and this node's id.
func (s *Server) handleConsoleMe(_ *http.Request, cs *ConsoleSession) (any, error) {
	return consoleMe{Username: cs.User, CSRFToken: cs.CSRF, Node: s.cfg.NodeID}, nil
}

// loginAllowed reports whether ip is below the failed-login limit.
func (c *console) loginAllowed(ip string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	recent := c.recentFailures(ip)
	if recent == nil {
		if _, tracked := c.failures[ip]; !tracked && len(c.failures) >= consoleMaxTrackedIPs {
			c.sweepFailures()
			return len(c.failures) < consoleMaxTrackedIPs
		}
	}
	return len(recent) < consoleLoginFailures
}

// loginFailed counts a failed login of ip.
func (c *console) loginFailed(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures[ip] = append(c.recentFailures(ip), c.now())
}

// recentFailures returns ip's failures within the window, dropping older ones. c.mu is held.
func (c *console) recentFailures(ip string) []time.Time {
	fs, ok := c.failures[ip]
	if !ok {
		return nil
	}
	cut := c.now().Add(-consoleLoginWindow)
	i := 0
	for i < len(fs) && !fs[i].After(cut) {
		i++
	}
	if i == len(fs) {
		delete(c.failures, ip)
		return nil
	}
	fs = fs[i:]
	c.failures[ip] = fs
	return fs
}

// sweepFailures drops every IP whose failures all left the window. c.mu is held.
func (c *console) sweepFailures() {
	for ip := range c.failures {
		c.recentFailures(ip)
	}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}
