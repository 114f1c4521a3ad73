package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"github.com/rs/zerolog"

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
	// CloseDisconnected: server-side disconnect (the server API, the console), on any node.
	CloseDisconnected = 4000
	// CloseReplaced: single-socket mode replaced this socket with a newer one, on any node.
	CloseReplaced = 4001
	// CloseHeartbeatTimeout: no pong, ping or message within Config.PongWait.
	CloseHeartbeatTimeout = 4002
	// CloseProtocolError: a malformed envelope, an envelope without a message, a message type
	// the gateway does not handle, a binary message on a json socket or a text message on a
	// protobuf socket. An error envelope precedes it.
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
	reasonText         = "text message on a protobuf socket"
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
	accepted atomic.Uint64  // sockets registered since start (socket_memory.go)

	// Heartbeat pings through coder/websocket (TLS, not Linux): at most cap(pingSem) in flight
	// (see heartbeat.go).
	pingSem chan struct{}
	pings   sync.WaitGroup

	status *statusPresence // status presence: follows, status events (status.go)
	log    zerolog.Logger

	acceptAny      bool
	originPatterns []string
}

func newRealtime(cfg Config, m *Metrics, log zerolog.Logger) (*realtime, error) {
	h, err := hub.New(hub.Config{Shards: cfg.HubShards})
	if err != nil {
		return nil, err
	}
	rt := &realtime{
		hub:     h,
		epoch:   time.Now(),
		pingSem: make(chan struct{}, maxPingsInFlight),
		log:     log,
	}
	rt.metrics = newSocketMetrics(m.Registry, h)
	rt.status = newStatusPresence(cfg.NodeID, rt)
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
		refuseDraining(w)
		return
	}
	q := r.URL.Query()
	format, ok := parseFormat(q.Get("format"))
	if !ok {
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Invalid format parameter, expected json or protobuf."))
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
		refuseDraining(w)
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
		format:   format,
		done:     make(chan struct{}),

		vars:        claims.Vars,
		connectedAt: time.Now().UnixNano(),
	}
	c.pollFn = c.pollInput
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
	hw.refill()
	c.ws, c.nc, c.br, c.in, c.rc = ws, hw.nc, hw.br, hw.in, hw.rc
	if c.rc != nil && rawHeartbeats {
		// Pongs the sweeper collects are dated by the kernel (collectPong).
		_ = c.rc.Control(func(fd uintptr) { enableRecvTimestamps(fd) })
	}
	c.touch()
	if err := s.registerSocket(c); err != nil { // closes older sockets with --single-socket
		s.log.Error().Err(err).Msg("registering socket")
		_ = ws.Close(CloseInternalError, "internal error")
		s.rt.sockets.Done()
		return
	}
	c.statusConnected()
	s.rt.metrics.connects.Inc()
	s.rt.accepted.Add(1)
	s.log.Debug().Str("session_id", c.id).Str("user_id", c.userID).Str("format", format.String()).Msg("socket connected")
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

// socketBufferSize is the size of each of an upgraded connection's two buffers. net/http's
// pair is 4 KiB each, per idle socket; client messages are small (a ping envelope is ~25 bytes),
// larger ones are read in several fills, and a write larger than the buffer bypasses it.
const socketBufferSize = 512

// hijackCapture hands coder/websocket the hijacked connection re-buffered with a
// socketBufferSize pair instead of net/http's 4 KiB pair, and remembers the connection, so that
// a socket whose close handshake stalls can be dropped at the TCP level.
type hijackCapture struct {
	http.ResponseWriter
	nc      net.Conn
	in      *inputConn      // nc as coder/websocket reads it; nil unless nc is a plain TCP connection
	rc      syscall.RawConn // nc's raw connection, with in; nil otherwise
	br      *bufio.Reader
	carried int // bytes carried over from net/http's reader
}

// refill buffers the carried bytes again once coder/websocket has reset the reader onto them,
// so that the read loop sees them buffered and does not wait for the connection
// (socket_idle.go). They are served from memory: nothing is read from nc.
func (h *hijackCapture) refill() {
	if h.carried > 0 {
		_, _ = h.br.Peek(min(h.carried, h.br.Size()))
	}
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	h.nc = nc
	// The server's RequestReadTimeout bounds the upgrade request, not the socket. net/http
	// clears its read deadline when it ends its background read, which it starts for requests
	// without a body; an upgrade request with a body would keep it.
	_ = nc.SetReadDeadline(time.Time{})
	// coder/websocket reads a plain TCP connection through inputConn, so that the heartbeat
	// sweeper can hand back bytes it read (socket_fastpath.go).
	var rd net.Conn = nc
	if sc, ok := nc.(syscall.Conn); ok { // a TCP connection; under TLS nc is a *tls.Conn
		if rc, err := sc.SyscallConn(); err == nil {
			h.rc, h.in = rc, &inputConn{Conn: nc}
			rd = h.in
		}
	}
	// Bytes the client sent after the upgrade request (it normally waits for the 101) are
	// already in net/http's reader: carry them over into the new buffer.
	var src io.Reader = rd
	size := socketBufferSize
	n := brw.Reader.Buffered()
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), rd)
		size = max(size, n)
	}
	h.br = bufio.NewReaderSize(src, size)
	if n > 0 {
		// Buffer them now: coder/websocket takes what is buffered and resets the reader onto
		// it and nc (dropping src). Served from memory: nothing is read from nc.
		_, _ = h.br.Peek(n)
	}
	h.carried = n
	return rd, bufio.NewReadWriter(h.br, bufio.NewWriterSize(nc, socketBufferSize)), nil
}

func (h *hijackCapture) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// NotifyUser pushes notifications to every socket of the user on this node, as Nakama's
// {"notifications":{"notifications":[...]}} envelope (in each socket's format), and returns how
// many sockets queued it.
func (s *Server) NotifyUser(userID string, notifications ...*api.Notification) (int, error) {
	m, err := notificationsMsg(notifications)
	if err != nil {
		return 0, err
	}
	return s.rt.sendToUser(userID, m), nil
}

// notificationsMsg is the notifications envelope, its json encoded (the format nodes pass
// between them, and the one that reports bad input such as invalid UTF-8).
func notificationsMsg(notifications []*api.Notification) (*outMsg, error) {
	m := newOutMsg(&rtapi.Envelope{Message: &rtapi.Envelope_Notifications{
		Notifications: &rtapi.Notifications{Notifications: notifications},
	}})
	if _, err := m.bytes(formatJSON); err != nil {
		return nil, err
	}
	return m, nil
}
