package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/hub"
	"github.com/sessiongate/sessiongate/presence"
)

// The console's pages read these: the cluster overview (nodes from the registry, each node's
// live figures over the bus, Redis health) and the user search (accounts, their sessions on
// every node). The actions are the server API's handlers (console.go).

// opNodeStats asks a node for its live socket figures (the console's overview).
const opNodeStats = "node_stats"

// nodeStats is a node's answer to opNodeStats. Connects counts the sockets registered since
// the node started; Disconnects those of them that have closed.
type nodeStats struct {
	Sockets     int    `json:"sockets"`
	Connects    uint64 `json:"connects"`
	Disconnects uint64 `json:"disconnects"`
}

// registerStatsOp makes the node answer opNodeStats, whether or not its own console is on.
func (s *Server) registerStatsOp() {
	s.cluster.x.Handle(opNodeStats, func(context.Context, string, json.RawMessage) (any, error) {
		return s.localStats(), nil
	})
}

func (s *Server) localStats() nodeStats {
	live := s.rt.hub.Len()
	accepted := s.rt.accepted.Load()
	closed := uint64(0)
	if accepted > uint64(live) {
		closed = accepted - uint64(live)
	}
	return nodeStats{Sockets: live, Connects: accepted, Disconnects: closed}
}

// consoleNode is one node of the overview: its registry record, how long ago it heartbeated,
// and its live figures, or why they are missing.
type consoleNode struct {
	hub.NodeInfo
	HeartbeatAgeMS int64      `json:"heartbeat_age_ms"`
	Stats          *nodeStats `json:"stats,omitempty"`
	StatsError     string     `json:"stats_error,omitempty"`
	Self           bool       `json:"self,omitempty"`
}

type consoleRedis struct {
	Up     bool    `json:"up"`
	PingMS float64 `json:"ping_ms"`
	Error  string  `json:"error,omitempty"`
}

type consoleOverview struct {
	Node string `json:"node"`
	// Mode is "embedded" or "cluster".
	Mode string    `json:"mode"`
	Time time.Time `json:"time"`
	// Redis is the node's Redis health; absent in embedded mode.
	Redis *consoleRedis `json:"redis,omitempty"`
	BusUp bool          `json:"bus_up"`
	Nodes []consoleNode `json:"nodes"`
	// RegistryError says why the node list is empty when the registry did not answer.
	RegistryError string `json:"registry_error,omitempty"`
}

// GET /console/api/overview → consoleOverview. It answers even when Redis is down, saying so.
func (s *Server) handleConsoleOverview(r *http.Request, _ *ConsoleSession) (any, error) {
	ctx := r.Context()
	now := time.Now().UTC()
	out := consoleOverview{Node: s.cfg.NodeID, Mode: "embedded", Time: now, BusUp: s.cluster.ready() == nil, Nodes: []consoleNode{}}
	if s.redis != nil {
		out.Mode = "cluster"
		d, err := s.redis.check(ctx)
		out.Redis = &consoleRedis{Up: err == nil, PingMS: float64(d.Microseconds()) / 1000}
		if err != nil {
			out.Redis.Error = "Redis did not answer: " + err.Error()
		}
	}
	nodes, err := s.cluster.nodes.Nodes(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("console overview: node registry unavailable")
		out.RegistryError = "Node registry unavailable."
		return out, nil
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	results := s.cluster.callAll(ctx, ids, opNodeStats, struct{}{})
	for i, n := range nodes {
		cn := consoleNode{NodeInfo: n, HeartbeatAgeMS: max(now.Sub(n.LastHeartbeatAt).Milliseconds(), 0), Self: n.ID == s.cfg.NodeID}
		res := results[i]
		var st nodeStats
		if res.Err == nil {
			res.Err = json.Unmarshal(res.Reply, &st)
		}
		if res.Err != nil {
			cn.StatsError = "The node did not answer."
		} else {
			cn.Stats = &st
		}
		out.Nodes = append(out.Nodes, cn)
	}
	return out, nil
}

// consoleMaxUsers bounds the accounts one search returns.
const consoleMaxUsers = 20

// consoleUser is one account found by a search, with its live sockets on every node.
type consoleUser struct {
	Account  *auth.Account `json:"account"`
	Sessions []sessionInfo `json:"sessions"`
	// SessionsError says why Sessions may be incomplete (a node did not answer).
	SessionsError string `json:"sessions_error,omitempty"`
	// GameSessions are the user's open game sessions; PlaySession is the user's active
	// exclusive play session, if any.
	GameSessions []gameSessionJSON `json:"game_sessions"`
	PlaySession  *consolePlay      `json:"play_session,omitempty"`
	// PlayError says why GameSessions or PlaySession may be missing (a store failed).
	PlayError string `json:"play_error,omitempty"`
}

// consolePlay is an active exclusive play session in the console.
type consolePlay struct {
	ExpiresAt string `json:"expires_at"`
}

// consolePlayOf fills u's game and play sessions from the stores.
func (s *Server) consolePlayOf(ctx context.Context, u *consoleUser) {
	u.GameSessions = []gameSessionJSON{}
	games, err := s.play.games.List(ctx, u.Account.ID)
	if err == nil {
		for _, gs := range games {
			u.GameSessions = append(u.GameSessions, gameJSON(gs))
		}
		var at time.Time
		if at, err = s.play.play.Deadline(ctx, u.Account.ID); err == nil {
			u.PlaySession = &consolePlay{ExpiresAt: wireTime(at)}
		} else if errors.Is(err, presence.ErrNoActiveSession) {
			err = nil
		}
	}
	if err != nil {
		s.log.Error().Err(err).Str("user_id", u.Account.ID).Msg("console: reading play sessions")
		u.PlayError = "Game and play sessions could not be read."
	}
}

// POST /console/api/game-sessions/{id}/close → {}: closes the game session as the server API
// does (its user is notified with reason closed_by_server).
func (s *Server) handleConsoleGameClose(r *http.Request) (any, error) {
	id, err := sessionID(r)
	if err != nil {
		return nil, err
	}
	if err := s.closeGameSession(r.Context(), id, closeReasonServer); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// GET /console/api/users?q=... → {"users":[...]}: the accounts whose user id, username,
// device id, custom id or email is q, each with its sessions from every node (the server
// API's session listing). An empty q finds nothing.
func (s *Server) handleConsoleUsers(r *http.Request, cs *ConsoleSession) (any, error) {
	q := r.URL.Query().Get("q")
	accounts, err := s.auth.FindAccounts(r.Context(), q)
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("console_user", cs.User).Str("ip", s.clientIP(r)).Str("query", q).Int("found", len(accounts)).Msg("console search")
	users := make([]consoleUser, 0, min(len(accounts), consoleMaxUsers))
	for _, a := range accounts[:min(len(accounts), consoleMaxUsers)] {
		u := consoleUser{Account: a, Sessions: []sessionInfo{}}
		sessions, err := s.cluster.userSessions(r.Context(), a.ID)
		if err != nil {
			u.SessionsError = errorMessage(unavailable(err, "Session list incomplete"))
		} else {
			u.Sessions = sessions
		}
		s.consolePlayOf(r.Context(), &u)
		users = append(users, u)
	}
	return struct {
		Users []consoleUser `json:"users"`
	}{users}, nil
}
