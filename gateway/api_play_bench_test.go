package gateway

import (
	"context"
	"io"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/presence"
)

// Benchmarks of play and game sessions: throughput of the HTTP handlers without the network
// (routing, token check, JSON, the store; on Redis one script round trip over loopback per
// request), and how late sessions expire with 100,000 of them active. BENCHMARKS.md quotes
// them.

// benchParallelism × GOMAXPROCS requests are in flight at once, as many clients would keep
// them; with one per core the Redis figures would measure round-trip latency alone.
const benchParallelism = 16

// benchBackends are the stores the benchmarks run on.
var benchBackends = []string{"memory", "redis"}

// benchStores returns the stores of backend; Redis ones on a redis-server of b's own.
func benchStores(b *testing.B, backend string) Stores {
	b.Helper()
	if backend == "memory" {
		return Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()}
	}
	srv := redisproc.ForTest(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64})
	b.Cleanup(func() { client.Close() })
	return Stores{Accounts: auth.NewRedisAccounts(client, ""), Revocations: auth.NewRedisRevocations(client, ""),
		Play: presence.NewRedisPlay(client, ""), Games: presence.NewRedisGames(client, "")}
}

// benchNode is a node over backend with users signed-in users; it is not Run (the handlers
// need nothing of Run), except where a benchmark starts the play sessions' loop itself.
func benchNode(b *testing.B, backend string, users int) (*Server, []string) {
	b.Helper()
	// No per-user cap on game sessions: the create benchmark opens b.N of them for 1,024 users.
	s, err := New(Config{HTTPKey: "bench-http-key", GameSessionsPerUser: 1 << 30, Auth: auth.Config{EncryptionKey: "bench-key", RefreshEncryptionKey: "bench-refresh-key", BcryptCost: 4, TokenExpiry: time.Hour}},
		zerolog.Nop(), benchStores(b, backend))
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, users)
	for i := range tokens {
		sess, err := s.auth.Authenticate(context.Background(), auth.AuthRequest{Provider: auth.ProviderDevice, ID: "bench-device-" + strconv.Itoa(100000+i), Create: true})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = sess.Token
	}
	return s, tokens
}

// serve runs one request through the handler and returns the status and body.
func serve(s *Server, method, path, body string, headers ...string) (int, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	out, _ := io.ReadAll(w.Body)
	return w.Code, string(out)
}

func playBody(token string) string { return `{"auth_token":"` + token + `"}` }

// BenchmarkPlaySessions: heartbeat is one POST /api/games/sessions/heartbeat of an active
// session (the steady load: every player every 9s); cycle is initiate + heartbeat + end
// (three requests per op).
func BenchmarkPlaySessions(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend+"/heartbeat", func(b *testing.B) {
			s, tokens := benchNode(b, backend, 1024)
			for _, tok := range tokens {
				if code, body := serve(s, "POST", "/api/games/sessions/initiate", playBody(tok)); code != 200 {
					b.Fatalf("initiate: %d %s", code, body)
				}
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tok := tokens[next.Add(1)%int64(len(tokens))]
					if code, body := serve(s, "POST", "/api/games/sessions/heartbeat", playBody(tok)); code != 200 {
						b.Errorf("heartbeat: %d %s", code, body)
						return
					}
				}
			})
		})
		b.Run(backend+"/cycle", func(b *testing.B) {
			s, tokens := benchNode(b, backend, 256*benchParallelism/16)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				tok := tokens[next.Add(1)-1] // one user per goroutine: no ALREADY_IN_GAME
				for pb.Next() {
					for _, op := range []string{"initiate", "heartbeat", "end"} {
						if code, body := serve(s, "POST", "/api/games/sessions/"+op, playBody(tok)); code != 200 {
							b.Errorf("%s: %d %s", op, code, body)
							return
						}
					}
				}
			})
		})
	}
}

// BenchmarkGameSessions: create is one POST /v2/game-sessions opening a new session; write is
// one PUT /v2/server/game-sessions/{id}/data of ~150 bytes with the right version.
func BenchmarkGameSessions(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend+"/create", func(b *testing.B) {
			s, tokens := benchNode(b, backend, 1024)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := next.Add(1)
					tok := tokens[n%int64(len(tokens))]
					id := strconv.FormatInt(n, 10)
					body := `{"game_id":"slots-` + id + `","currency":"EUR","external_session_id":"ext-` + id + `"}`
					if code, out := serve(s, "POST", "/v2/game-sessions", body, "Authorization", "Bearer "+tok); code != 200 {
						b.Errorf("create: %d %s", code, out)
						return
					}
				}
			})
		})
		b.Run(backend+"/write", func(b *testing.B) {
			s, _ := benchNode(b, backend, 0)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n := next.Add(1) - 1
				gs, _, err := s.play.games.Create(context.Background(), presence.NewGameSession{UserID: strconv.FormatInt(n, 10),
					GameID: "slots", Currency: "EUR", ExternalID: "w-" + strconv.FormatInt(n, 10)}, time.Hour)
				if err != nil {
					b.Error(err)
					return
				}
				path := "/v2/server/game-sessions/" + gs.ID + "/data"
				for v := int64(1); pb.Next(); v++ {
					body := `{"version":` + strconv.FormatInt(v, 10) + `,"data":{"balance":` + strconv.FormatInt(100000-v, 10) +
						`,"currency":"EUR","bets":[{"round":` + strconv.FormatInt(v, 10) + `,"stake":5,"win":0}],"bonus":{"free_spins":3,"multiplier":2}}}`
					if code, out := serve(s, "PUT", path, body, "Authorization", "Bearer bench-http-key"); code != 200 {
						b.Errorf("write: %d %s", code, out)
						return
					}
				}
			})
		})
	}
}

// latenessRecorder wraps the stores' Expire to record, for every expired session, how long
// after its deadline the sweeper removed it.
type latenessRecorder struct {
	mu   sync.Mutex
	late []time.Duration
}

func (r *latenessRecorder) add(deadline time.Time) {
	d := time.Since(deadline)
	r.mu.Lock()
	r.late = append(r.late, d)
	r.mu.Unlock()
}

func (r *latenessRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.late)
}

type recordingPlay struct {
	presence.PlaySessions
	r *latenessRecorder
}

func (p recordingPlay) Expire(ctx context.Context, limit int) ([]presence.Expired, error) {
	due, err := p.PlaySessions.Expire(ctx, limit)
	for _, e := range due {
		p.r.add(e.Deadline)
	}
	return due, err
}

type recordingGames struct {
	presence.GameSessions
	r *latenessRecorder
}

func (g recordingGames) Expire(ctx context.Context, limit int) ([]*presence.GameSession, error) {
	due, err := g.GameSessions.Expire(ctx, limit)
	for _, gs := range due {
		g.r.add(gs.ExpiresAt)
	}
	return due, err
}

// BenchmarkExpiryLateness100k opens 100,000 sessions whose deadlines fall evenly over the
// 5 seconds starting 6 seconds after the start (20,000 expiries a second, all 100,000 active
// when the first is due), runs the node's expiry sweeper, and reports how late after its
// deadline each session was expired: p50, p99 and max in milliseconds. Run with -benchtime 1x.
func BenchmarkExpiryLateness100k(b *testing.B) {
	const (
		sessions = 100_000
		lead     = 6 * time.Second
		window   = 5 * time.Second
	)
	for _, backend := range benchBackends {
		for _, kind := range []string{kindPlay, kindGame} {
			b.Run(backend+"/"+kind, func(b *testing.B) {
				for range b.N {
					s, _ := benchNode(b, backend, 0)
					rec := &latenessRecorder{late: make([]time.Duration, 0, sessions)}
					s.play.play = recordingPlay{s.play.play, rec}
					s.play.games = recordingGames{s.play.games, rec}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { defer close(done); s.play.run(ctx) }()

					first := time.Now().Add(lead)
					var wg sync.WaitGroup
					var next atomic.Int64
					for range 32 {
						wg.Go(func() {
							for {
								i := next.Add(1) - 1
								if i >= sessions {
									return
								}
								ttl := time.Until(first.Add(time.Duration(i) * window / sessions))
								var err error
								if kind == kindPlay {
									err = s.play.play.Initiate(ctx, uuid.NewString(), ttl)
								} else {
									_, _, err = s.play.games.Create(ctx, presence.NewGameSession{UserID: uuid.NewString(), GameID: "g", Currency: "EUR", ExternalID: uuid.NewString()}, ttl)
								}
								if err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					if time.Now().After(first) {
						b.Fatalf("opening %d sessions took longer than %v", sessions, lead)
					}
					deadline := first.Add(window + 10*time.Second)
					for rec.count() < sessions && time.Now().Before(deadline) {
						time.Sleep(50 * time.Millisecond)
					}
					cancel()
					<-done
					late := rec.late
					if len(late) != sessions {
						b.Fatalf("%d of %d sessions expired", len(late), sessions)
					}
					slices.Sort(late)
					ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
					b.ReportMetric(ms(late[len(late)/2]), "p50-ms")
					b.ReportMetric(ms(late[len(late)*99/100]), "p99-ms")
					b.ReportMetric(ms(late[len(late)-1]), "max-ms")
				}
			})
		}
	}
}

// BenchmarkLivenessPass measures one pass of the live-socket extension with 100,000 sockets
// registered on the node (one user each, all seen recently), 10,000 of whom hold a play session
// and a game session: collecting the users from the hub, then extending their play sessions
// and their game sessions in batches. The sockets are registered in the hub directly (no
// network): the pass reads only what the hub and each socket's lastSeen hold.
func BenchmarkLivenessPass(b *testing.B) {
	const sockets, playing = 100_000, 10_000
	for _, backend := range benchBackends {
		b.Run(backend, func(b *testing.B) {
			s, _ := benchNode(b, backend, 0)
			ctx := context.Background()
			for i := range sockets {
				c := &socketConn{s: s, id: uuid.NewString(), userID: uuid.NewString()}
				c.touch()
				if err := s.rt.hub.Register(c); err != nil {
					b.Fatal(err)
				}
				if i < playing {
					if err := s.play.play.Initiate(ctx, c.userID, time.Hour); err != nil {
						b.Fatal(err)
					}
					if _, _, err := s.play.games.Create(ctx, presence.NewGameSession{UserID: c.userID, GameID: "g", Currency: "EUR", ExternalID: c.id}, time.Hour); err != nil {
						b.Fatal(err)
					}
				}
			}
			var users []string
			var collect, play, game time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				users = s.liveUsers(users[:0])
				if len(users) != sockets {
					b.Fatalf("%d live users, want %d", len(users), sockets)
				}
				t1 := time.Now()
				// Deadlines an hour out move to two hours out: every pass really moves them.
				n, err := s.play.play.Touch(ctx, users, 2*time.Hour)
				if err != nil || n != playing {
					b.Fatalf("play Touch = %d, %v; want %d", n, err, playing)
				}
				t2 := time.Now()
				n, err = s.play.games.Touch(ctx, users, 2*time.Hour)
				if err != nil || n != playing {
					b.Fatalf("game Touch = %d, %v; want %d", n, err, playing)
				}
				collect, play, game = collect+t1.Sub(t0), play+t2.Sub(t1), game+time.Since(t2)
			}
			per := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
			b.ReportMetric(per(collect), "collect-ms")
			b.ReportMetric(per(play), "play-ms")
			b.ReportMetric(per(game), "game-ms")
		})
	}
}
