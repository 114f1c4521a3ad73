package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heroiclabs/nakama-common/api"

	"github.com/sessiongate/sessiongate/hub"
	"github.com/sessiongate/sessiongate/presence"
)

// The ops nodes run for each other over the bus. Requests (answered once the node has acted):
// disconnect a session, disconnect a user, list a user's sessions, notify a user. Casts (no
// answer): a presence event, a single-socket replacement, a node leaving.
const (
	opDisconnectSession = "disconnect_session"
	opDisconnectUser    = "disconnect_user"
	opUserSessions      = "user_sessions"
	opNotifyUser        = "notify_user"
	opPresence          = "presence"
	opReplaceUser       = "replace_user"
	opLeave             = "leave"
	opHello             = "hello"
)

type disconnectRequest struct {
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

type countReply struct {
	N int `json:"n"`
}

type notifyRequest struct {
	UserID string `json:"user_id"`
	// Msg is the envelope in json, the bytes every json socket gets; the receiving node encodes
	// it once more for its protobuf sockets, if it has any (outMsgFromJSON).
	Msg string `json:"msg"`
}

type replaceRequest struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	// ConnectedAt (Unix ns) orders the sockets: a node closes the user's sockets that
	// connected before the new one, so of simultaneous sockets on two nodes the newest
	// survives, never neither.
	ConnectedAt int64 `json:"connected_at"`
}

// sessionInfo is one socket session as GET /v2/server/users/{user_id}/sessions lists it.
type sessionInfo struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	Username  string `json:"username,omitempty"`
	Node      string `json:"node"`
	// Status is the session's status while it appears online ("" online without a status);
	// absent while it does not.
	Status      *string           `json:"status,omitempty"`
	Vars        map[string]string `json:"vars,omitempty"`
	ConnectedAt time.Time         `json:"connected_at"`
	LastSeenAt  time.Time         `json:"last_seen_at"`
}

func decodeOp[T any](body json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("malformed cluster request: %w", err)
	}
	return v, nil
}

func (c *cluster) registerOps() {
	s := c.s
	h := s.rt.hub
	c.x.Handle(opDisconnectSession, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		req, err := decodeOp[disconnectRequest](body)
		if err != nil {
			return nil, err
		}
		var conns []hub.Conn
		if conn, ok := h.Get(req.SessionID); ok {
			conns = []hub.Conn{conn}
		}
		n, start := closeMany(conns, CloseDisconnected, req.Reason)
		start()
		return countReply{N: n}, nil
	})
	c.x.Handle(opDisconnectUser, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		req, err := decodeOp[disconnectRequest](body)
		if err != nil {
			return nil, err
		}
		var buf [8]hub.Conn
		n, start := closeMany(h.UserConns(req.UserID, buf[:0]), CloseDisconnected, req.Reason)
		return &hub.Deferred{Reply: countReply{N: n}, After: start}, nil
	})
	c.x.Handle(opUserSessions, func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
		req, err := decodeOp[disconnectRequest](body)
		if err != nil {
			return nil, err
		}
		return c.localSessions(ctx, req.UserID)
	})
	c.x.Handle(opNotifyUser, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		req, err := decodeOp[notifyRequest](body)
		if err != nil {
			return nil, err
		}
		return countReply{N: s.rt.sendToUser(req.UserID, outMsgFromJSON([]byte(req.Msg)))}, nil
	})
	c.x.Handle(opPresence, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		e, err := decodeOp[presence.Event](body)
		if err != nil {
			return nil, err
		}
		s.rt.status.deliver(e)
		return nil, nil
	})
	c.x.Handle(opReplaceUser, func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		req, err := decodeOp[replaceRequest](body)
		if err != nil {
			return nil, err
		}
		var buf [8]hub.Conn
		var older []hub.Conn
		for _, conn := range h.UserConns(req.UserID, buf[:0]) {
			sc, ok := conn.(*socketConn)
			if ok && sc.id != req.SessionID && (sc.connectedAt < req.ConnectedAt ||
				(sc.connectedAt == req.ConnectedAt && sc.id < req.SessionID)) {
				older = append(older, conn)
			}
		}
		s.rt.replace(older)
		return nil, nil
	})
	c.x.Handle(opHello, func(_ context.Context, from string, _ json.RawMessage) (any, error) {
		c.mu.Lock()
		c.seen[from] = time.Now()
		c.mu.Unlock()
		return nil, nil
	})
	c.x.Handle(opLeave, func(_ context.Context, from string, _ json.RawMessage) (any, error) {
		c.forget(from)
		return nil, nil
	})
}

// closeMany asks every socket of conns to close with code and reason, and returns how many it
// closed (a socket already closing for another cause is not counted again) and the function
// that sends their close frames. Each socket is closing (it refuses sends, its close is decided
// and its deadline armed) before closeMany returns; only the close frames (written directly for
// idle sockets, by writer goroutines for the others) wait for start, so that the node answers a
// bulk disconnect before thousands of closes compete with its reply for the CPU.
func closeMany(conns []hub.Conn, code int, reason string) (int, func()) {
	code, reason = sanitizeClose(code, reason)
	cause := causeOf(code)
	writers := make([]*socketConn, 0, len(conns))
	n := 0
	for _, conn := range conns {
		sc, ok := conn.(*socketConn)
		if !ok {
			conn.Close(code, reason)
			n++
			continue
		}
		sc.mu.Lock()
		if !sc.closing {
			n++
			if sc.requestCloseLocked(code, reason, cause, false) {
				writers = append(writers, sc)
			}
		}
		sc.mu.Unlock()
	}
	return n, func() {
		for _, sc := range writers {
			sc.startClose()
		}
	}
}

// localSessions lists the user's sockets on this node.
func (c *cluster) localSessions(ctx context.Context, userID string) ([]sessionInfo, error) {
	rt := c.s.rt
	var buf [8]hub.Conn
	conns := rt.hub.UserConns(userID, buf[:0])
	out := make([]sessionInfo, 0, len(conns))
	if len(conns) == 0 {
		return out, nil
	}
	ps, err := rt.status.tracker.List(ctx, []string{userID}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing presences: %w", err)
	}
	for _, conn := range conns {
		sc, ok := conn.(*socketConn)
		if !ok {
			continue
		}
		info := sessionInfo{SessionID: sc.id, UserID: sc.userID, Username: sc.username, Node: c.node,
			Vars:        sc.vars,
			ConnectedAt: time.Unix(0, sc.connectedAt).UTC(),
			LastSeenAt:  rt.epoch.Add(time.Duration(sc.lastSeen.Load())).UTC().Round(0),
		}
		for _, p := range ps {
			if p.SessionID == sc.id {
				st := p.Status
				info.Status = &st
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// forwardPresence carries one of this node's presence events to the other nodes.
func (c *cluster) forwardPresence(e presence.Event) { c.castOthers(opPresence, e) }

// replaceElsewhere closes the user's older sockets on the other nodes (--single-socket).
func (c *cluster) replaceElsewhere(sc *socketConn) {
	c.castOthers(opReplaceUser, replaceRequest{UserID: sc.userID, SessionID: sc.id, ConnectedAt: sc.connectedAt})
}

// NotifyUserCluster pushes notifications to every socket of the user on every node, as
// Nakama's {"notifications":{"notifications":[...]}} envelope (in each socket's format), and
// returns how many sockets queued it. It answers once every live node has queued it; a node
// that does not answer within Config.ClusterTimeout makes it fail with an error naming the node
// (the count then covers the nodes that answered).
func (s *Server) NotifyUserCluster(ctx context.Context, userID string, notifications ...*api.Notification) (int, error) {
	m, err := notificationsMsg(notifications)
	if err != nil {
		return 0, err
	}
	msg, _ := m.bytes(formatJSON) // encoded by notificationsMsg
	n, _, err := s.cluster.sum(ctx, opNotifyUser, notifyRequest{UserID: userID, Msg: string(msg)})
	return n, err
}

// sum calls op on every live node and adds up their counts. failed names the nodes that did
// not answer; err is non-nil when any failed.
func (c *cluster) sum(ctx context.Context, op string, body any) (n int, failed []string, err error) {
	nodes, err := c.liveNodes(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("listing cluster nodes: %w", err)
	}
	var errs []error
	for _, r := range c.callAll(ctx, nodes, op, body) {
		if r.Err != nil {
			failed = append(failed, r.Node)
			errs = append(errs, r.Err)
			continue
		}
		var rep countReply
		if err := json.Unmarshal(r.Reply, &rep); err != nil {
			failed = append(failed, r.Node)
			errs = append(errs, fmt.Errorf("node %s: malformed reply: %w", r.Node, err))
			continue
		}
		n += rep.N
	}
	if len(errs) > 0 {
		return n, failed, &clusterError{nodes: failed, errs: errs}
	}
	return n, nil, nil
}

// clusterError is a cross-node call that some nodes did not answer.
type clusterError struct {
	nodes []string
	errs  []error
}

func (e *clusterError) Error() string {
	return fmt.Sprintf("nodes %v did not answer: %v", e.nodes, e.errs)
}
