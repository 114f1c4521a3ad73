package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// socketConn is one live socket: the hub.Conn the hub indexes.
//
// Goroutines: an idle socket has exactly one, its read loop. Writes happen on a writer goroutine
// that exists only while the outgoing queue is not empty (Send starts it, it exits when the
// queue drains), and the same goroutine performs the close: it flushes what is queued (unless
// the cause makes that pointless), sends the close frame and waits for the handshake; an idle
// socket's close frame is written directly instead and its read loop completes the handshake
// (closeRaw, socket_fastpath.go). A timer armed when the close is requested drops the TCP
// connection if all that has not finished within Config.WriteWait, so no close can hang.
type socketConn struct {
	s        *Server
	ws       *websocket.Conn
	nc       net.Conn        // the hijacked connection, to drop it when a close stalls
	br       *bufio.Reader   // the connection's read buffer, shared with ws (socket_idle.go)
	rc       syscall.RawConn // nc's raw connection, to wait for input cheaply; nil under TLS
	in       *inputConn      // what coder/websocket reads from, nc with handed-back bytes first; nil under TLS
	id       string
	userID   string
	username string
	status   bool         // connected with status=true: appears online to followers (status.go)
	format   socketFormat // the socket's messages: json text or protobuf binary (socket_format.go)
	// vars and connectedAt (Unix ns) describe the session to the server API (api_server.go).
	vars        map[string]string
	connectedAt int64

	lastSeen atomic.Int64 // realtime.now() of the last frame of any kind from the client
	pingedAt int64        // realtime.now() of the last heartbeat ping; the sweeper's alone
	pingWait atomic.Bool  // a heartbeat ping through coder/websocket waits for its pong
	// pingCancel ends that wait (under mu): the fast path may read the pong itself, and
	// coder/websocket's Ping would otherwise wait out WriteWait, with no ping sent meanwhile.
	pingCancel context.CancelFunc
	pollFn     func(fd uintptr) bool // c.pollInput, bound once (socket_idle.go)

	mu       sync.Mutex
	q        [][]byte // outgoing messages q[head:]
	head     int
	inflight bool // the writer is writing a message taken off q
	writing  bool // a writer goroutine runs (or the close has been handed to one)
	closing  bool // a close was requested; Send refuses from now on
	code     int
	reason   string
	cause    string
	force    *time.Timer
	done     chan struct{} // closed once the WebSocket is closed
	parked   bool          // the read loop waits in waitReadable: coder/websocket is not reading
	lowat    bool          // the receive low-water mark is raised for a pinged idle socket
	woken    bool          // the sweeper handed input back and woke the read loop with a deadline
	rawClose bool          // the close frame was written directly (closeRaw): the read loop ends the close
	desynced bool          // a frame was read or written in part: the stream cannot be trusted
}

// Disconnect causes, the label of sessiongate_socket_disconnects_total.
const (
	causeClient       = "client"            // the client closed, or the connection broke
	causeShutdown     = "shutdown"          // 1001
	causeTooBig       = "message_too_big"   // 1009
	causeHeartbeat    = "heartbeat_timeout" // 4002
	causeProtocol     = "protocol_error"    // 4003
	causeSlowConsumer = "slow_consumer"     // 4008
	causeWriteError   = "write_error"       // a write failed or timed out
	causeServer       = "server"            // any other server-side close (Close with another code)
	causeReplaced     = "replaced"          // 4001, --single-socket (status_single_socket.go)
)

var allCauses = []string{causeClient, causeShutdown, causeTooBig, causeHeartbeat, causeProtocol,
	causeSlowConsumer, causeWriteError, causeServer, causeReplaced}

func causeOf(code int) string {
	switch code {
	case CloseShutdown:
		return causeShutdown
	case CloseMessageTooBig:
		return causeTooBig
	case CloseHeartbeatTimeout:
		return causeHeartbeat
	case CloseProtocolError:
		return causeProtocol
	case CloseSlowConsumer:
		return causeSlowConsumer
	case CloseReplaced:
		return causeReplaced
	default:
		return causeServer
	}
}

// SessionID implements hub.Conn.
func (c *socketConn) SessionID() string { return c.id }

// UserID implements hub.Conn.
func (c *socketConn) UserID() string { return c.userID }

func (c *socketConn) touch() { c.lastSeen.Store(c.s.rt.now()) }

// seenAt records a sign of life at t, unless a later one is recorded already.
func (c *socketConn) seenAt(t int64) {
	for {
		old := c.lastSeen.Load()
		if old >= t || c.lastSeen.CompareAndSwap(old, t) {
			return
		}
	}
}

// onPing and onPong are coder/websocket's control frame callbacks: any frame is a sign of life.
func (c *socketConn) onPing(context.Context, []byte) bool { c.touch(); return true }
func (c *socketConn) onPong(context.Context, []byte)      { c.pong() }

// pong records a pong from the client.
func (c *socketConn) pong() {
	c.touch()
	c.s.rt.metrics.pongs.Inc()
}

// Send implements hub.Conn: it queues msg without blocking. When the queue already holds
// Config.OutgoingQueueSize messages (counting the one being written) the socket is closed as a
// slow consumer with CloseSlowConsumer and Send returns false.
func (c *socketConn) Send(msg []byte) bool {
	c.mu.Lock()
	queued, next := c.queueLocked(msg)
	c.mu.Unlock()
	next.run(c)
	return queued
}

// queueLocked is Send under c.mu: it queues msg, or closes the socket as a slow consumer, and
// returns what the caller must start once it has released c.mu.
func (c *socketConn) queueLocked(msg []byte) (queued bool, next afterUnlock) {
	if c.closing {
		return false, afterUnlock{}
	}
	pending := len(c.q) - c.head
	if c.inflight {
		pending++
	}
	if pending >= c.s.cfg.OutgoingQueueSize {
		return false, afterUnlock{close: c.requestCloseLocked(CloseSlowConsumer, reasonSlowConsumer, causeSlowConsumer, true)}
	}
	c.q = append(c.q, msg)
	next.writer = !c.writing
	c.writing = true
	return true, next
}

// afterUnlock is what a change made under c.mu leaves to start once c.mu is released.
type afterUnlock struct {
	writer bool // a writer goroutine for the queue
	close  bool // the close that requestCloseLocked handed over (startClose)
}

// and is what both a and b leave to start: a batch of changes under one hold of c.mu.
func (a afterUnlock) and(b afterUnlock) afterUnlock {
	return afterUnlock{writer: a.writer || b.writer, close: a.close || b.close}
}

func (a afterUnlock) run(c *socketConn) {
	switch {
	case a.close:
		c.startClose()
	case a.writer:
		go c.writeLoop()
	}
}

// Close implements hub.Conn: it asks the socket to close with code and reason after the
// messages already queued, without blocking. The first close wins.
func (c *socketConn) Close(code int, reason string) {
	code, reason = sanitizeClose(code, reason)
	c.closeWith(code, reason, causeOf(code), false)
}

// maxCloseReason is the most a close frame's reason can hold (125 bytes less the code).
const maxCloseReason = 123

// sanitizeClose makes code and reason sendable: coder/websocket sends no close frame at all for
// a code that may not appear on the wire or a reason over 123 bytes.
func sanitizeClose(code int, reason string) (int, string) {
	switch {
	case code == 1000 || code == 1001 || (code >= 1007 && code <= 1014) || code == 1002 || code == 1003:
	case code >= 3000 && code <= 4999:
	default:
		code = CloseInternalError
	}
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return code, reason
}

// closeWith requests the close; drop discards the queued messages first.
func (c *socketConn) closeWith(code int, reason, cause string, drop bool) {
	c.mu.Lock()
	start := c.requestCloseLocked(code, reason, cause, drop)
	c.mu.Unlock()
	if start {
		c.startClose()
	}
}

// startClose performs a close that requestCloseLocked handed to its caller: directly when the
// socket is idle (closeRaw), otherwise on a writer goroutine.
func (c *socketConn) startClose() {
	if !c.closeRaw() {
		go c.writeLoop()
	}
}

// requestCloseLocked records the close and reports whether the caller must start a writer
// goroutine to perform it. c.mu must be held.
func (c *socketConn) requestCloseLocked(code int, reason, cause string, drop bool) (start bool) {
	if c.closing {
		return false
	}
	c.closing, c.code, c.reason, c.cause = true, code, reason, cause
	c.resetLowatLocked() // the close handshake reads the client's close frame, however small
	if drop {
		clear(c.q)
		c.q, c.head = nil, 0
	}
	grace := c.s.cfg.WriteWait
	if cause == causeHeartbeat {
		// The client has been silent for PongWait: it will not answer the close frame either.
		grace = min(grace, heartbeatCloseGrace)
	}
	c.force = time.AfterFunc(grace, c.drop)
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// drop closes the TCP connection, which unblocks every read and write on the socket.
func (c *socketConn) drop() {
	if c.nc != nil {
		_ = c.nc.Close()
	}
}

// writeLoop writes queued messages until the queue is empty, then exits, or, once a close was
// requested, performs it.
func (c *socketConn) writeLoop() {
	for {
		c.mu.Lock()
		if c.head < len(c.q) {
			msg := c.q[c.head]
			c.q[c.head] = nil
			c.head++
			if c.head == len(c.q) {
				if cap(c.q) > 16 {
					c.q = nil // release a burst's backing array
				} else {
					c.q = c.q[:0]
				}
				c.head = 0
			}
			c.inflight = true
			c.mu.Unlock()
			err := c.write(msg)
			c.mu.Lock()
			c.inflight = false
			if err != nil {
				start := c.requestCloseLocked(CloseInternalError, "write failed", causeWriteError, true)
				_ = start // this goroutine is the writer: it performs the close below
			}
			c.mu.Unlock()
			continue
		}
		if !c.closing {
			c.writing = false
			c.mu.Unlock()
			return
		}
		code, reason, cause := c.code, c.reason, c.cause
		c.mu.Unlock()
		c.finish(code, reason, cause)
		return
	}
}

func (c *socketConn) write(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteWait)
	err := c.ws.Write(ctx, c.format.messageType(), msg)
	cancel()
	if err == nil {
		c.s.rt.metrics.messagesOut.Inc()
	}
	return err
}

// finish closes the WebSocket: a close handshake for server-side causes, an immediate close when
// the client already closed or the connection broke.
func (c *socketConn) finish(code int, reason, cause string) {
	switch cause {
	case causeClient, causeWriteError:
		_ = c.ws.CloseNow()
	default:
		_ = c.ws.Close(websocket.StatusCode(code), reason)
	}
	c.closed()
}

// closed records that the WebSocket is closed, whichever way (finish, finishRaw): the drop
// timer is no longer needed and the read loop may unregister the socket.
func (c *socketConn) closed() {
	c.mu.Lock()
	if c.force != nil {
		c.force.Stop()
	}
	c.mu.Unlock()
	close(c.done)
}

// heartbeatCloseGrace bounds the close of a socket timed out by the heartbeat.
const heartbeatCloseGrace = time.Second

var readBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readLoop is the socket's one long-lived goroutine: it reads and handles messages until the
// socket closes, then waits for the close to complete and unregisters the socket.
//
// When a message leaves the socket idle, read returns no cause and the loop continues on a new
// goroutine: its stack has not been grown by the message's handling (socket_idle.go).
func (c *socketConn) readLoop() {
	code, reason, cause := c.read()
	if cause == "" {
		go c.readLoop()
		return
	}
	rt := c.s.rt
	defer rt.sockets.Done()
	c.closeWith(code, reason, cause, cause != causeProtocol)
	c.statusClosed() // followers see the leave without waiting for the close handshake
	if c.closedRaw() {
		c.finishRaw()
	}
	<-c.done
	rt.hub.Unregister(c)
	c.mu.Lock()
	code, reason, cause = c.code, c.reason, c.cause
	c.mu.Unlock()
	rt.metrics.disconnect(cause)
	c.s.log.Debug().Str("session_id", c.id).Str("user_id", c.userID).Str("cause", cause).
		Int("code", code).Str("reason", reason).Msg("socket closed")
}

// read runs the read loop and returns why it ended, or no cause when the socket went idle after
// a message and the loop should continue on a fresh goroutine.
//
// An idle socket waits in waitReadable, a shallow call, rather than deep inside
// coder/websocket's frame reader: the goroutine's stack then shrinks to its minimum at the next
// GC (see socket_idle.go). readMessage, which needs a deep stack, is never on it while idle.
func (c *socketConn) read() (code int, reason, cause string) {
	for {
		ok, closedRaw := c.waitReadable()
		if !ok {
			return 0, "", causeWriteError // mid-frame (socket_fastpath.go): dropped without a close frame
		}
		if closedRaw {
			return 0, "", causeServer // the close handshake is over (or given up): readLoop finishes it
		}
		if code, reason, cause = c.readMessage(); cause != "" {
			return code, reason, cause
		}
		if c.idle() {
			return 0, "", ""
		}
	}
}

// readMessage reads and handles one message; a non-empty cause ends the read loop.
//
//go:noinline
func (c *socketConn) readMessage() (code int, reason, cause string) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return 0, "", causeClient
	}
	c.touch()
	buf := readBufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(r)
	if err != nil {
		putReadBuf(buf)
		if errors.Is(err, websocket.ErrMessageTooBig) {
			// coder/websocket has already sent the 1009 close frame.
			return CloseMessageTooBig, reasonTooBig, causeTooBig
		}
		return 0, "", causeClient
	}
	c.s.rt.metrics.messagesIn.Inc()
	if typ != c.format.messageType() {
		// Nakama ends a socket that mixes message types; the gateway says why first.
		putReadBuf(buf)
		if c.format == formatProtobuf {
			c.sendError("", errUnrecognized, "Unexpected text message, this socket's format is protobuf.")
			return CloseProtocolError, reasonText, causeProtocol
		}
		c.sendError("", errUnrecognized, "Unexpected binary message, this socket's format is json.")
		return CloseProtocolError, reasonBinary, causeProtocol
	}
	code, reason = c.handleEnvelope(buf.Bytes())
	putReadBuf(buf)
	if code != 0 {
		return code, reason, causeProtocol
	}
	return 0, "", ""
}

// putReadBuf recycles a read buffer unless a large message grew it.
func putReadBuf(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		readBufPool.Put(b)
	}
}
