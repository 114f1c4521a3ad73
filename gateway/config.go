package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/sessiongate/sessiongate/auth"
)

// Config is the whole of a node's configuration. cmd/gateway fills it from flags and
// SESSIONGATE_* environment variables; zero values take the defaults listed per field.
type Config struct {
	// Addr is the API listen address (HTTP and, later, WebSocket). Default ":7350".
	Addr string
	// MetricsAddr is the Prometheus listen address; "" disables it. Default ":9100" (set by cmd).
	MetricsAddr string
	// NodeID names this node in the cluster. Default: generated (cmd makes "<hostname>-<8 hex>",
	// New "node-<8 hex>" when still empty).
	NodeID string
	// ServerKey is the key clients send as Basic auth to authenticate. Default "defaultkey".
	ServerKey string
	// HTTPKey authenticates the server-to-server API and is sent to the before-auth hook.
	// Default "defaulthttpkey".
	HTTPKey string
	// CORSOrigins lists origins allowed to call the API from a browser; "*" allows any.
	// Default ["*"], as Nakama.
	CORSOrigins []string
	// MaxRequestBytes caps a request body. Default 262144, as Nakama.
	MaxRequestBytes int64
	// TrustForwardedFor takes the client IP from X-Forwarded-For (last hop) for rate limiting.
	// Enable only behind a proxy that sets it, or clients can pick their own IP. Default false.
	TrustForwardedFor bool
	// TLSCert and TLSKey, both set, serve the API over TLS.
	TLSCert, TLSKey string
	// RequestReadTimeout bounds the reading of an HTTP request, headers and body, from its
	// first byte. A client that vanished mid-request (no FIN, no RST) is dropped then: the API
	// listener has no TCP keepalive (Listen). It does not apply to a socket once upgraded.
	// Default 30s.
	RequestReadTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown of the HTTP servers and the last socket
	// closes, after DrainPeriod: a stop takes at most DrainPeriod + ShutdownTimeout. Default 10s.
	ShutdownTimeout time.Duration
	// DrainPeriod is how long a stopping node spends closing its live sockets (with 1001, in
	// even batches over the period, so clients reconnect elsewhere gradually) before it shuts
	// down its HTTP servers; see drain.go. Default 10s.
	DrainPeriod time.Duration
	// RedisURL, when set, makes the node use Redis stores (cluster mode); empty is the embedded
	// single-node mode with in-memory stores.
	RedisURL string
	// Auth holds the token and login settings.
	Auth auth.Config

	// Realtime socket (GET /ws); see socket.go.

	// HubShards is the number of shards of the socket hub: 0 (default, sized from GOMAXPROCS by
	// hub.DefaultShards) or a power of two up to hub.MaxShards.
	HubShards int
	// MaxMessageSize is the largest message a client may send on a socket, in bytes; a larger
	// one closes the socket with 1009. Default 4096, as Nakama.
	MaxMessageSize int64
	// OutgoingQueueSize bounds the messages waiting to be written to one socket; a send that
	// would exceed it closes the socket as a slow consumer (4008). Default 64.
	OutgoingQueueSize int
	// WriteWait bounds each write to a socket, and the whole close of a socket (flush, close
	// frame and handshake) after which the connection is dropped. Default 5s.
	WriteWait time.Duration
	// PingPeriod is how long a socket may stay silent before the server sends it a WebSocket
	// ping. Default 15s.
	PingPeriod time.Duration
	// PongWait is how long a socket may stay silent (no pong, ping or message) before it is
	// closed with 4002. Must exceed PingPeriod. Default 25s.
	PongWait time.Duration
	// NodeTTL is how long a silent node stays in the cluster: nodes heartbeat every NodeTTL/4
	// and one that missed three heartbeats (NodeTTL*3/4) is expired at the next sweep, so a
	// dead node's presences are gone from every node within NodeTTL. Default 15s.
	NodeTTL time.Duration
	// ClusterTimeout bounds how long a cross-node request (server API disconnects, session
	// lists, notifications) waits for each node's answer; a node silent past it fails the
	// call with 503 code 14 naming it. Default 2s.
	ClusterTimeout time.Duration
	// SingleSocket makes a user's new socket close that user's older ones (notification code -7
	// "single_socket", then close 4001), as Nakama's session.single_socket. Default false.
	SingleSocket bool

	// Play sessions: game sessions (api_game.go) and exclusive play sessions (api_play.go).

	// GameSessionTTL is how long a game session lives without play (a refresh, a data write,
	// or a live socket of its user) before it closes by itself. Default 4h.
	GameSessionTTL time.Duration
	// GameSessionDataMaxBytes caps a game session's data, in bytes of compacted JSON. The body
	// of a write is also bound by MaxRequestBytes, so the smaller of the two holds. Default 65536.
	GameSessionDataMaxBytes int
	// GameSessionsPerUser bounds the game sessions one user may hold open at once (a create
	// beyond it is refused with 429 code 8), so that no client can fill the store. Default 100.
	GameSessionsPerUser int
	// PlaySessionTimeout is how long a play session lives after its last heartbeat (an HTTP
	// heartbeat, or a live socket of its user). Default 10s.
	PlaySessionTimeout time.Duration
	// Console (GET /console); see console.go.

	// ConsoleUsername is the operator's login name on the console. Default "admin".
	ConsoleUsername string
	// ConsolePassword is the operator's console password, at least 8 bytes; empty disables the
	// console (its routes answer 404). cmd/gateway generates one and prints it once when none is set.
	ConsolePassword string
}

// minConsolePassword is the shortest console password a node accepts.
const minConsolePassword = 8

// Defaults returns c with every zero field set to its documented default.
func (c Config) Defaults() Config {
	if c.Addr == "" {
		c.Addr = ":7350"
	}
	if c.ServerKey == "" {
		c.ServerKey = "defaultkey"
	}
	if c.HTTPKey == "" {
		c.HTTPKey = "defaulthttpkey"
	}
	if c.Auth.BeforeAuthKey == "" {
		// The hook authenticates the gateway's calls by the HTTP key, as documented on HTTPKey.
		c.Auth.BeforeAuthKey = c.HTTPKey
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 262144
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RequestReadTimeout == 0 {
		c.RequestReadTimeout = 30 * time.Second
	}
	if c.DrainPeriod == 0 {
		c.DrainPeriod = 10 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 4096
	}
	if c.OutgoingQueueSize == 0 {
		c.OutgoingQueueSize = 64
	}
	if c.WriteWait == 0 {
		c.WriteWait = 5 * time.Second
	}
	if c.PingPeriod == 0 {
		c.PingPeriod = 15 * time.Second
	}
	if c.PongWait == 0 {
		c.PongWait = 25 * time.Second
	}
	if c.GameSessionTTL == 0 {
		c.GameSessionTTL = 4 * time.Hour
	}
	if c.GameSessionDataMaxBytes == 0 {
		c.GameSessionDataMaxBytes = 65536
	}
	if c.GameSessionsPerUser == 0 {
		c.GameSessionsPerUser = 100
	}
	if c.PlaySessionTimeout == 0 {
		c.PlaySessionTimeout = 10 * time.Second
	}
	if c.NodeTTL == 0 {
		c.NodeTTL = 15 * time.Second
	}
	if c.ClusterTimeout == 0 {
		c.ClusterTimeout = 2 * time.Second
	}
	if c.ConsoleUsername == "" {
		c.ConsoleUsername = "admin"
	}
	c.Auth = c.Auth.Defaults()
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxRequestBytes < 0:
		return errors.New("max request bytes must not be negative")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("TLS needs both a certificate and a key")
	case c.DrainPeriod < 0:
		return errors.New("drain period must not be negative")
	case c.NodeTTL < 40*time.Millisecond:
		return fmt.Errorf("node TTL must be at least 40ms, got %v", c.NodeTTL)
	case c.ClusterTimeout < 0:
		return errors.New("cluster timeout must not be negative")
	case c.ConsolePassword != "" && len(c.ConsolePassword) < minConsolePassword:
		return fmt.Errorf("console password must be at least %d bytes", minConsolePassword)
	}
	if err := c.validateSocket(); err != nil {
		return err
	}
	if err := c.validatePlay(); err != nil {
		return err
	}
	if err := c.Auth.Validate(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}
