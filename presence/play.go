package presence

import (
	"context"
	"errors"
	"time"
)

// Play sessions (seeds/001): at most one per user, started with Initiate, kept alive by
// Heartbeat (or by Touch, for users holding a live socket), ended by End or by expiry
// Timeout after the last heartbeat.
//
// A session whose deadline has passed is gone for every operation at once (Heartbeat and End
// answer ErrNoActiveSession, Initiate starts a new one), whether or not Expire has removed
// it yet: the check is made against the deadline inside the store's atomic step. Expire is
// the cleanup and the place where expiries are counted and their lateness measured.

// Errors of the play and game session stores. Callers match them with errors.Is.
var (
	// ErrAlreadyInGame: Initiate for a user whose play session is still active.
	ErrAlreadyInGame = errors.New("presence: a play session is already active for this user")
	// ErrNoActiveSession: Heartbeat or End for a user without an active play session.
	ErrNoActiveSession = errors.New("presence: no active play session for this user")
)

// Expired is one session removed by an Expire call: its id (the user id for play sessions)
// and the deadline it had, so the caller can measure how late the removal was.
type Expired struct {
	ID       string
	Deadline time.Time
}

// PlaySessions stores the exclusive play sessions of every user of the cluster. All methods
// are safe for concurrent use, and each is one atomic step: on Redis a Lua script, so that
// of concurrent Initiates for one user on any number of nodes exactly one succeeds.
//
// Timeouts are passed per call, so a store holds no configuration of the node.
type PlaySessions interface {
	// Initiate starts the user's play session with a deadline timeout from now, or returns
	// ErrAlreadyInGame if one is active.
	Initiate(ctx context.Context, userID string, timeout time.Duration) error
	// Heartbeat moves the active session's deadline to timeout from now, or returns
	// ErrNoActiveSession.
	Heartbeat(ctx context.Context, userID string, timeout time.Duration) error
	// End removes the active session, or returns ErrNoActiveSession.
	End(ctx context.Context, userID string) error
	// Deadline returns the deadline of the user's active session, or ErrNoActiveSession (the
	// operator's console shows it).
	Deadline(ctx context.Context, userID string) (time.Time, error)
	// Touch heartbeats, as one batch, the active sessions among userIDs (users that hold a
	// live socket); users without one are skipped, and a deadline never moves backwards. It
	// returns how many sessions it extended.
	Touch(ctx context.Context, userIDs []string, timeout time.Duration) (int, error)
	// Expire removes up to limit sessions whose deadline has passed, earliest first, and
	// returns them. Each expired session is returned by exactly one call, whichever node
	// makes it (the claim is atomic).
	Expire(ctx context.Context, limit int) ([]Expired, error)
}
