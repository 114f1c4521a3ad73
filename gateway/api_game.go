package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/api"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/presence"
)

// Game sessions (seeds/000), the client API (session token):
//
//	POST   /v2/game-sessions               {"game_id","currency","external_session_id"} → the session
//	GET    /v2/game-sessions               → {"game_sessions":[...]}, the caller's open sessions
//	GET    /v2/game-sessions/{id}          → the session
//	POST   /v2/game-sessions/{id}/refresh  → the session, its TTL back to full
//	DELETE /v2/game-sessions/{id}          → {}, closes it
//
// A client sees only its own sessions (another user's id is 404) and may read the data but
// never write it; the server API (api_game_server.go) writes it. Closing a session, whatever
// the cause, pushes the notification described at NotificationCodeGameSessionClosed to the
// user's live sockets.

// NotificationCodeGameSessionClosed is the code of the notification pushed to a user's sockets
// when one of their game sessions closes: {"subject":"game_session_closed","code":-100,
// "content":"{\"game_session_id\":…,\"game_id\":…,\"currency\":…,\"external_session_id\":…,
// \"reason\":\"closed|closed_by_server|expired\"}"}. Nakama reserves codes ≤ 0 for system
// notifications and uses -1 to -9; sessiongate's own start at -100.
const NotificationCodeGameSessionClosed = -100

// NotificationSubjectGameSessionClosed is that notification's subject.
const NotificationSubjectGameSessionClosed = "game_session_closed"

// Reasons a game session closes, in its close notification and the closes metric.
const (
	closeReasonClient  = "closed"
	closeReasonServer  = "closed_by_server"
	closeReasonExpired = "expired"
)

// Field bounds of a game session create.
const (
	maxGameIDBytes     = 128
	maxCurrencyBytes   = 32
	maxExternalIDBytes = 128
)

// UserNotifier delivers notifications to the live sockets of a user and returns how many
// sockets queued them. The default, clusterNotifier, reaches the user's sockets on every node
// over the cluster bus (in-process in embedded mode); another one can be installed with
// SetUserNotifier.
type UserNotifier interface {
	NotifyUser(ctx context.Context, userID string, notifications ...*api.Notification) (int, error)
}

// SetUserNotifier replaces the notifier game session close notifications go through. It may
// be called at any time.
func (s *Server) SetUserNotifier(n UserNotifier) { s.play.notifier.Store(&notifierBox{n}) }

// notifierBox lets notifiers of any type share one atomic.Pointer.
type notifierBox struct{ UserNotifier }

// clusterNotifier delivers to every node's sockets (Server.NotifyUserCluster).
type clusterNotifier struct{ s *Server }

func (n clusterNotifier) NotifyUser(ctx context.Context, userID string, ns ...*api.Notification) (int, error) {
	return n.s.NotifyUserCluster(ctx, userID, ns...)
}

// gameSessionJSON is a game session on the wire.
type gameSessionJSON struct {
	GameSessionID     string          `json:"game_session_id"`
	UserID            string          `json:"user_id"`
	GameID            string          `json:"game_id"`
	Currency          string          `json:"currency"`
	ExternalSessionID string          `json:"external_session_id"`
	CreatedAt         string          `json:"created_at"`
	ExpiresAt         string          `json:"expires_at"`
	Data              json.RawMessage `json:"data"`
	Version           int64           `json:"version"`
}

// wireTime is a time as the API writes it: RFC 3339, UTC, milliseconds.
func wireTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func gameJSON(gs *presence.GameSession) gameSessionJSON {
	return gameSessionJSON{GameSessionID: gs.ID, UserID: gs.UserID, GameID: gs.GameID, Currency: gs.Currency,
		ExternalSessionID: gs.ExternalID, CreatedAt: wireTime(gs.CreatedAt), ExpiresAt: wireTime(gs.ExpiresAt),
		Data: gs.Data, Version: gs.Version}
}

func (s *Server) writeGame(w http.ResponseWriter, r *http.Request, gs *presence.GameSession) {
	s.writeValue(w, r, gameJSON(gs), nil)
}

func (s *Server) writeGames(w http.ResponseWriter, r *http.Request, list []*presence.GameSession) {
	out := struct {
		GameSessions []gameSessionJSON `json:"game_sessions"`
	}{GameSessions: make([]gameSessionJSON, len(list))}
	for i, gs := range list {
		out.GameSessions[i] = gameJSON(gs)
	}
	s.writeValue(w, r, out, nil)
}

// decodeJSON reads a JSON request body into v; an empty body leaves v as it is.
func decodeJSON(r *http.Request, v any) error {
	err := json.NewDecoder(r.Body).Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return errorf(auth.CodeInvalidArgument, "Request body too large, limit is "+strconv.FormatInt(tooBig.Limit, 10)+" bytes.")
	default:
		return errorf(auth.CodeInvalidArgument, "Invalid request body: "+err.Error())
	}
}

// gameStoreError turns a store error into the API's.
func gameStoreError(err error) error {
	var active *presence.ActiveSessionError
	switch {
	case errors.As(err, &active):
		return errorf(auth.CodeAlreadyExists, "Game session "+active.Active.ID+" is already active for this game and currency, under external session id "+strconv.Quote(active.Active.ExternalID)+".")
	case errors.Is(err, presence.ErrExternalIDInUse):
		return errorf(auth.CodeAlreadyExists, "External session id is linked to another game session.")
	case errors.Is(err, presence.ErrGameSessionNotFound):
		return errGameNotFound
	case errors.As(err, new(*auth.Error)):
		return err
	default:
		return &auth.Error{Code: auth.CodeInternal, Message: "Internal server error.", Cause: err}
	}
}

var errGameNotFound = errorf(auth.CodeNotFound, "Game session not found.")

// checkField validates one required create field: 1 to max bytes of UTF-8 without control
// characters.
func checkField(name, v string, max int) error {
	if v == "" {
		return errorf(auth.CodeInvalidArgument, name+" is required.")
	}
	if len(v) > max {
		return errorf(auth.CodeInvalidArgument, name+" must be at most "+strconv.Itoa(max)+" bytes.")
	}
	if !utf8.ValidString(v) {
		return errorf(auth.CodeInvalidArgument, name+" must be valid UTF-8.")
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return errorf(auth.CodeInvalidArgument, name+" must not contain control characters.")
		}
	}
	return nil
}

// gameCreateBody is the body of both creates; UserID only on the server API.
type gameCreateBody struct {
	UserID            string `json:"user_id"`
	GameID            string `json:"game_id"`
	Currency          string `json:"currency"`
	ExternalSessionID string `json:"external_session_id"`
}

func (b gameCreateBody) validate() error {
	if err := checkField("Game ID", b.GameID, maxGameIDBytes); err != nil {
		return err
	}
	if err := checkField("Currency", b.Currency, maxCurrencyBytes); err != nil {
		return err
	}
	return checkField("External session ID", b.ExternalSessionID, maxExternalIDBytes)
}

// createGame opens (or finds again) the session of body for userID.
func (s *Server) createGame(w http.ResponseWriter, r *http.Request, userID string, body gameCreateBody) {
	m := s.play.metrics.gameCreates
	if err := body.validate(); err != nil {
		m.WithLabelValues("invalid").Inc()
		s.writeError(w, r, err)
		return
	}
	gs, created, err := s.play.games.Create(r.Context(), presence.NewGameSession{UserID: userID, GameID: body.GameID,
		Currency: body.Currency, ExternalID: body.ExternalSessionID, MaxPerUser: s.cfg.GameSessionsPerUser}, s.cfg.GameSessionTTL)
	switch {
	case err == nil && created:
		m.WithLabelValues("created").Inc()
	case err == nil:
		m.WithLabelValues("existing").Inc()
	case errors.Is(err, presence.ErrGameSessionActive), errors.Is(err, presence.ErrExternalIDInUse):
		m.WithLabelValues("conflict").Inc()
	case errors.Is(err, presence.ErrTooManyGameSessions):
		m.WithLabelValues("limited").Inc()
		err = errorf(auth.CodeResourceExhausted, "Too many open game sessions, the limit is "+strconv.Itoa(s.cfg.GameSessionsPerUser)+" per user.")
	}
	if err != nil {
		s.writeError(w, r, gameStoreError(err))
		return
	}
	s.writeGame(w, r, gs)
}

// sessionID reads the {id} path segment, a UUID.
func sessionID(r *http.Request) (string, error) {
	u, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return "", errorf(auth.CodeInvalidArgument, "Invalid game session id.")
	}
	return u.String(), nil
}

// ownGame returns the caller's session named by the path, or answers the request with an
// error and returns nil. Another user's session is not found, as an unknown one.
func (s *Server) ownGame(w http.ResponseWriter, r *http.Request) (*auth.Claims, *presence.GameSession) {
	caller, err := s.bearer(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil
	}
	id, err := sessionID(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil
	}
	gs, err := s.play.games.Get(r.Context(), id)
	if err == nil && gs.UserID != caller.UserID {
		err = presence.ErrGameSessionNotFound
	}
	if err != nil {
		s.writeError(w, r, gameStoreError(err))
		return nil, nil
	}
	return caller, gs
}

func (s *Server) handleGameCreate(w http.ResponseWriter, r *http.Request) {
	caller, err := s.bearer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body gameCreateBody
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.createGame(w, r, caller.UserID, body)
}

func (s *Server) handleGameList(w http.ResponseWriter, r *http.Request) {
	caller, err := s.bearer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.play.games.List(r.Context(), caller.UserID)
	if err != nil {
		s.writeError(w, r, gameStoreError(err))
		return
	}
	s.writeGames(w, r, list)
}

func (s *Server) handleGameGet(w http.ResponseWriter, r *http.Request) {
	if _, gs := s.ownGame(w, r); gs != nil {
		s.writeGame(w, r, gs)
	}
}

func (s *Server) handleGameRefresh(w http.ResponseWriter, r *http.Request) {
	if _, gs := s.ownGame(w, r); gs != nil {
		s.refreshGame(w, r, gs.ID)
	}
}

func (s *Server) handleGameClose(w http.ResponseWriter, r *http.Request) {
	if _, gs := s.ownGame(w, r); gs != nil {
		s.closeGame(w, r, gs.ID, closeReasonClient)
	}
}

func (s *Server) refreshGame(w http.ResponseWriter, r *http.Request, id string) {
	gs, err := s.play.games.Refresh(r.Context(), id, s.cfg.GameSessionTTL)
	if err != nil {
		s.writeError(w, r, gameStoreError(err))
		return
	}
	s.writeGame(w, r, gs)
}

// closeGame closes the session, notifies its user and answers {}.
func (s *Server) closeGame(w http.ResponseWriter, r *http.Request, id, reason string) {
	if err := s.closeGameSession(r.Context(), id, reason); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// closeGameSession closes the session and notifies its user; errors are the API's.
func (s *Server) closeGameSession(ctx context.Context, id, reason string) error {
	gs, err := s.play.games.Close(ctx, id)
	if err != nil {
		return gameStoreError(err)
	}
	s.play.closed(ctx, gs, reason)
	return nil
}

// closed counts a closed session and pushes its close notification to the user's sockets.
func (p *playSessions) closed(ctx context.Context, gs *presence.GameSession, reason string) {
	p.metrics.gameCloses.WithLabelValues(reason).Inc()
	content, _ := json.Marshal(struct {
		GameSessionID     string `json:"game_session_id"`
		GameID            string `json:"game_id"`
		Currency          string `json:"currency"`
		ExternalSessionID string `json:"external_session_id"`
		Reason            string `json:"reason"`
	}{gs.ID, gs.GameID, gs.Currency, gs.ExternalID, reason})
	n, err := p.notifier.Load().NotifyUser(ctx, gs.UserID, &api.Notification{
		Id:         uuid.NewString(),
		Subject:    NotificationSubjectGameSessionClosed,
		Content:    string(content),
		Code:       NotificationCodeGameSessionClosed,
		CreateTime: timestamppb.Now(),
	})
	if err != nil {
		p.s.log.Warn().Err(err).Str("game_session_id", gs.ID).Msg("notifying a game session close")
		return
	}
	p.metrics.notified.Add(float64(n))
}

// compactData validates game session data: a JSON object of at most max bytes once compacted.
func compactData(raw json.RawMessage, max int) ([]byte, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errorf(auth.CodeInvalidArgument, "Data is required.")
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if !utf8.Valid(raw) {
		return nil, errorf(auth.CodeInvalidArgument, "Data must be valid UTF-8.")
	}
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errorf(auth.CodeInvalidArgument, "Data must be a JSON object.")
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, errorf(auth.CodeInvalidArgument, "Data must be a JSON object.")
	}
	if buf.Len() > max {
		return nil, errorf(auth.CodeInvalidArgument, "Data must be at most "+strconv.Itoa(max)+" bytes of JSON, got "+strconv.Itoa(buf.Len())+".")
	}
	if !numbersFitDouble(buf.Bytes()) {
		return nil, errorf(auth.CodeInvalidArgument, "Data numbers must fit a 64-bit float.")
	}
	return buf.Bytes(), nil
}

// numbersFitDouble reports whether every number in the compact JSON b is within the range of a
// float64: JSON's grammar allows 1E700, which JavaScript reads as Infinity and Go's decoder
// refuses, so such data would not reach its clients as it was sent.
func numbersFitDouble(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString:
			if c == '\\' {
				i++ // the escaped byte
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(b) && strings.IndexByte("+-.eE0123456789", b[j]) >= 0 {
				j++
			}
			if _, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil {
				return false
			}
			i = j - 1
		}
	}
	return true
}
