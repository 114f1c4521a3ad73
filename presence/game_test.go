package presence_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

func newGame(user, game, currency, ext string) presence.NewGameSession {
	return presence.NewGameSession{UserID: user, GameID: game, Currency: currency, ExternalID: ext}
}

// create opens a session and requires it to be new.
func create(t *testing.T, gs presence.GameSessions, n presence.NewGameSession, ttl time.Duration) *presence.GameSession {
	t.Helper()
	s, created, err := gs.Create(context.Background(), n, ttl)
	if err != nil || !created {
		t.Fatalf("Create(%+v) = created %v, %v; want a new session", n, created, err)
	}
	return s
}

func TestGameSessions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s playStores) {
		t.Run("create", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			before := time.Now().Add(-time.Millisecond)
			a := create(t, gs, newGame(u, "slots:7", "EUR", "ext-"+u), time.Hour)
			if _, err := uuid.Parse(a.ID); err != nil {
				t.Errorf("id %q is not a UUID", a.ID)
			}
			if a.UserID != u || a.GameID != "slots:7" || a.Currency != "EUR" || a.ExternalID != "ext-"+u ||
				string(a.Data) != "{}" || a.Version != 1 {
				t.Errorf("created %+v", a)
			}
			if a.CreatedAt.Before(before) || a.ExpiresAt.Sub(a.CreatedAt) < time.Hour-time.Second || a.ExpiresAt.Sub(a.CreatedAt) > time.Hour+time.Second {
				t.Errorf("created %v, expires %v; want expiry an hour after creation", a.CreatedAt, a.ExpiresAt)
			}
			// The same create again is idempotent.
			again, created, err := gs.Create(ctx, newGame(u, "slots:7", "EUR", "ext-"+u), time.Hour)
			if err != nil || created || again.ID != a.ID {
				t.Fatalf("repeated create = %+v, %v, %v; want the same session", again, created, err)
			}
			// Another external id for the same triple names the open one.
			_, _, err = gs.Create(ctx, newGame(u, "slots:7", "EUR", "other-"+u), time.Hour)
			var active *presence.ActiveSessionError
			if !errors.As(err, &active) || !errors.Is(err, presence.ErrGameSessionActive) || active.Active.ID != a.ID {
				t.Fatalf("conflicting create: %v, want ActiveSessionError naming %s", err, a.ID)
			}
			// Another currency and another game are separate sessions (created a few ms apart, so
			// that List's oldest-first order is theirs).
			time.Sleep(3 * time.Millisecond)
			b := create(t, gs, newGame(u, "slots:7", "USD", "usd-"+u), time.Hour)
			time.Sleep(3 * time.Millisecond)
			c := create(t, gs, newGame(u, "slots", "7:EUR", "c-"+u), time.Hour) // not confused with slots:7 / EUR
			// An external id may link one open session only.
			if _, _, err := gs.Create(ctx, newGame(uuid.NewString(), "g", "EUR", "ext-"+u), time.Hour); !errors.Is(err, presence.ErrExternalIDInUse) {
				t.Fatalf("create with a linked external id: %v, want ErrExternalIDInUse", err)
			}
			list, err := gs.List(ctx, u)
			must(t, err)
			if len(list) != 3 || list[0].ID != a.ID || list[1].ID != b.ID || list[2].ID != c.ID {
				t.Errorf("List = %v, want a, b, c", ids(list))
			}
			if other, _ := gs.List(ctx, uuid.NewString()); len(other) != 0 {
				t.Errorf("List of a stranger = %v", ids(other))
			}
		})
		t.Run("lookups and close", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			a := create(t, gs, newGame(u, "g", "EUR", "x-"+u), time.Hour)
			got, err := gs.Get(ctx, a.ID)
			must(t, err)
			if got.ID != a.ID || got.ExternalID != a.ExternalID || !got.ExpiresAt.Equal(a.ExpiresAt) {
				t.Errorf("Get = %+v, want %+v", got, a)
			}
			got, err = gs.GetByExternalID(ctx, "x-"+u)
			must(t, err)
			if got.ID != a.ID {
				t.Errorf("GetByExternalID = %s, want %s", got.ID, a.ID)
			}
			closed, err := gs.Close(ctx, a.ID)
			must(t, err)
			if closed.ID != a.ID || closed.UserID != u {
				t.Errorf("Close returned %+v", closed)
			}
			for _, err := range []error{
				second(gs.Close(ctx, a.ID)), second(gs.Get(ctx, a.ID)), second(gs.GetByExternalID(ctx, "x-"+u)),
				second(gs.Refresh(ctx, a.ID, time.Hour)), second(gs.WriteData(ctx, a.ID, []byte(`{}`), 1, time.Hour)),
				second(gs.Get(ctx, uuid.NewString())),
			} {
				wantErr(t, err, presence.ErrGameSessionNotFound)
			}
			if list, _ := gs.List(ctx, u); len(list) != 0 {
				t.Errorf("List after close = %v", ids(list))
			}
			// Closing frees the triple and the external id.
			b := create(t, gs, newGame(u, "g", "EUR", "x-"+u), time.Hour)
			if b.ID == a.ID {
				t.Error("a closed session came back")
			}
		})
		t.Run("data", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			a := create(t, gs, newGame(u, "g", "EUR", "d-"+u), time.Minute)
			data := []byte(`{"balance":12345678901234567890,"bets":[1,2.5],"name":"ünï"}`)
			w, err := gs.WriteData(ctx, a.ID, data, 1, time.Hour)
			must(t, err)
			if w.Version != 2 || string(w.Data) != string(data) || !w.ExpiresAt.After(a.ExpiresAt.Add(50*time.Minute)) {
				t.Errorf("after write: version %d, data %s, expires %v (was %v)", w.Version, w.Data, w.ExpiresAt, a.ExpiresAt)
			}
			cur, err := gs.WriteData(ctx, a.ID, []byte(`{"lost":true}`), 1, time.Hour)
			wantErr(t, err, presence.ErrVersionConflict)
			if cur == nil || cur.Version != 2 || string(cur.Data) != string(data) {
				t.Errorf("conflict returned %+v, want the current session", cur)
			}
			got, err := gs.Get(ctx, a.ID)
			must(t, err)
			if got.Version != 2 || string(got.Data) != string(data) {
				t.Errorf("Get after write: version %d, data %s", got.Version, got.Data)
			}
		})
		t.Run("limit per user", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			limited := func(game string) presence.NewGameSession {
				n := newGame(u, game, "EUR", game+"-"+u)
				n.MaxPerUser = 2
				return n
			}
			a := create(t, gs, limited("a"), time.Hour)
			create(t, gs, limited("b"), time.Hour)
			if _, _, err := gs.Create(ctx, limited("c"), time.Hour); !errors.Is(err, presence.ErrTooManyGameSessions) {
				t.Fatalf("third create: %v, want ErrTooManyGameSessions", err)
			}
			if again, created, err := gs.Create(ctx, limited("a"), time.Hour); err != nil || created || again.ID != a.ID {
				t.Fatalf("an idempotent repeat at the limit: %v, %v", created, err)
			}
			must(t, second(gs.Close(ctx, a.ID)))
			create(t, gs, limited("c"), time.Hour)
			create(t, gs, newGame(u, "d", "EUR", "d-"+u), time.Hour) // no limit given
		})
		t.Run("concurrent writes", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			a := create(t, gs, newGame(u, "g", "EUR", "c-"+u), time.Hour)
			oneWins(t, 50, presence.ErrVersionConflict, func(i int) error {
				_, err := gs.WriteData(ctx, a.ID, []byte(`{"w":`+itoa(i)+`}`), 1, time.Hour)
				return err
			})
		})
		t.Run("concurrent creates", func(t *testing.T) {
			t.Parallel()
			gs, ctx, u := s.games(t), context.Background(), uuid.NewString()
			var created atomic.Int64
			ids := make([]string, 50)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					s, c, err := gs.Create(ctx, newGame(u, "g", "EUR", "same"), time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if c {
						created.Add(1)
					}
					ids[i] = s.ID
				})
			}
			wg.Wait()
			if created.Load() != 1 {
				t.Errorf("%d creates made a session, want 1", created.Load())
			}
			for _, id := range ids {
				if id != ids[0] {
					t.Fatalf("creates returned different sessions %s and %s", ids[0], id)
				}
			}
		})
		t.Run("refresh, touch and expire", func(t *testing.T) {
			t.Parallel()
			gs, ctx := s.games(t), context.Background()
			u, other := uuid.NewString(), uuid.NewString()
			refreshed := create(t, gs, newGame(u, "r", "EUR", "r-"+u), 100*time.Millisecond)
			touched := create(t, gs, newGame(u, "t", "EUR", "t-"+u), 100*time.Millisecond)
			left := create(t, gs, newGame(other, "l", "EUR", "l-"+other), 100*time.Millisecond)
			long := create(t, gs, newGame(other, "long", "EUR", "long-"+other), time.Hour)
			r, err := gs.Refresh(ctx, refreshed.ID, time.Hour)
			must(t, err)
			if r.ExpiresAt.Sub(refreshed.ExpiresAt) < 50*time.Minute {
				t.Errorf("refresh moved expiry from %v to %v", refreshed.ExpiresAt, r.ExpiresAt)
			}
			n, err := gs.Touch(ctx, []string{u, uuid.NewString()}, time.Minute)
			must(t, err)
			if n != 1 { // the refreshed one is already further out
				t.Errorf("Touch moved %d deadlines, want 1", n)
			}
			time.Sleep(150 * time.Millisecond)
			exp, err := gs.Expire(ctx, 10)
			must(t, err)
			if len(exp) != 1 || exp[0].ID != left.ID || !exp[0].ExpiresAt.Equal(left.ExpiresAt) {
				t.Fatalf("Expire = %v, want only %s with its deadline", ids(exp), left.ID)
			}
			for _, id := range []string{refreshed.ID, touched.ID, long.ID} {
				if _, err := gs.Get(ctx, id); err != nil {
					t.Errorf("session %s: %v, want it open", id, err)
				}
			}
			wantErr(t, second(gs.Get(ctx, left.ID)), presence.ErrGameSessionNotFound)
			wantErr(t, second(gs.Close(ctx, left.ID)), presence.ErrGameSessionNotFound)
			create(t, gs, newGame(other, "l", "EUR", "l-"+other), time.Hour) // triple and external id are free
		})
	})
}

func second[T any](_ T, err error) error { return err }

func ids(s []*presence.GameSession) []string {
	out := make([]string, len(s))
	for i, g := range s {
		out[i] = g.ID
	}
	return out
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestRedisGamesStaleIndex: if a session's record disappears behind the store's back (a Redis
// evicting keys), its leftover index entries do not block a new session for the triple or the
// external id.
func TestRedisGamesStaleIndex(t *testing.T) {
	srv := redisproc.ForTest(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	gs, ctx, u := presence.NewRedisGames(client, "stale:"), context.Background(), uuid.NewString()
	a := create(t, gs, newGame(u, "g", "EUR", "x-"+u), time.Hour)
	if err := client.Del(ctx, "stale:{games}:s:"+a.ID).Err(); err != nil {
		t.Fatal(err)
	}
	b := create(t, gs, newGame(u, "g", "EUR", "x-"+u), time.Hour)
	if b.ID == a.ID {
		t.Fatal("the lost session came back")
	}
	if got, err := gs.GetByExternalID(ctx, "x-"+u); err != nil || got.ID != b.ID {
		t.Fatalf("external id links %v (%v), want %s", got, err, b.ID)
	}
}
