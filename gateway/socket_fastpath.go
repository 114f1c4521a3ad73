package gateway

import (
	"errors"
	"net"
	"time"
)

// The heartbeat fast path.
//
// Most of what an idle socket ever receives is heartbeats: the pongs that answer the sweeper's
// pings, and the client's envelope pings (nakama-js sends {"cid":"N","ping":{}} every 10 s).
// Handled by coder/websocket, each one wakes the read loop into the frame reader, decodes the
// envelope, starts a writer goroutine to answer and a fresh reader goroutine afterwards: about
// 45 µs of CPU. Here, on Linux over plain TCP, they are handled where the read loop waits
// (pollInput), with one read of what the connection holds (up to a frame of maxFastFrame bytes)
// and, for an envelope ping, one non-blocking send of the pong frame. Anything else (any other
// frame, a frame not whole in the read, a fragmented or large frame, a ping envelope in any other
// shape, any message of a protobuf socket) is handed back as it was read, with all that follows
// it, for coder/websocket, which reads it first (inputConn), so behaviour is unchanged: the fast
// path only ever takes frames whose handling it reproduces exactly (FuzzPingEnvelope checks the
// envelope decoder against protojson).
//
// The read loop's goroutine holds fd's read lock while it waits, so no other read interleaves;
// frames are consumed only while the read buffer c.br is empty (waitReadable's precondition),
// under c.mu (which the sweeper's collectPong also takes), and not once a close was requested
// (the close handshake reads frames itself). A pong frame is written directly only while no
// writer goroutine runs and nothing is queued, so it cannot overtake or split another message;
// otherwise it is queued as usual.

// maxFastFrame is the largest client frame the fast path takes: a masked frame with a 7-bit
// length, 2 + 4 + 125 bytes.
const maxFastFrame = 2 + 4 + 125

// rawPongLowat is the receive low-water mark of a pinged idle socket: one byte more than the
// empty masked pong its ping asks for, so that the pong alone does not wake the read loop (the
// sweeper collects it) while any envelope (a ping envelope is over 25 bytes) still does.
const rawPongLowat = 2 + 4 + 1

// Opcodes of the frames the fast path takes, with the FIN bit and no extension bits.
const (
	finText = 0x81
	finPing = 0x89
	finPong = 0x8A
)

// pingFrame is a server ping: FIN, opcode 0x9, unmasked, no payload.
var pingFrame = [2]byte{finPing, 0x00}

// errPartialFrame: a frame was written in part, which leaves the stream mid-frame.
var errPartialFrame = errors.New("frame written in part")

// inputState is what a read or a peek at a connection found.
type inputState int

const (
	inputNone inputState = iota // nothing to read
	inputData                   // bytes to read
	inputEnd                    // an error or the end of the stream, for the read that follows to report
)

// headFrame parses the masked client frame at the start of b, unmasking its payload in place. It
// returns the frame's first byte and size, or size 0 when b does not start with a whole frame of
// at most maxFastFrame bytes with a 7-bit length.
func headFrame(b []byte) (first byte, payload []byte, size int) {
	if len(b) < 6 || b[1]&0x80 == 0 {
		return 0, nil, 0 // too short for a masked header, or not masked
	}
	n := int(b[1] & 0x7f)
	if n > 125 || 6+n > len(b) {
		return 0, nil, 0 // an extended length, or not whole
	}
	toggleMask(b[:6+n])
	return b[0], b[6 : 6+n], 6 + n
}

// parsePingEnvelope recognises {"cid":"...","ping":{}} (either order, cid optional, JSON
// whitespace anywhere) with a cid of printable ASCII without escapes, and returns the cid. Any
// other input, valid or not, reports false and goes to protojson.
func parsePingEnvelope(b []byte) (cid []byte, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	var seenCid, seenPing bool
	for {
		i = skipSpace(b, i)
		key, j, ok := scanSimpleString(b, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		switch string(key) {
		case "cid":
			if seenCid {
				return nil, false
			}
			seenCid = true
			if cid, i, ok = scanSimpleString(b, i); !ok {
				return nil, false
			}
		case "ping":
			if seenPing || i >= len(b) || b[i] != '{' {
				return nil, false
			}
			seenPing = true
			i = skipSpace(b, i+1)
			if i >= len(b) || b[i] != '}' {
				return nil, false
			}
			i++
		default:
			return nil, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' || skipSpace(b, i+1) != len(b) || !seenPing {
			return nil, false
		}
		return cid, true
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanSimpleString reads a JSON string at b[i] made of printable ASCII without escapes, and
// returns its contents and the index after it.
func scanSimpleString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// appendPongFrame appends the unmasked text frame of {"cid":cid,"pong":{}} (cid omitted when
// empty, as protojson does) to dst; cid needs no escaping (parsePingEnvelope's guarantee) and the
// frame fits a 7-bit length (the pong is no longer than the ping it answers). cid may lie in
// dst's backing array at index 14 or later, as in the ping frame it was read from: the frame is
// built over it (a masked frame's payload starts at 6, and {"cid":" takes 8 more).
func appendPongFrame(dst []byte, cid []byte) []byte {
	start := len(dst)
	dst = append(dst, finText, 0)
	if len(cid) > 0 {
		dst = append(dst, `{"cid":"`...)
		dst = append(dst, cid...)
		dst = append(dst, `",`...)
	} else {
		dst = append(dst, '{')
	}
	dst = append(dst, `"pong":{}}`...)
	dst[start+1] = byte(len(dst) - start - 2)
	return dst
}

// pollInput is waitReadable's syscall.RawConn.Read callback. It handles the heartbeat frames at
// the head of the input (pongs, envelope pings) and reports true once fd has any other input (or
// an error, or end of file), for coder/websocket to read. Returning false makes the runtime park
// the goroutine on the network poller until fd becomes readable again, then call it again.
//
// One read takes what waits, up to a frame of maxFastFrame bytes, and the frames in it are
// handled in order. The first that is not a heartbeat (or not whole) is handed back with what
// follows it, as it was sent, for coder/websocket (inputConn serves it first). A read that came
// back short drained the connection: the poller, edge-triggered, reports what arrives after it,
// so the goroutine parks without another read (which would only say EAGAIN).
func (c *socketConn) pollInput(fd uintptr) bool {
	var buf [maxFastFrame]byte
	for {
		c.mu.Lock()
		if c.rawClose {
			over := c.awaitCloseLocked(fd)
			c.mu.Unlock()
			return over
		}
		if c.closing || c.inputBuffered() {
			// Handed-back bytes come before anything on the connection (collectPong).
			c.mu.Unlock()
			return true
		}
		n, st := readInput(fd, buf[:])
		if st != inputData {
			c.mu.Unlock()
			return st == inputEnd
		}
		handed, next := c.takeHeartbeatsLocked(fd, buf[:n])
		c.mu.Unlock()
		next.run(c)
		switch {
		case handed:
			return true
		case n < len(buf):
			return false
		}
	}
}

// takeHeartbeatsLocked handles the frames in b, just read off fd, in order: pongs, and envelope
// pings, whose pong frames it writes directly when nothing else is being written and queues
// otherwise. It reports true when it handed input back (the first frame that is not a
// heartbeat, or not whole, with all that follows it), or the socket can no longer be read here
// (closing, or mid-frame after a partial write). c.mu must be held.
func (c *socketConn) takeHeartbeatsLocked(fd uintptr, b []byte) (handed bool, next afterUnlock) {
	for len(b) > 0 {
		if c.closing {
			// A slow consumer's close, just requested: its handshake reads the rest.
			c.in.pending = append(c.in.pending, b...)
			return true, next
		}
		first, body, size := headFrame(b) // unmasks the payload of a whole frame in place
		var cid []byte
		heartbeat := false
		switch {
		case size > 0 && first == finPong:
			heartbeat = true
		case size > 0 && first == finText && c.format == formatJSON && int64(len(body)) <= c.s.cfg.MaxMessageSize:
			// A json socket's envelope ping; a protobuf socket's frames all go to coder/websocket.
			cid, heartbeat = parsePingEnvelope(body)
		}
		if !heartbeat {
			if size > 0 {
				toggleMask(b[:size]) // as sent: coder/websocket unmasks it again
			}
			c.in.pending = append(c.in.pending, b...)
			return true, next
		}
		if first == finPong {
			if c.pingCancel != nil {
				c.pingCancel() // a ping through coder/websocket waits for a pong: this is one
			}
			c.pong()
			b = b[size:]
			continue
		}
		// Built over the ping's own bytes (appendPongFrame allows it), shorter than the ping, so
		// the frames after it stay as read; no buffer of its own, so that the read loop's stack
		// stays within its first 2 KiB (an idle socket's stack is part of its memory).
		frame := appendPongFrame(b[:0:size], cid)
		b = b[size:]
		c.touch()
		c.s.rt.metrics.messagesIn.Inc()
		var written bool
		var err error
		if !c.writing && !c.pingWait.Load() && c.head == len(c.q) {
			written, err = sendFrame(fd, frame)
		}
		switch {
		case written:
			c.s.rt.metrics.messagesOut.Inc()
		case errors.Is(err, errPartialFrame):
			// The stream is mid-frame: no close frame can follow, the connection is dropped.
			c.desynced = true
			return true, next
		case err != nil:
			next = next.and(afterUnlock{close: c.requestCloseLocked(CloseInternalError, "write failed", causeWriteError, true)})
			return true, next
		default:
			// Busy, or the send buffer is full: queued behind the rest (which keeps the pongs of
			// this batch in order too).
			_, queued := c.queueLocked(append([]byte(nil), frame[2:]...))
			next = next.and(queued)
		}
	}
	return false, next
}

// toggleMask applies the masking key of the whole masked frame b (7-bit length) to its
// payload: it unmasks a payload as sent, and masks again one that was unmasked.
func toggleMask(b []byte) {
	p := b[6:]
	for i := range p {
		p[i] ^= b[2+i&3]
	}
}

// collectPong is the heartbeat sweeper's half of pong reading (heartbeat.go): for a socket it
// pinged whose read loop is still parked, it reads what waits on the connection, which the
// raised receive low-water mark kept from waking the read loop: normally just the empty pong,
// which counts as life, dated when the kernel received it. Only the sweeper calls it (it reads
// pingedAt).
//
// One recvmsg does it all (the bytes and their date), so the bytes are consumed before they
// are looked at. Whatever is not an empty pong at their head (a frame smaller than the mark, a
// pong with a payload, input that arrived since, the first bytes of a larger message) is handed
// back to the read loop: it is served first by the connection coder/websocket reads from
// (inputConn), the mark is lowered, and the read loop is woken out of its poller wait.
func (c *socketConn) collectPong() {
	_ = c.rc.Control(func(fd uintptr) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.parked || c.closing || c.in == nil {
			return
		}
		var buf [maxFastFrame]byte
		n, wall, st := recvInput(fd, buf[:])
		switch st {
		case inputNone:
			return
		case inputEnd:
			c.resetLowatLocked() // nothing consumed: the read loop reads the end or the error
			return
		}
		// Any input is a sign of life, seen when it arrived: never before the ping it answers
		// (nor later than now, should the wall clock jump).
		now := c.s.rt.now()
		at := now
		if wall != 0 {
			at -= time.Now().UnixNano() - wall
		}
		c.seenAt(min(max(at, c.pingedAt+1), now))
		rest := buf[:n]
		if isEmptyPong(rest) {
			rest = rest[emptyPongSize:]
			c.s.rt.metrics.pongs.Inc()
		}
		if len(rest) > 0 {
			c.handBackLocked(rest)
		}
	})
}

// emptyPongSize is the size of the masked pong frame with no payload that answers a ping.
const emptyPongSize = 2 + 4

// isEmptyPong reports whether b starts with a masked pong frame with no payload.
func isEmptyPong(b []byte) bool {
	return len(b) >= emptyPongSize && b[0] == finPong && b[1] == 0x80
}

// handBackLocked returns bytes taken off the connection to the parked read loop: the
// connection coder/websocket reads from serves them first, and an expired read deadline wakes
// the read loop out of its poller wait (waitReadable clears it). c.mu must be held, the read
// loop parked.
func (c *socketConn) handBackLocked(b []byte) {
	c.in.pending = append(c.in.pending, b...)
	c.resetLowatLocked()
	c.wakeLocked()
}

// wakeLocked wakes the parked read loop out of its poller wait with an expired read deadline,
// which waitReadable clears. c.mu must be held.
func (c *socketConn) wakeLocked() {
	c.woken = true
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
}

// aLongTimeAgo is a read deadline already past: it wakes a goroutine waiting to read.
var aLongTimeAgo = time.Unix(1, 0)

// inputConn is a plain TCP socket's hijacked connection as coder/websocket reads it: bytes the
// sweeper took off the connection and handed back (handBackLocked) come first. pending is
// written only by the sweeper while the read loop is parked, under c.mu, and read by whichever
// goroutine reads the socket afterwards (the read loop takes c.mu when it unparks, and a close
// handshake's reader starts after a close request, also under c.mu).
type inputConn struct {
	net.Conn
	pending []byte
}

func (ic *inputConn) Read(p []byte) (int, error) {
	if len(ic.pending) > 0 {
		n := copy(p, ic.pending)
		ic.pending = ic.pending[n:]
		if len(ic.pending) == 0 {
			ic.pending = nil
		}
		return n, nil
	}
	return ic.Conn.Read(p)
}

// Closing an idle socket.
//
// A server-side close through coder/websocket costs a writer goroutine (whose stack grows in
// the frame writer), a context and timer per write, and a close handshake in which that
// goroutine and the read loop hand the connection's read lock to each other: a user-wide
// disconnect of thousands of sockets spends its time there. An idle socket (Linux, plain TCP,
// the read loop parked in its poller wait, nothing queued or being written, no ping in flight)
// is closed like its pings are sent: the close frame is written with one non-blocking send
// (closeRaw), and the read loop, still in its poller wait, reads the client's answer
// (awaitCloseLocked): frames sent before the client saw the close are discarded (RFC 6455
// 1.4), its close frame or the end of the stream ends the handshake, and the read loop then
// closes the connection (finishRaw). The deadline armed by requestCloseLocked still drops a
// client that never answers.

// appendCloseFrame appends the unmasked close frame with code and reason (at most
// maxCloseReason bytes, sanitizeClose's guarantee) to dst.
func appendCloseFrame(dst []byte, code int, reason string) []byte {
	dst = append(dst, 0x88, byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// closeRaw writes the close frame of a close requested with requestCloseLocked directly, when
// the socket is idle, and reports whether it did; otherwise (or when the send buffer is full)
// the caller starts the writer goroutine as usual.
func (c *socketConn) closeRaw() bool {
	if !rawHeartbeats || c.rc == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing || c.rawClose || !c.parked || c.inflight || c.head < len(c.q) || c.pingWait.Load() ||
		c.inputBuffered() || c.desynced || c.cause == causeClient || c.cause == causeWriteError {
		return false
	}
	var frame [4 + maxCloseReason]byte
	b := appendCloseFrame(frame[:0], c.code, c.reason)
	var written bool
	var err error
	if cerr := c.rc.Control(func(fd uintptr) { written, err = sendFrame(fd, b) }); cerr != nil {
		return false
	}
	switch {
	case written:
		c.rawClose = true
		c.s.rt.metrics.messagesOut.Inc()
		return true
	case errors.Is(err, errPartialFrame):
		// The stream is mid-frame: no close frame can follow; the read loop drops the connection.
		c.desynced, c.rawClose = true, true
		c.wakeLocked()
		return true
	}
	return false // a full send buffer or an error: the writer tries, and reports
}

// awaitCloseLocked is pollInput once the close frame was written directly: it discards the
// client's frames until its close frame, and reports true once the handshake is over (the
// close frame or the end of the stream read) or cannot go on here (a frame too large for the
// peek, an unmasked frame): the read loop then closes the connection. c.mu must be held.
func (c *socketConn) awaitCloseLocked(fd uintptr) bool {
	var peek [maxFastFrame]byte
	for {
		n, st := peekInput(fd, peek[:])
		switch st {
		case inputNone:
			return false
		case inputEnd:
			return true
		}
		first, _, size := headFrame(peek[:n])
		if size == 0 {
			// Not whole: wait for the rest, unless it can never be whole in the peek.
			return n == len(peek) || peek[1]&0x80 == 0 && n >= 2
		}
		if !consumeInput(fd, size) {
			return true
		}
		if first&0x0f == 0x8 {
			return true
		}
	}
}

// closedRaw reports whether the socket's close frame was written directly.
func (c *socketConn) closedRaw() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rawClose
}

// finishRaw ends a close whose frame was written directly: it closes the connection, as
// finish does for the writer's closes.
func (c *socketConn) finishRaw() {
	_ = c.ws.CloseNow()
	c.closed()
}
