package gateway

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sessiongate/sessiongate/presence"
)

// Status presence: Nakama's status_follow / status_unfollow / status_update and the
// status_presence_event pushed to followers.
//
// As in Nakama, every socket follows its own user from the moment it connects, so a user's own
// sockets receive the events of their user; a socket connected with status=true appears online
// (a join with an empty status) and its close is a leave. The presence.Tracker holds who is
// online and who follows whom; its events come back to onEvent, which makes each event one
// outMsg: encoded once per format and the same bytes queued on every follower's socket of that
// format.

// maxStatusBytes bounds a status, as Nakama's len(status) > 2048 check (bytes, not characters).
const maxStatusBytes = 2048

// statusLookupTimeout bounds the account lookups of one status_follow.
const statusLookupTimeout = 5 * time.Second

// statusPresence is the node's status presence: the tracker and the sockets it delivers to.
type statusPresence struct {
	tracker presence.Tracker
	rt      *realtime
	// forward, set in cluster mode, carries this node's events to the other nodes
	// (cluster_presence.go); their events come back through deliver.
	forward func(presence.Event)
}

func newStatusPresence(node string, rt *realtime) *statusPresence {
	sp := &statusPresence{rt: rt}
	sp.tracker = presence.NewMemory(presence.MemoryConfig{Node: node, OnEvent: sp.onEvent})
	return sp
}

// Presence returns the node's presence tracker.
func (s *Server) Presence() presence.Tracker { return s.rt.status.tracker }

// smallFollowers sizes the stack buffer for an event's recipients.
const smallFollowers = 16

// onEvent is the tracker's callback: the event goes to this node's followers and, in a
// cluster, to the other nodes'.
func (sp *statusPresence) onEvent(e presence.Event) {
	sp.deliver(e)
	if sp.forward != nil {
		sp.forward(e)
	}
}

// deliver sends a presence event to this node's followers of its user: encoded at most once
// per format, sent to all.
func (sp *statusPresence) deliver(e presence.Event) {
	var buf [smallFollowers]string
	followers := sp.tracker.FollowersOf(e.UserID, buf[:0])
	if len(followers) == 0 {
		return
	}
	m := newOutMsg(&rtapi.Envelope{Message: &rtapi.Envelope_StatusPresenceEvent{
		StatusPresenceEvent: &rtapi.StatusPresenceEvent{Joins: wirePresences(e.Joins), Leaves: wirePresences(e.Leaves)},
	}})
	for _, sid := range followers {
		sp.rt.sendToSession(sid, m)
	}
}

func wirePresences(ps []presence.Presence) []*rtapi.UserPresence {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*rtapi.UserPresence, len(ps))
	for i, p := range ps {
		out[i] = &rtapi.UserPresence{UserId: p.UserID, SessionId: p.SessionID, Username: p.Username,
			Status: wrapperspb.String(p.Status)}
	}
	return out
}

// statusConnected runs once a socket is registered, before its read loop starts: the socket
// follows its own user and, when it connected with status=true, appears online.
func (c *socketConn) statusConnected() {
	t := c.s.rt.status.tracker
	t.Follow(c.id, []string{c.userID})
	if c.status {
		_, _ = t.Join(context.Background(), c.presence(""))
	}
}

// statusClosed runs once when the socket's read loop ends: its presence leaves and its follows
// are dropped.
func (c *socketConn) statusClosed() {
	t := c.s.rt.status.tracker
	_, _ = t.Leave(context.Background(), c.userID, c.id)
	t.UnfollowAll(c.id)
}

func (c *socketConn) presence(status string) presence.Presence {
	return presence.Presence{UserID: c.userID, SessionID: c.id, Username: c.username, Status: status}
}

// handleStatus answers the status_* envelopes. None of their errors closes the socket, as in
// Nakama.
func (c *socketConn) handleStatus(env *rtapi.Envelope) {
	switch m := env.Message.(type) {
	case *rtapi.Envelope_StatusFollow:
		c.statusFollow(env.Cid, m.StatusFollow)
	case *rtapi.Envelope_StatusUnfollow:
		c.statusUnfollow(env.Cid, m.StatusUnfollow)
	case *rtapi.Envelope_StatusUpdate:
		c.statusUpdate(env.Cid, m.StatusUpdate)
	}
}

// sendEnvelope queues env, encoded in the socket's format.
func (c *socketConn) sendEnvelope(env *rtapi.Envelope) {
	msg, err := c.format.marshal(env)
	if err != nil {
		c.s.log.Error().Err(err).Msg("encoding envelope")
		return
	}
	c.Send(msg)
}

// parseUserIDs validates user ids as UUIDs, returns them in canonical form without the caller's
// own id (a user always follows itself), or false after answering with Nakama's error.
func (c *socketConn) parseUserIDs(cid string, ids []string) ([]string, bool) {
	out := make([]string, 0, len(ids))
	for _, s := range ids {
		u, err := uuid.Parse(s)
		if err != nil {
			c.sendError(cid, errBadInput, "Invalid user identifier")
			return nil, false
		}
		if id := u.String(); id != c.userID {
			out = append(out, id)
		}
	}
	return out, true
}

// statusFollow: {"status_follow":{"user_ids":[...],"usernames":[...]}} →
// {"cid","status":{"presences":[...]}} with the current presences of the users followed.
// Unknown users are ignored; a malformed id or an empty username is error 3.
func (c *socketConn) statusFollow(cid string, in *rtapi.StatusFollow) {
	ids, ok := c.parseUserIDs(cid, in.GetUserIds())
	if !ok {
		return
	}
	names := make([]string, 0, len(in.GetUsernames()))
	for _, n := range in.GetUsernames() {
		if n == "" {
			c.sendError(cid, errBadInput, "Invalid username")
			return
		}
		if n != c.username {
			names = append(names, n)
		}
	}
	status := &rtapi.Status{}
	if len(ids) > 0 || len(names) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), statusLookupTimeout)
		defer cancel()
		found, err := c.s.auth.LookupUsers(ctx, ids, names)
		if err != nil {
			c.s.log.Error().Err(err).Msg("checking users in status follow")
			c.sendError(cid, int32(rtapi.Error_RUNTIME_EXCEPTION), "Could not check users")
			return
		}
		follow := found[:0]
		for _, id := range found {
			if id != c.userID {
				follow = append(follow, id)
			}
		}
		t := c.s.rt.status.tracker
		t.Follow(c.id, follow)
		ps, err := t.List(ctx, follow, nil)
		if err != nil {
			c.s.log.Error().Err(err).Msg("listing presences in status follow")
			c.sendError(cid, int32(rtapi.Error_RUNTIME_EXCEPTION), "Could not list presences")
			return
		}
		status.Presences = wirePresences(ps)
	}
	c.sendEnvelope(&rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_Status{Status: status}})
}

// statusUnfollow: {"status_unfollow":{"user_ids":[...]}} → {"cid"}.
func (c *socketConn) statusUnfollow(cid string, in *rtapi.StatusUnfollow) {
	ids, ok := c.parseUserIDs(cid, in.GetUserIds())
	if !ok {
		return
	}
	c.s.rt.status.tracker.Unfollow(c.id, ids)
	c.sendEnvelope(&rtapi.Envelope{Cid: cid})
}

// statusUpdate: {"status_update":{"status":"..."}} → {"cid"}; without a status the socket
// appears offline (a leave), with one it appears online with that status.
func (c *socketConn) statusUpdate(cid string, in *rtapi.StatusUpdate) {
	t := c.s.rt.status.tracker
	ctx := context.Background()
	if in.GetStatus() == nil {
		if _, err := t.Leave(ctx, c.userID, c.id); err != nil {
			c.sendError(cid, int32(rtapi.Error_RUNTIME_EXCEPTION), "Error tracking status update")
			return
		}
		c.sendEnvelope(&rtapi.Envelope{Cid: cid})
		return
	}
	status := in.GetStatus().GetValue()
	if len(status) > maxStatusBytes {
		c.sendError(cid, errBadInput, "Status must be 2048 characters or less")
		return
	}
	if err := t.Update(ctx, c.presence(status)); err != nil {
		c.sendError(cid, int32(rtapi.Error_RUNTIME_EXCEPTION), "Error tracking status update")
		return
	}
	c.sendEnvelope(&rtapi.Envelope{Cid: cid})
}
