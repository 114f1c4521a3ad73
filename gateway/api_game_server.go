package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/presence"
)

// Game sessions, the server API (http key: "Authorization: Bearer <http key>" or
// "?http_key=<http key>"), for game backends:
//
//	POST   /v2/server/game-sessions                 {"user_id","game_id","currency","external_session_id"} → the session
//	GET    /v2/server/game-sessions?external_session_id=X  → the session linked to X
//	GET    /v2/server/game-sessions?user_id=U       → {"game_sessions":[...]}, U's open sessions
//	GET    /v2/server/game-sessions/{id}            → the session
//	POST   /v2/server/game-sessions/{id}/refresh    → the session, its TTL back to full
//	PUT    /v2/server/game-sessions/{id}/data       {"data":{...},"version":N} → the session (version N+1)
//	DELETE /v2/server/game-sessions/{id}            → {}, closes it
//
// The data write is optimistic: version must be the session's current version, else 409
// code 10 (ABORTED) and nothing is written; of concurrent writers with one version exactly one
// wins, on any node.

func (s *Server) handleServerGameCreate(w http.ResponseWriter, r *http.Request) {
	if err := s.checkHTTPKey(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var body gameCreateBody
	if err := decodeJSON(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	userID, err := s.knownUser(r, body.UserID)
	if err != nil {
		s.play.metrics.gameCreates.WithLabelValues("invalid").Inc()
		s.writeError(w, r, err)
		return
	}
	s.createGame(w, r, userID, body)
}

// knownUser checks that id is the UUID of an existing account and returns it canonically.
func (s *Server) knownUser(r *http.Request, id string) (string, error) {
	if id == "" {
		return "", errorf(auth.CodeInvalidArgument, "User ID is required.")
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", errorf(auth.CodeInvalidArgument, "Invalid user ID.")
	}
	if _, err := s.auth.Account(r.Context(), u.String()); err != nil {
		return "", err
	}
	return u.String(), nil
}

func (s *Server) handleServerGameFind(w http.ResponseWriter, r *http.Request) {
	if err := s.checkHTTPKey(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	ext, user := q.Get("external_session_id"), q.Get("user_id")
	switch {
	case ext != "" && user == "":
		gs, err := s.play.games.GetByExternalID(r.Context(), ext)
		if err != nil {
			s.writeError(w, r, gameStoreError(err))
			return
		}
		s.writeGame(w, r, gs)
	case user != "" && ext == "":
		u, err := uuid.Parse(user)
		if err != nil {
			s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid user ID."))
			return
		}
		list, err := s.play.games.List(r.Context(), u.String())
		if err != nil {
			s.writeError(w, r, gameStoreError(err))
			return
		}
		s.writeGames(w, r, list)
	default:
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Give one of external_session_id and user_id."))
	}
}

// serverGameID checks the http key and reads the path's session id, or answers the request.
func (s *Server) serverGameID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := s.checkHTTPKey(r); err != nil {
		s.writeError(w, r, err)
		return "", false
	}
	id, err := sessionID(r)
	if err != nil {
		s.writeError(w, r, err)
		return "", false
	}
	return id, true
}

func (s *Server) handleServerGameGet(w http.ResponseWriter, r *http.Request) {
	id, ok := s.serverGameID(w, r)
	if !ok {
		return
	}
	gs, err := s.play.games.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, gameStoreError(err))
		return
	}
	s.writeGame(w, r, gs)
}

func (s *Server) handleServerGameRefresh(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.serverGameID(w, r); ok {
		s.refreshGame(w, r, id)
	}
}

func (s *Server) handleServerGameClose(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.serverGameID(w, r); ok {
		s.closeGame(w, r, id, closeReasonServer)
	}
}

func (s *Server) handleServerGameData(w http.ResponseWriter, r *http.Request) {
	id, ok := s.serverGameID(w, r)
	if !ok {
		return
	}
	m := s.play.metrics.gameWrites
	var body struct {
		Data    json.RawMessage `json:"data"`
		Version *int64          `json:"version"`
	}
	if err := decodeJSON(r, &body); err != nil {
		m.WithLabelValues("invalid").Inc()
		s.writeError(w, r, err)
		return
	}
	data, err := compactData(body.Data, s.cfg.GameSessionDataMaxBytes)
	if err == nil && body.Version == nil {
		err = errorf(auth.CodeInvalidArgument, "Version is required.")
	}
	if err == nil && *body.Version < 1 {
		err = errorf(auth.CodeInvalidArgument, "Version must be at least 1.")
	}
	if err != nil {
		m.WithLabelValues("invalid").Inc()
		s.writeError(w, r, err)
		return
	}
	gs, err := s.play.games.WriteData(r.Context(), id, data, *body.Version, s.cfg.GameSessionTTL)
	switch {
	case err == nil:
		m.WithLabelValues("ok").Inc()
		s.writeGame(w, r, gs)
	case errors.Is(err, presence.ErrVersionConflict):
		m.WithLabelValues("version_conflict").Inc()
		s.writeError(w, r, errorf(codeAborted, "Version "+strconv.FormatInt(*body.Version, 10)+" is stale, the game session is at version "+strconv.FormatInt(gs.Version, 10)+"."))
	case errors.Is(err, presence.ErrGameSessionNotFound):
		m.WithLabelValues("not_found").Inc()
		s.writeError(w, r, errGameNotFound)
	default:
		s.writeError(w, r, gameStoreError(err))
	}
}
