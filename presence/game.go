package presence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Game sessions (seeds/000): a session bound to one user, one game and one currency, linked
// to one external game session id chosen by the caller, holding the user's game data (a JSON
// object) under a version for optimistic concurrency, and closed by itself after a time to
// live without play.
//
// At most one session is open per (user, game, currency), and an external id links to at most
// one open session. A session stays open until it is closed or until Expire removes it: its
// deadline is when it becomes due, and an operation that extends it (Refresh, WriteData,
// Touch) before Expire has run keeps it open. Closed sessions are forgotten.

// Errors of the game session store.
var (
	// ErrGameSessionNotFound: no open session has that id or external id.
	ErrGameSessionNotFound = errors.New("presence: game session not found")
	// ErrExternalIDInUse: the external id is linked to an open session of another user, game
	// or currency.
	ErrExternalIDInUse = errors.New("presence: external session id is linked to another game session")
	// ErrVersionConflict: WriteData with a version other than the session's current one.
	ErrVersionConflict = errors.New("presence: game session data version conflict")
	// ErrTooManyGameSessions: Create for a user who already holds NewGameSession.MaxPerUser
	// open sessions.
	ErrTooManyGameSessions = errors.New("presence: too many open game sessions for this user")
	// ErrGameSessionActive is wrapped by *ActiveSessionError.
	ErrGameSessionActive = errors.New("presence: a game session is already open for this game and currency")
)

// ActiveSessionError is Create's answer when the (user, game, currency) already has an open
// session under another external id. It matches ErrGameSessionActive.
type ActiveSessionError struct{ Active *GameSession }

func (e *ActiveSessionError) Error() string {
	return fmt.Sprintf("%v: %s (external session id %q)", ErrGameSessionActive, e.Active.ID, e.Active.ExternalID)
}

func (e *ActiveSessionError) Unwrap() error { return ErrGameSessionActive }

// GameSession is one open game session.
type GameSession struct {
	ID         string // UUID
	UserID     string
	GameID     string
	Currency   string
	ExternalID string
	CreatedAt  time.Time
	ExpiresAt  time.Time // the deadline; Refresh, WriteData and Touch move it
	// Data is the user's game data, a JSON object ("{}" when new). The store keeps the bytes
	// as given; the gateway validates and compacts them.
	Data []byte
	// Version counts the data writes: 1 when created, +1 per WriteData.
	Version int64
}

// NewGameSession is what Create needs.
type NewGameSession struct {
	UserID, GameID, Currency, ExternalID string
	// MaxPerUser, when above 0, bounds the user's open sessions: a create that would open one
	// more fails with ErrTooManyGameSessions (an idempotent repeat still succeeds).
	MaxPerUser int
}

// GameSessions stores the open game sessions of every user of the cluster. All methods are
// safe for concurrent use; each is one atomic step (on Redis a Lua script), so that concurrent
// Creates for one (user, game, currency) open one session and, of concurrent WriteData calls
// with the same version, exactly one wins. Time-to-live values are passed per call.
type GameSessions interface {
	// Create opens a session with a deadline ttl from now and returns it with created true.
	// When the (user, game, currency) already has an open session under the same external id
	// it returns that one with created false (the create is idempotent); under another
	// external id it fails with *ActiveSessionError naming it. An external id linked to an
	// open session of another (user, game, currency) fails with ErrExternalIDInUse, and a
	// user at s.MaxPerUser open sessions gets ErrTooManyGameSessions.
	Create(ctx context.Context, s NewGameSession, ttl time.Duration) (gs *GameSession, created bool, err error)
	// Get returns the open session with that id, or ErrGameSessionNotFound.
	Get(ctx context.Context, id string) (*GameSession, error)
	// GetByExternalID returns the open session linked to the external id, or
	// ErrGameSessionNotFound.
	GetByExternalID(ctx context.Context, externalID string) (*GameSession, error)
	// List returns the user's open sessions, oldest first.
	List(ctx context.Context, userID string) ([]*GameSession, error)
	// Refresh moves the session's deadline to ttl from now and returns it, or fails with
	// ErrGameSessionNotFound.
	Refresh(ctx context.Context, id string, ttl time.Duration) (*GameSession, error)
	// WriteData replaces the session's data if version is its current version, increments
	// the version, moves the deadline to ttl from now and returns the session. A stale version
	// fails with ErrVersionConflict (and the session as it is); a closed one with
	// ErrGameSessionNotFound.
	WriteData(ctx context.Context, id string, data []byte, version int64, ttl time.Duration) (*GameSession, error)
	// Close closes the session and returns it as it was, or fails with ErrGameSessionNotFound.
	// Of concurrent Closes (and Expire) exactly one gets the session.
	Close(ctx context.Context, id string) (*GameSession, error)
	// Touch moves the deadline of every open session of the given users (users holding a live
	// socket) to ttl from now, never backwards, and returns how many it moved.
	Touch(ctx context.Context, userIDs []string, ttl time.Duration) (int, error)
	// Expire closes up to limit sessions whose deadline has passed, earliest first, and
	// returns them (ExpiresAt is the deadline they had). Each is returned by exactly one call
	// on any node, and never also by Close.
	Expire(ctx context.Context, limit int) ([]*GameSession, error)
}

// newID returns a new session id, a random UUID.
func newID() string { return uuid.NewString() }
