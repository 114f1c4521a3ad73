package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/presence"
)

// Stores are the storage implementations a node runs on: the in-memory ones for the embedded
// single-node mode, or the Redis ones for a cluster.
type Stores struct {
	Accounts    auth.AccountStore
	Revocations auth.RevocationStore
	// Play and Games hold the play sessions and game sessions; nil selects the in-memory
	// stores (embedded mode).
	Play  presence.PlaySessions
	Games presence.GameSessions
	// Cluster joins the node to a cluster (RedisStores sets it); nil runs the embedded single
	// node on an in-process bus and registry (cluster.go).
	Cluster *ClusterStores
}

// Server is one gateway node: the API handler, its metrics and the auth service behind it.
type Server struct {
	cfg                            Config
	log                            zerolog.Logger
	auth                           *auth.Service
	metrics                        *Metrics
	routes                         *routeTable
	notFound, badMethod, preflight *routeMetrics

	anyOrigin bool
	origins   map[string]bool

	rt *realtime // the realtime socket: hub, heartbeats, drain (socket.go)

	play    *playSessions // play and game sessions (api_play.go, api_game.go)
	cluster *cluster      // the bus, the node registry, cross-node ops (cluster.go)

	redis *redisHealth // nil in embedded mode (redis_health.go)

	console *console // nil when disabled (console.go)
}

// New builds a node from cfg (defaulted and validated) over stores.
func New(cfg Config, log zerolog.Logger, stores Stores) (*Server, error) {
	cfg = cfg.Defaults()
	if cfg.NodeID == "" {
		cfg.NodeID = newNodeID()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	if stores.Accounts == nil || stores.Revocations == nil {
		return nil, errors.New("both stores are required")
	}
	m := NewMetrics()
	svc, err := auth.NewService(cfg.Auth, stores.Accounts, stores.Revocations, auth.WithOutcomeObserver(m.AuthOutcome))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, auth: svc, metrics: m, origins: make(map[string]bool)}
	if s.rt, err = newRealtime(cfg, m, log); err != nil {
		return nil, err
	}
	s.play = newPlaySessions(s, stores, m)
	newCluster(s, stores.Cluster)
	if stores.Cluster != nil {
		s.redis = newRedisHealth(stores.Accounts.Ping)
		m.Registry.MustRegister(s.redis)
	}
	s.registerStatsOp()
	s.console = newConsole(cfg)
	if s.console != nil && stores.Cluster != nil && stores.Cluster.ConsoleSessions != nil {
		s.console.sessions = stores.Cluster.ConsoleSessions
	}
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			s.anyOrigin = true
		}
		s.origins[strings.TrimSuffix(o, "/")] = true
	}
	s.routes = s.buildRoutes()
	s.notFound = m.forRoute("unmatched")
	s.badMethod = m.forRoute("bad_method")
	s.preflight = m.forRoute("preflight")
	return s, nil
}

// Auth returns the node's auth service.
func (s *Server) Auth() *auth.Service { return s.auth }

// Metrics returns the node's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Config returns the node's effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Run serves the API on apiLn and, when metricsLn is not nil, metrics on metricsLn, and runs
// the node's background work, until ctx ends; then it shuts the servers down gracefully
// (bounded by ShutdownTimeout) and returns once everything it started has stopped.
func (s *Server) Run(ctx context.Context, apiLn, metricsLn net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	heartbeats := make(chan struct{})
	go func() {
		defer close(heartbeats)
		s.runHeartbeats(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runMemoryRelease(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.play.run(ctx) // expiry and socket liveness of play sessions (api_play_sweep.go)
	}()
	// The auth service (revocation sync) keeps running through the drain, while the API serves.
	authCtx, stopAuth := context.WithCancel(context.Background())
	defer stopAuth()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.auth.Run(authCtx); err != nil {
			errs <- fmt.Errorf("auth service: %w", err)
			cancel()
		}
	}()

	// The cluster (bus, heartbeats) keeps running through the drain too: disconnects sent to
	// this node must still reach its sockets while they close.
	clusterCtx, stopCluster := context.WithCancel(context.Background())
	defer stopCluster()
	s.cluster.start(clusterCtx, apiLn.Addr().String())
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.cluster.run(clusterCtx)
	}()

	servers := []*http.Server{s.httpServer(s, apiLn)}
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", s.metrics.Handler())
		servers = append(servers, s.httpServer(mux, metricsLn))
	}
	tls := s.cfg.TLSCert != ""
	apiServed := apiLn
	if !tls {
		// Socket upgrades are read and served without net/http's connection (upgrade.go).
		apiServed = newUpgradeListener(apiLn, s, s.log, servers[0].ReadHeaderTimeout)
	}
	for i, srv := range servers {
		ln := apiServed
		if i == 1 {
			ln = metricsLn
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if tls && i == 0 {
				err = srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
				cancel()
			}
		}()
	}
	s.log.Info().Str("addr", apiLn.Addr().String()).Bool("tls", tls).Msg("api listening")

	<-ctx.Done()
	// Graceful drain (drain.go): refuse new sockets and turn /readyz red, close the live
	// sockets spread over DrainPeriod, then shut the HTTP servers down and wait for the sockets,
	// both bounded by ShutdownTimeout.
	socketsDone := s.beginDrain()
	servers[0].SetKeepAlivesEnabled(false) // API clients reconnect (to another node) after this response
	s.closeSpread(socketsDone)
	shutdownCtx, stop := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer stop()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			s.log.Warn().Err(err).Msg("graceful shutdown cut short")
			_ = srv.Close()
		}
	}
	s.finishDrain(shutdownCtx, socketsDone)
	stopCluster()
	stopAuth()
	<-heartbeats
	s.rt.pings.Wait()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Listen opens the API listener as cmd/gateway does. Its connections have no TCP keepalive,
// which would cost four setsockopt calls per accepted connection: a socket's heartbeats find a
// dead peer (--pong-wait), an HTTP request must be read within RequestReadTimeout and an idle
// HTTP connection ends at the server's idle timeout.
func Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) httpServer(h http.Handler, ln net.Listener) *http.Server {
	return &http.Server{
		Handler: h,
		// No WriteTimeout: it would stay armed on upgraded sockets. ReadTimeout's deadline is
		// cleared when a socket is upgraded (hijackCapture). Header, read and idle timeouts
		// bound slow, vanished or idle HTTP clients.
		ReadTimeout:       s.cfg.RequestReadTimeout,
		ReadHeaderTimeout: min(5*time.Second, s.cfg.RequestReadTimeout),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          newStdLogger(s.log, ln.Addr().String()),
	}
}
