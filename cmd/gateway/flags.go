package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/gateway"
)

// Default secrets, the same as Nakama's so that its SDK samples work out of the box. A node
// running with any of them warns at start: they are public.
const (
	defaultServerKey            = "defaultkey"
	defaultHTTPKey              = "defaulthttpkey"
	defaultEncryptionKey        = "defaultencryptionkey"
	defaultRefreshEncryptionKey = "defaultrefreshencryptionkey"
)

// options is everything the command line sets: the node's Config plus process concerns.
type options struct {
	cfg         gateway.Config
	metricsAddr string
	redisPrefix string
	corsOrigins string
	logLevel    string
	logFormat   string
	console     bool
}

// envName is the environment variable that sets a flag: SESSIONGATE_ + upper snake case.
func envName(flagName string) string {
	return "SESSIONGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions reads flags, then fills every flag not given on the command line from its
// environment variable. Flags win over the environment, which wins over the default. A variable
// that is set but empty counts (SESSIONGATE_METRICS_ADDR= disables metrics, as the flag does).
func parseOptions(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", ":7350", "API listen address (HTTP and WebSocket)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", ":9100", "Prometheus /metrics listen address; empty disables")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's id in the cluster; generated when empty")
	fs.StringVar(&c.ServerKey, "server-key", defaultServerKey, "key clients send as Basic auth to authenticate")
	fs.StringVar(&c.HTTPKey, "http-key", defaultHTTPKey, "key for the server-to-server API and the before-auth hook")
	fs.StringVar(&c.Auth.EncryptionKey, "encryption-key", defaultEncryptionKey, "HS256 key for session tokens")
	fs.StringVar(&c.Auth.RefreshEncryptionKey, "refresh-encryption-key", defaultRefreshEncryptionKey, "HS256 key for refresh tokens; must differ from --encryption-key")
	fs.DurationVar(&c.Auth.TokenExpiry, "token-expiry", 60*time.Second, "session token lifetime")
	fs.DurationVar(&c.Auth.RefreshTokenExpiry, "refresh-token-expiry", time.Hour, "refresh token lifetime")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL (redis://, rediss://, redis-sentinel://, redis-cluster://); empty runs the embedded single node with in-memory stores")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "sessiongate:", "prefix of every Redis key and channel")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "json", "json or console")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file; with --tls-key serves the API over TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file")
	fs.StringVar(&o.corsOrigins, "cors-origins", "*", "comma-separated origins allowed by CORS; * allows any")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", 262144, "largest accepted request body")
	fs.BoolVar(&c.TrustForwardedFor, "trust-forwarded-for", false, "take the client IP from X-Forwarded-For (only behind a proxy that sets it)")
	fs.StringVar(&c.Auth.BeforeAuthURL, "before-auth-url", "", "URL POSTed before each authentication; it may reject or add vars and a username")
	fs.DurationVar(&c.Auth.BeforeAuthTimeout, "before-auth-timeout", 2*time.Second, "timeout of each before-auth call")
	fs.DurationVar(&c.Auth.LoginWindow, "login-window", time.Minute, "window over which failed password logins are counted")
	fs.IntVar(&c.Auth.LoginFailuresPerAccount, "login-failures-per-account", 5, "failed password logins per account per window before 429; -1 disables")
	fs.IntVar(&c.Auth.LoginFailuresPerIP, "login-failures-per-ip", 20, "failed password logins per client IP per window before 429; -1 disables")
	fs.IntVar(&c.Auth.BcryptCost, "bcrypt-cost", 10, "bcrypt cost of password hashes")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on graceful shutdown")
	fs.DurationVar(&c.RequestReadTimeout, "request-read-timeout", 30*time.Second, "bound on reading an HTTP request (headers and body); not on upgraded sockets")
	fs.DurationVar(&c.DrainPeriod, "drain-period", 10*time.Second, "on shutdown, close the live sockets (1001) spread over this period before stopping")
	fs.IntVar(&c.HubShards, "hub-shards", 0, "shards of the socket hub: a power of two, or 0 to size from GOMAXPROCS")
	fs.Int64Var(&c.MaxMessageSize, "max-message-size", 4096, "largest socket message a client may send, in bytes; larger closes with 1009")
	fs.IntVar(&c.OutgoingQueueSize, "outgoing-queue-size", 64, "messages queued per socket before it is closed as a slow consumer (4008)")
	fs.DurationVar(&c.WriteWait, "write-wait", 5*time.Second, "deadline of each socket write and of a socket's whole close")
	fs.DurationVar(&c.PingPeriod, "ping-period", 15*time.Second, "silence after which the server pings a socket")
	fs.DurationVar(&c.PongWait, "pong-wait", 25*time.Second, "silence after which a socket is closed (4002); must exceed --ping-period")
	fs.DurationVar(&c.GameSessionTTL, "game-session-ttl", 4*time.Hour, "a game session without play for this long closes by itself")
	fs.IntVar(&c.GameSessionDataMaxBytes, "game-session-data-max-bytes", 65536, "largest game session data, in bytes of compacted JSON (a write body is also bound by --max-request-bytes)")
	fs.IntVar(&c.GameSessionsPerUser, "game-sessions-per-user", 100, "most game sessions one user may hold open at once; a create beyond it gets 429")
	fs.DurationVar(&c.PlaySessionTimeout, "play-session-timeout", 10*time.Second, "a play session ends this long after its last heartbeat")
	fs.DurationVar(&c.NodeTTL, "node-ttl", 15*time.Second, "a node silent this long is dropped from the cluster and its presences removed everywhere; heartbeats every ttl/4")
	fs.DurationVar(&c.ClusterTimeout, "cluster-timeout", 2*time.Second, "how long a cross-node request (server API) waits for each node before failing with 503")
	fs.BoolVar(&c.SingleSocket, "single-socket", false, "a user's new socket closes that user's older sockets (notification -7, then close 4001)")
	fs.BoolVar(&o.console, "console", true, "serve the operator's console at /console on the API address")
	fs.StringVar(&c.ConsoleUsername, "console-username", "admin", "the console operator's login name")
	fs.StringVar(&c.ConsolePassword, "console-password", "", "the console operator's password; empty generates one, printed once at start")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || envErr != nil {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid %s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	c.MetricsAddr = o.metricsAddr
	c.CORSOrigins = nil
	for _, origin := range strings.Split(o.corsOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			c.CORSOrigins = append(c.CORSOrigins, origin)
		}
	}
	return o, nil
}

// defaultSecrets names the settings still at their public defaults.
func (o *options) defaultSecrets() []string {
	var names []string
	if o.cfg.ServerKey == defaultServerKey {
		names = append(names, "server-key")
	}
	if o.cfg.HTTPKey == defaultHTTPKey {
		names = append(names, "http-key")
	}
	if o.cfg.Auth.EncryptionKey == defaultEncryptionKey {
		names = append(names, "encryption-key")
	}
	if o.cfg.Auth.RefreshEncryptionKey == defaultRefreshEncryptionKey {
		names = append(names, "refresh-encryption-key")
	}
	return names
}
