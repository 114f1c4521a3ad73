package auth

import "context"

// AccountStore persists accounts and their unique indexes (username, device ids, custom id,
// email). Implementations must be safe for concurrent use, and Create must be atomic: two
// concurrent creates for the same identity or username leave exactly one account.
type AccountStore interface {
	// Get returns the account with that user id, or ErrAccountNotFound.
	Get(ctx context.Context, userID string) (*Account, error)
	// FindByIdentity returns the account linked to the identity, or ErrAccountNotFound.
	FindByIdentity(ctx context.Context, p Provider, id string) (*Account, error)
	// FindByUsername returns the account with exactly that username, or ErrAccountNotFound.
	FindByUsername(ctx context.Context, username string) (*Account, error)
	// Create stores a new account indexed by its username and its identity for provider p.
	// It returns ErrUsernameTaken or ErrIdentityTaken, and stores nothing, if either is in use.
	Create(ctx context.Context, a *Account, p Provider) error
	// Ping reports whether the store answers; /readyz uses it.
	Ping(ctx context.Context) error
}

// RevocationStore persists revocations so that every node sees them, and they outlive a
// node's restart until the tokens they cover would have expired anyway.
type RevocationStore interface {
	// Revoke records r durably and announces it to every node's Watch.
	Revoke(ctx context.Context, r Revocation) error
	// Watch calls apply for every revocation still in force, then for each new one made on any
	// node, until ctx ends. It calls synced after each complete snapshot (at start, and again
	// after a lost connection is restored and the snapshot re-read), and unsynced when it
	// loses the feed, so the owner can report readiness. It returns ctx.Err() when ctx ends.
	Watch(ctx context.Context, apply func(Revocation), synced, unsynced func()) error
	// Ping reports whether the store answers; /readyz uses it.
	Ping(ctx context.Context) error
}
