package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/sessiongate/sessiongate/presence"
)

// Play sessions (seeds/001): POST /api/games/sessions/initiate, /heartbeat and /end, each with
// the body {"auth_token": "<session token>"}, answering {"success": true} or
// {"success": false, "error_code": "...", "message": "..."}:
//
//	400 ALREADY_IN_GAME    initiate while the user's play session is active
//	400 NO_ACTIVE_SESSION  heartbeat or end without one
//	401 UNAUTHORIZED       the token is missing, invalid, expired or revoked (or the body is not
//	                       JSON carrying one)
//	500 INTERNAL_ERROR     the store failed (details only in the log)
//
// A session ends Config.PlaySessionTimeout after its last heartbeat. A user holding a live
// socket on any node needs no HTTP heartbeat: each node extends the play sessions of its
// sockets' users in a periodic batch (api_play_sweep.go).

// playSessions is the Server's play and game session half: the stores, the notifier of game
// session closes, and their metrics.
type playSessions struct {
	s        *Server
	play     presence.PlaySessions
	games    presence.GameSessions
	notifier atomic.Pointer[notifierBox]
	metrics  *playMetrics
	lastWarn atomic.Int64 // Unix ns of the background work's last warning (api_play_sweep.go)
}

func newPlaySessions(s *Server, stores Stores, m *Metrics) *playSessions {
	p := &playSessions{s: s, play: stores.Play, games: stores.Games, metrics: newPlayMetrics(m.Registry)}
	p.notifier.Store(&notifierBox{clusterNotifier{s}})
	if p.play == nil {
		p.play = presence.NewMemoryPlay()
	}
	if p.games == nil {
		p.games = presence.NewMemoryGames()
	}
	return p
}

// validatePlay checks the play session settings of the config.
func (c Config) validatePlay() error {
	switch {
	case c.GameSessionTTL < 0:
		return errors.New("game session ttl must not be negative")
	case c.PlaySessionTimeout < 0:
		return errors.New("play session timeout must not be negative")
	case c.GameSessionDataMaxBytes < 0:
		return errors.New("game session data max bytes must not be negative")
	case c.GameSessionsPerUser < 0:
		return errors.New("game sessions per user must not be negative")
	}
	return nil
}

// playRoutes are the routes of play sessions and game sessions.
func (s *Server) playRoutes() []routeSpec {
	return []routeSpec{
		{http.MethodPost, "/api/games/sessions/initiate", s.handlePlayInitiate},
		{http.MethodPost, "/api/games/sessions/heartbeat", s.handlePlayHeartbeat},
		{http.MethodPost, "/api/games/sessions/end", s.handlePlayEnd},

		{http.MethodPost, "/v2/game-sessions", s.handleGameCreate},
		{http.MethodGet, "/v2/game-sessions", s.handleGameList},
		{http.MethodGet, "/v2/game-sessions/{id}", s.handleGameGet},
		{http.MethodDelete, "/v2/game-sessions/{id}", s.handleGameClose},
		{http.MethodPost, "/v2/game-sessions/{id}/refresh", s.handleGameRefresh},

		{http.MethodPost, "/v2/server/game-sessions", s.handleServerGameCreate},
		{http.MethodGet, "/v2/server/game-sessions", s.handleServerGameFind},
		{http.MethodGet, "/v2/server/game-sessions/{id}", s.handleServerGameGet},
		{http.MethodDelete, "/v2/server/game-sessions/{id}", s.handleServerGameClose},
		{http.MethodPost, "/v2/server/game-sessions/{id}/refresh", s.handleServerGameRefresh},
		{http.MethodPut, "/v2/server/game-sessions/{id}/data", s.handleServerGameData},
	}
}

// Play session error codes, as seeds/001 names them.
const (
	playAlreadyInGame   = "ALREADY_IN_GAME"
	playNoActiveSession = "NO_ACTIVE_SESSION"
	playUnauthorized    = "UNAUTHORIZED"
	playInternal        = "INTERNAL_ERROR"
)

// playOp is one of the three play session calls.
type playOp int

const (
	opInitiate playOp = iota
	opHeartbeat
	opEnd
)

func (op playOp) String() string { return [...]string{"initiate", "heartbeat", "end"}[op] }

func (s *Server) handlePlayInitiate(w http.ResponseWriter, r *http.Request) {
	s.handlePlay(w, r, opInitiate)
}

func (s *Server) handlePlayHeartbeat(w http.ResponseWriter, r *http.Request) {
	s.handlePlay(w, r, opHeartbeat)
}

func (s *Server) handlePlayEnd(w http.ResponseWriter, r *http.Request) { s.handlePlay(w, r, opEnd) }

// handlePlay reads the body's auth_token, verifies it, and runs op.
func (s *Server) handlePlay(w http.ResponseWriter, r *http.Request, op playOp) {
	p := s.play
	var body struct {
		AuthToken string `json:"auth_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		p.metrics.playOutcome(op, playUnauthorized)
		writePlay(w, http.StatusUnauthorized, playUnauthorized, "Missing or invalid authorization token: the body must be JSON with an auth_token.")
		return
	}
	if body.AuthToken == "" {
		p.metrics.playOutcome(op, playUnauthorized)
		writePlay(w, http.StatusUnauthorized, playUnauthorized, "Missing authorization token.")
		return
	}
	claims, err := s.auth.VerifySession(body.AuthToken)
	if err != nil {
		p.metrics.playOutcome(op, playUnauthorized)
		writePlay(w, http.StatusUnauthorized, playUnauthorized, "Invalid or expired authorization token.")
		return
	}
	ctx, timeout := r.Context(), s.cfg.PlaySessionTimeout
	switch op {
	case opInitiate:
		err = p.play.Initiate(ctx, claims.UserID, timeout)
	case opHeartbeat:
		err = p.play.Heartbeat(ctx, claims.UserID, timeout)
	case opEnd:
		err = p.play.End(ctx, claims.UserID)
	}
	switch {
	case err == nil:
		p.metrics.playOutcome(op, "ok")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true}`))
	case errors.Is(err, presence.ErrAlreadyInGame):
		p.metrics.playOutcome(op, playAlreadyInGame)
		writePlay(w, http.StatusBadRequest, playAlreadyInGame, "A session is already active for this user.")
	case errors.Is(err, presence.ErrNoActiveSession):
		p.metrics.playOutcome(op, playNoActiveSession)
		writePlay(w, http.StatusBadRequest, playNoActiveSession, "No active session found for this user.")
	default:
		p.metrics.playOutcome(op, playInternal)
		s.log.Error().Err(err).Str("route", routeName(r)).Msg("play session store failed")
		writePlay(w, http.StatusInternalServerError, playInternal, "Internal server error.")
	}
}

// writePlay writes seeds/001's error body.
func writePlay(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(struct {
		Success   bool   `json:"success"`
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}{false, code, message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// storeContext bounds one store call of the background work.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storeCallTimeout)
}
