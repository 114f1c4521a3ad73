package presence_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiongate/sessiongate/presence"
)

// An exclusive play session: one per user, kept alive by heartbeats.
func ExampleMemoryPlay() {
	ps, ctx := presence.NewMemoryPlay(), context.Background()
	fmt.Println(ps.Initiate(ctx, "user-1", 10*time.Second))
	fmt.Println(errors.Is(ps.Initiate(ctx, "user-1", 10*time.Second), presence.ErrAlreadyInGame))
	fmt.Println(ps.Heartbeat(ctx, "user-1", 10*time.Second))
	fmt.Println(ps.End(ctx, "user-1"))
	fmt.Println(errors.Is(ps.Heartbeat(ctx, "user-1", 10*time.Second), presence.ErrNoActiveSession))
	// Output:
	// <nil>
	// true
	// <nil>
	// <nil>
	// true
}

// A game session's data is written with optimistic concurrency: a write names the version it
// read, and a stale one is refused.
func ExampleMemoryGames() {
	gs, ctx := presence.NewMemoryGames(), context.Background()
	s, created, _ := gs.Create(ctx, presence.NewGameSession{UserID: "user-1", GameID: "slots", Currency: "EUR", ExternalID: "prov-1"}, 4*time.Hour)
	fmt.Println(created, s.Version, string(s.Data))
	s, _ = gs.WriteData(ctx, s.ID, []byte(`{"balance":100}`), 1, 4*time.Hour)
	fmt.Println(s.Version, string(s.Data))
	_, err := gs.WriteData(ctx, s.ID, []byte(`{"balance":0}`), 1, 4*time.Hour)
	fmt.Println(errors.Is(err, presence.ErrVersionConflict))
	// Output:
	// true 1 {}
	// 2 {"balance":100}
	// true
}
