package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/hub"
)

// WebSocket close codes the gateway sends. Every close cause has one code, used everywhere; the
// README's close code table lists them.
const (
	// CloseShutdown: the node is shutting down (standard "going away").
	CloseShutdown = 1001
	// CloseMessageTooBig: a client message exceeded Config.MaxMessageSize.
	CloseMessageTooBig = 1009
	// CloseInternalError: the node could not set the socket up.
	CloseInternalError = 1011
	// CloseDisconnected: server-side disconnect (server-to-server API; later issues).
	CloseDisconnected = 4000
	// CloseReplaced: single-socket mode replaced this socket with a newer one (later issue).
	CloseReplaced = 4001
	// CloseHeartbeatTimeout: no pong, ping or message within Config.PongWait.
	CloseHeartbeatTimeout = 4002
	// CloseProtocolError: malformed JSON, an envelope without a message, a message type the
	// gateway does not handle, or a binary frame on a json socket. An error envelope precedes it.
	CloseProtocolError = 4003
	// CloseSlowConsumer: the socket's outgoing queue (Config.OutgoingQueueSize) overflowed.
	CloseSlowConsumer = 4008
)

// Close reasons sent with the codes above.
const (
	reasonShutdown     = "server shutting down"
	reasonTooBig       = "message too big"
	reasonHeartbeat    = "heartbeat timeout"
	reasonSlowConsumer = "slow consumer"
	reasonMalformed    = "malformed message"
	reasonMissing      = "missing message"
	reasonUnrecognized = "unrecognized message"
	reasonBinary       = "binary message on a json socket"
)

// validateSocket checks the realtime settings of the config.
func (c Config) validateSocket() error {
	switch {
	case c.HubShards < 0 || c.HubShards > hub.MaxShards || c.HubShards&(c.HubShards-1) != 0:
		return fmt.Errorf("hub shards must be 0 (automatic) or a power of two up to %d, got %d", hub.MaxShards, c.HubShards)
	case c.MaxMessageSize < 0:
		return errors.New("max message size must not be negative")
	case c.OutgoingQueueSize < 0:
		return errors.New("outgoing queue size must not be negative")
	case c.WriteWait < 0:
		return errors.New("write wait must not be negative")
	case c.PingPeriod < 0:
		return errors.New("ping period must not be negative")
	case c.PongWait <= c.PingPeriod:
		return fmt.Errorf("pong wait (%v) must exceed the ping period (%v)", c.PongWait, c.PingPeriod)
	}
	return nil
}

// realtime is the socket half of a Server: the hub of live sockets and what it takes to shut
// them down cleanly.
type realtime struct {
	hub     *hub.Hub
	metrics *socketMetrics
	epoch   time.Time // lastSeen times are monotonic nanoseconds since epoch

	// mu orders sockets.Add against draining, so that Wait never races an Add from zero.
	mu       sync.Mutex
	draining atomic.Bool
	sockets  sync.WaitGroup // one per socket from upgrade until it has unregistered

	// Heartbeat pings: at most cap(pingSem) in flight (see heartbeat.go).
	pingSem chan struct{}
	pings   sync.WaitGroup

	acceptAny      bool
	originPatterns []string
}

func newRealtime(cfg Config, m *Metrics) (*realtime, error) {
	h, err := hub.New(hub.Config{Shards: cfg.HubShards})
	if err != nil {
		return nil, err
	}
	rt := &realtime{
		hub:     h,
		epoch:   time.Now(),
		pingSem: make(chan struct{}, maxPingsInFlight),
	}
	rt.metrics = newSocketMetrics(m.Registry, h)
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			rt.acceptAny = true
			continue
		}
		// Patterns with a scheme are matched by coder/websocket against scheme://host.
		rt.originPatterns = append(rt.originPatterns, strings.TrimSuffix(o, "/"))
	}
	return rt, nil
}

// now is the monotonic clock the heartbeats run on.
func (rt *realtime) now() int64 { return int64(time.Since(rt.epoch)) }

// Hub returns the node's registry of live sockets.
func (s *Server) Hub() *hub.Hub { return s.rt.hub }

// handleSocket is GET /ws: Nakama's realtime socket. Everything that can be refused is refused
// with an HTTP error before the upgrade, so a client never gets a socket it cannot use.
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	if s.rt.draining.Load() {
		s.writeError(w, r, errorf(auth.CodeUnavailable, "Server is shutting down."))
		return
	}
	q := r.URL.Query()
	switch q.Get("format") {
	case "", "json":
	case "protobuf":
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid format parameter: protobuf is not supported yet, use format=json."))
		return
	default:
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid format parameter, expected json."))
		return
	}
	status := false
	if v := q.Get("status"); v != "" {
		var err error
		if status, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid status parameter, expected true or false."))
			return
		}
	}
	token := q.Get("token")
	if token == "" {
		if h := r.Header.Get("Authorization"); h != "" {
			const prefix = "Bearer "
			if !strings.HasPrefix(h, prefix) {
				s.writeError(w, r, errorf(auth.CodeUnauthenticated, "Auth token invalid"))
				return
			}
			token = h[len(prefix):]
		}
	}
	if token == "" {
		s.writeError(w, r, errorf(auth.CodeUnauthenticated, "Auth token required"))
		return
	}
	claims, err := s.auth.VerifySession(token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "WebSocket upgrade required."))
		return
	}

	// Reserve the socket's place in the shutdown wait before the upgrade.
	s.rt.mu.Lock()
	if s.rt.draining.Load() {
		s.rt.mu.Unlock()
		s.writeError(w, r, errorf(auth.CodeUnavailable, "Server is shutting down."))
		return
	}
	s.rt.sockets.Add(1)
	s.rt.mu.Unlock()

	c := &socketConn{
		s:        s,
		id:       uuid.NewString(),
		userID:   claims.UserID,
		username: claims.Username,
		status:   status,
		done:     make(chan struct{}),
	}
	hw := &hijackCapture{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: s.rt.acceptAny,
		OriginPatterns:     s.rt.originPatterns,
		OnPingReceived:     c.onPing,
		OnPongReceived:     c.onPong,
	})
	if err != nil {
		// Accept has answered the request (426 for a non-WebSocket request, 403 for an origin).
		s.rt.sockets.Done()
		s.log.Debug().Err(err).Msg("websocket upgrade refused")
		return
	}
	ws.SetReadLimit(s.cfg.MaxMessageSize)
	c.ws, c.nc = ws, hw.nc
	c.touch()
	if err := s.rt.hub.Register(c); err != nil {
		s.log.Error().Err(err).Msg("registering socket")
		_ = ws.Close(CloseInternalError, "internal error")
		s.rt.sockets.Done()
		return
	}
	s.rt.metrics.connects.Inc()
	s.log.Debug().Str("session_id", c.id).Str("user_id", c.userID).Msg("socket connected")
	go c.readLoop()
	// Shutdown sets draining before it closes the registered sockets: either it saw this one
	// or this check sees draining.
	if s.rt.draining.Load() {
		c.Close(CloseShutdown, reasonShutdown)
	}
}

// headerHasToken reports whether the comma-separated header name contains token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// hijackCapture remembers the connection coder/websocket hijacks, so that a socket whose close
// handshake stalls can be dropped at the TCP level.
type hijackCapture struct {
	http.ResponseWriter
	nc net.Conn
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.nc = nc
	return nc, brw, err
}

func (h *hijackCapture) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// NotifyUser pushes notifications to every socket of the user on this node, as Nakama's
// {"notifications":{"notifications":[...]}} envelope, and returns how many sockets queued it.
func (s *Server) NotifyUser(userID string, notifications ...*api.Notification) (int, error) {
	msg, err := marshalJSON.Marshal(&rtapi.Envelope{Message: &rtapi.Envelope_Notifications{
		Notifications: &rtapi.Notifications{Notifications: notifications},
	}})
	if err != nil {
		return 0, err
	}
	return s.rt.hub.SendToUser(userID, msg), nil
}

// drainSockets stops new sockets, closes every live one with 1001 and waits until all have
// unregistered; when ctx ends first it drops the remaining connections and waits for them.
func (s *Server) drainSockets(ctx context.Context) {
	s.rt.mu.Lock()
	s.rt.draining.Store(true)
	s.rt.mu.Unlock()
	s.rt.hub.Range(func(c hub.Conn) bool {
		c.Close(CloseShutdown, reasonShutdown)
		return true
	})
	done := make(chan struct{})
	go func() {
		s.rt.sockets.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn().Int("sockets", s.rt.hub.Len()).Msg("sockets did not close in time; dropping them")
		s.rt.hub.Range(func(c hub.Conn) bool {
			c.(*socketConn).drop()
			return true
		})
		<-done
	}
}
