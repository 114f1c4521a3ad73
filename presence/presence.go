package presence

import (
	"context"
	"errors"
)

// Presence is one session that appears online with a status.
type Presence struct {
	UserID    string
	SessionID string
	Username  string
	// Status is the user-set status; "" is online without a status (a socket connected with
	// status=true that has not sent status_update).
	Status string
	// Node is the id of the node that holds the session.
	Node string
}

// Event is a change of one user's presences that followers see: presences that appeared or
// changed (Joins, with their new status) and presences that went away or were replaced
// (Leaves, with their last status). An Update reports the new presence in Joins and the
// replaced one in Leaves, as Nakama does.
type Event struct {
	UserID string
	Joins  []Presence
	Leaves []Presence
}

// EventFunc receives events. It is called synchronously by the goroutine whose call caused the
// event, with no Tracker lock held, so it may call back into the Tracker; it must not block
// for long (the gateway encodes the event and queues it on sockets without blocking). The
// Event and its slices belong to the callee.
type EventFunc func(Event)

// Tracker is the presence boundary: status presences (who is online with which status) and
// the follower index (which local sessions follow which users). All methods are safe for
// concurrent use.
//
// Events of one session are delivered in the order of the calls that caused them as long as the
// caller does not make concurrent calls for the same session (the gateway calls from the
// session's own goroutines, one at a time).
type Tracker interface {
	// Join, Update and Leave change the session's presence on its own node; a change a shared
	// store cannot take at the moment still stands there and emits its event (the store is
	// brought in line later, see Redis), so their errors are about the input.
	//
	// Join makes the session appear online with p's status, unless it already does: then
	// nothing changes and Join reports false. p.Node defaults to the tracker's node.
	Join(ctx context.Context, p Presence) (bool, error)
	// Update sets the session's status, making it appear online if it did not: the event holds
	// the new presence as a join and the previous one, if any, as a leave.
	Update(ctx context.Context, p Presence) error
	// Leave makes the session appear offline and reports whether it appeared online.
	Leave(ctx context.Context, userID, sessionID string) (bool, error)
	// List appends to dst the presences of the given users (unknown or offline users add
	// nothing) and returns the extended slice.
	List(ctx context.Context, userIDs []string, dst []Presence) ([]Presence, error)

	// Follow makes the session follow the users: their events reach it through FollowersOf.
	// Following a user already followed is a no-op.
	Follow(sessionID string, userIDs []string)
	// Unfollow stops the session following the users; users not followed are ignored.
	Unfollow(sessionID string, userIDs []string)
	// UnfollowAll drops every follow of the session (when it closes).
	UnfollowAll(sessionID string)
	// FollowersOf appends to dst the ids of the sessions that follow the user.
	FollowersOf(userID string, dst []string) []string
}

// ErrInvalidPresence is returned for a presence without a user id or a session id.
var ErrInvalidPresence = errors.New("presence: user id and session id are required")
