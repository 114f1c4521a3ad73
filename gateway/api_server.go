package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/hub"
)

// The server-to-server API (game backends, admin tools): /v2/server/..., authenticated with
// the http key (checkHTTPKey), JSON in and out, Nakama's error shape. Every node serves it;
// each call fans out to every live node over the cluster bus (cluster_ops.go) and answers only
// once they have acted, or fails with 503 code 14 naming the nodes that did not answer within
// Config.ClusterTimeout. The README's "Server API" section and api/openapi.yaml document it.

// defaultDisconnectReason is the close reason of a server disconnect without one.
const defaultDisconnectReason = "disconnected by server"

// serverRoutes are the server API's lines of the route table.
func (s *Server) serverRoutes() []routeSpec {
	return []routeSpec{
		{http.MethodPost, "/v2/server/sessions/{session_id}/disconnect", s.serverAPI(s.handleDisconnectSession)},
		{http.MethodPost, "/v2/server/users/{user_id}/disconnect", s.serverAPI(s.handleDisconnectUser)},
		{http.MethodPost, "/v2/server/users/{user_id}/logout", s.serverAPI(s.handleLogoutUser)},
		{http.MethodGet, "/v2/server/users/{user_id}/sessions", s.serverAPI(s.handleUserSessions)},
		{http.MethodGet, "/v2/server/nodes", s.serverAPI(s.handleNodes)},
	}
}

// serverAPI wraps a server API handler: http key first, then the handler's value as JSON or
// its error in Nakama's shape.
func (s *Server) serverAPI(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkHTTPKey(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		v, err := h(r)
		s.writeValue(w, r, v, err)
	}
}

// writeValue writes a handler's value as JSON, or its error in Nakama's shape.
func (s *Server) writeValue(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := json.Marshal(v)
	s.writeBody(w, r, b, err)
}

// pathUUID reads a path value that must be a UUID, in canonical form.
func pathUUID(r *http.Request, name, what string) (string, error) {
	u, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return "", errorf(auth.CodeInvalidArgument, "Invalid "+what+" identifier.")
	}
	return u.String(), nil
}

// disconnectBody reads the optional {"reason": "..."} of a disconnect.
func disconnectBody(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", errorf(auth.CodeInvalidArgument, "Request body too large, limit is "+strconv.FormatInt(tooBig.Limit, 10)+" bytes.")
		}
		return "", errorf(auth.CodeInvalidArgument, "Unable to read request body.")
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			return "", errorf(auth.CodeInvalidArgument, "Invalid request body: "+err.Error())
		}
	}
	if len(body.Reason) > maxCloseReason {
		return "", errorf(auth.CodeInvalidArgument, "Reason must be "+strconv.Itoa(maxCloseReason)+" bytes or less.")
	}
	if body.Reason == "" {
		body.Reason = defaultDisconnectReason
	}
	return body.Reason, nil
}

type disconnectedReply struct {
	Disconnected int `json:"disconnected"`
}

// unavailable is the 503 code 14 of a call some nodes did not answer.
func unavailable(err error, what string) error {
	var ce *clusterError
	if errors.As(err, &ce) {
		return &auth.Error{Code: auth.CodeUnavailable, Message: what + ": node " + strings.Join(ce.nodes, ", ") +
			" did not answer.", Cause: err}
	}
	return &auth.Error{Code: auth.CodeUnavailable, Message: what + ": cluster unavailable.", Cause: err}
}

// POST /v2/server/sessions/{session_id}/disconnect {"reason"} → {"disconnected":1}; 404 code
// 5 when no node holds the session; 503 code 14 when a node that might did not answer.
func (s *Server) handleDisconnectSession(r *http.Request) (any, error) {
	sid, err := pathUUID(r, "session_id", "session")
	if err != nil {
		return nil, err
	}
	reason, err := disconnectBody(r)
	if err != nil {
		return nil, err
	}
	n, _, err := s.cluster.sum(r.Context(), opDisconnectSession, disconnectRequest{SessionID: sid, Reason: reason})
	switch {
	case n > 0:
		// Session ids are unique: the node that held it acted, whatever the others said.
		return disconnectedReply{Disconnected: 1}, nil
	case err != nil:
		return nil, unavailable(err, "Session disconnect not confirmed")
	}
	return nil, errorf(auth.CodeNotFound, "Session not found.")
}

// POST /v2/server/users/{user_id}/disconnect {"reason"} → {"disconnected":N} over all nodes.
func (s *Server) handleDisconnectUser(r *http.Request) (any, error) {
	uid, err := pathUUID(r, "user_id", "user")
	if err != nil {
		return nil, err
	}
	reason, err := disconnectBody(r)
	if err != nil {
		return nil, err
	}
	n, _, err := s.cluster.sum(r.Context(), opDisconnectUser, disconnectRequest{UserID: uid, Reason: reason})
	if err != nil {
		return nil, unavailable(err, "User disconnect incomplete ("+strconv.Itoa(n)+" sockets closed)")
	}
	return disconnectedReply{Disconnected: n}, nil
}

// POST /v2/server/users/{user_id}/logout → {}: every token of the user issued until now is
// refused on every node; open sockets stay open.
func (s *Server) handleLogoutUser(r *http.Request) (any, error) {
	uid, err := pathUUID(r, "user_id", "user")
	if err != nil {
		return nil, err
	}
	if err := s.auth.RevokeUser(r.Context(), uid); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// GET /v2/server/users/{user_id}/sessions → {"sessions":[...]} from every node, oldest first.
func (s *Server) handleUserSessions(r *http.Request) (any, error) {
	uid, err := pathUUID(r, "user_id", "user")
	if err != nil {
		return nil, err
	}
	sessions, err := s.cluster.userSessions(r.Context(), uid)
	if err != nil {
		return nil, unavailable(err, "Session list incomplete")
	}
	return struct {
		Sessions []sessionInfo `json:"sessions"`
	}{sessions}, nil
}

// userSessions gathers the user's sessions from every live node.
func (c *cluster) userSessions(ctx context.Context, userID string) ([]sessionInfo, error) {
	nodes, err := c.liveNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := []sessionInfo{}
	var failed []string
	var errs []error
	for _, res := range c.callAll(ctx, nodes, opUserSessions, disconnectRequest{UserID: userID}) {
		var part []sessionInfo
		if res.Err == nil {
			res.Err = json.Unmarshal(res.Reply, &part)
		}
		if res.Err != nil {
			failed, errs = append(failed, res.Node), append(errs, res.Err)
			continue
		}
		out = append(out, part...)
	}
	if len(failed) > 0 {
		return nil, &clusterError{nodes: failed, errs: errs}
	}
	slices.SortFunc(out, func(a, b sessionInfo) int { return a.ConnectedAt.Compare(b.ConnectedAt) })
	return out, nil
}

// GET /v2/server/nodes → {"nodes":[{node, address, sessions, started_at, last_heartbeat_at}]}.
func (s *Server) handleNodes(r *http.Request) (any, error) {
	nodes, err := s.cluster.nodes.Nodes(r.Context())
	if err != nil {
		return nil, &auth.Error{Code: auth.CodeUnavailable, Message: "Node registry unavailable.", Cause: err}
	}
	if nodes == nil {
		nodes = []hub.NodeInfo{}
	}
	return struct {
		Nodes []hub.NodeInfo `json:"nodes"`
	}{nodes}, nil
}
