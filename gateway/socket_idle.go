package gateway

import "time"

// Idle sockets.
//
// An idle socket's one goroutine, its read loop, spends nearly all its life waiting for the next
// frame. Waiting inside coder/websocket (Reader → frame header → bufio → net.Conn.Read) keeps a
// deep call chain on the stack, and a goroutine's stack only shrinks (at GC) while less than a
// quarter of it is in use: measured, such a read loop keeps an 8 KiB stack. So the read loop
// first waits in waitReadable, a shallow call that parks on the network poller until the
// connection has input, without consuming any (a MSG_PEEK probe; Linux only, see
// socket_idle_linux.go), and only then calls into coder/websocket to read the message. Idle, the
// stack holds a few small frames.
//
// A goroutine parked on the poller cannot shrink below 4 KiB (the runtime shrinks only while
// less than a quarter is used, counting 800 bytes of no-split reserve), and handling a message
// (protojson) grows the stack to 8 KiB or more. So when a message leaves the socket idle (idle:
// nothing buffered, nothing on the connection), the read loop continues on a new goroutine,
// which starts with the runtime's initial stack size (2 KiB) and waits there; the old goroutine
// and its grown stack go away. A burst of messages stays on one goroutine.
//
// While it waits, the pongs that answer the heartbeat's pings and the client's envelope pings are
// handled in the wait itself (pollInput, socket_fastpath.go): an idle socket that only
// heartbeats never leaves the shallow call.
//
// The wait is skipped when the read buffer already holds input (a client may send several frames
// at once), when a close has been requested (coder/websocket's close handshake then reads the
// buffer from the writer goroutine), and under TLS (decrypted input may be buffered inside the
// tls.Conn, where the probe cannot see it).

// waitReadable returns once the socket has input to read, or at once when waiting is not safe
// or not supported. Errors are left to the read that follows; ok is false when the stream can
// no longer be trusted (a frame read or written in part), and closedRaw true once a close whose
// frame was written directly has ended its wait (closeRaw): either way the read loop ends.
func (c *socketConn) waitReadable() (ok, closedRaw bool) {
	if c.rc == nil || c.br == nil {
		return true, false
	}
	c.mu.Lock()
	// c.mu orders this against the close: coder/websocket reads c.br from another goroutine only
	// once a close was requested (finish), which happens after closing is set under c.mu.
	skip := c.closing || c.inputBuffered()
	c.parked = !skip
	c.mu.Unlock()
	if skip {
		return true, false // a close written directly needs a parked read loop: not this one
	}
	_ = c.rc.Read(c.pollFn)
	c.mu.Lock()
	c.parked = false
	if c.woken {
		c.woken = false
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.resetLowatLocked()
	ok, closedRaw = !c.desynced, c.rawClose
	c.mu.Unlock()
	return ok, closedRaw
}

// inputBuffered reports whether input waits in memory (the read buffer, or bytes the sweeper
// handed back), where the poller cannot see it. c.mu must be held.
func (c *socketConn) inputBuffered() bool {
	return c.br.Buffered() > 0 || (c.in != nil && len(c.in.pending) > 0)
}

// resetLowatLocked lowers a raised receive low-water mark back to one byte. c.mu must be held.
func (c *socketConn) resetLowatLocked() {
	if !c.lowat {
		return
	}
	c.lowat = false
	_ = c.rc.Control(func(fd uintptr) { setRcvLowat(fd, 1) })
}

// idle reports whether the socket has no input waiting after a message, so that the read loop
// may continue on a fresh goroutine. Without the poller wait (TLS, not Linux) it is never idle.
func (c *socketConn) idle() bool {
	if c.rc == nil || c.br == nil {
		return false
	}
	c.mu.Lock()
	busy := c.closing || c.inputBuffered()
	c.mu.Unlock()
	if busy {
		return false
	}
	ready := true
	if err := c.rc.Control(func(fd uintptr) { ready = peekReadable(fd) }); err != nil {
		return false
	}
	return !ready
}
