package loadtest

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// The load tool's WebSocket client (RFC 6455, client side, no extensions, no TLS).
//
// The clients share the cores with the gateways they measure, so every microsecond a client
// spends is one the gateway does not get. A general-purpose client library costs per socket a
// request built through net/http, a context and timer per write, finalizers and error values
// per close, and goroutine stack growth in its frame reader: measured, a third of the client's
// CPU in a user-wide disconnect, beside the syscalls. wsConn does the same protocol work (a
// masked frame per write, pings answered, the close handshake) with one small buffer, one lock
// for writes and one for reads.

// wsReadLimit bounds a message from the server; a larger one ends the socket (code 1009).
const wsReadLimit = 1 << 20

// wsCloseTimeout bounds Close's wait for the server's close frame.
const wsCloseTimeout = 5 * time.Second

// wsBufferSize is the read buffer per socket: the server's frames here are small envelopes.
const wsBufferSize = 1024

// Frame opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Close codes the client uses or reports.
const (
	closeNormal      = 1000
	closeProtocol    = 1002
	closeNoStatus    = 1005
	closeTooBig      = 1009
	maxControlLength = 125
)

// wsGUID is the key suffix of the handshake's accept check (RFC 6455 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// closeError is the end of a socket by a close frame from the server.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket closed: %d %q", e.Code, e.Reason) }

// closeStatus is the close code of an error from wsConn.Read, or -1 when the socket did not end
// with a close frame from the server.
func closeStatus(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// errUpgradeRefused is the error of a dial whose upgrade the server answered with another status.
var errUpgradeRefused = errors.New("websocket upgrade refused")

// wsConn is one client WebSocket.
type wsConn struct {
	nc net.Conn

	// rlock is held by the one reader at a time (Read, or Close reading the server's close
	// frame itself): a channel so that Close can wait for it with a bound.
	rlock    chan struct{}
	br       *bufio.Reader
	msg      []byte                 // the message being assembled from fragments; guarded by rlock
	hdr      [14]byte               // a frame header being read; guarded by rlock
	control  [maxControlLength]byte // a control frame's payload being read; guarded by rlock
	readDone chan struct{}
	readErr  error // set once, before readDone is closed
	endOnce  sync.Once

	wmu       sync.Mutex
	wbuf      []byte // guarded by wmu
	closeSent bool   // guarded by wmu

	closeOnce sync.Once
}

// dialWS opens a WebSocket to rawURL (ws://host:port/path?query) over a connection from dial.
// A refused upgrade returns errUpgradeRefused and the HTTP status.
func dialWS(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), rawURL string) (*wsConn, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("websocket url: %w", err)
	}
	if u.Scheme != "ws" {
		return nil, 0, fmt.Errorf("websocket url %q: only ws:// targets are supported", u.Redacted())
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	fail := func(status int, err error) (*wsConn, int, error) {
		stop()
		nc.Close()
		if ctx.Err() != nil && status == 0 {
			return nil, 0, ctx.Err()
		}
		return nil, status, err
	}
	var nonce [16]byte
	binary.LittleEndian.PutUint64(nonce[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(nonce[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := make([]byte, 0, 256+len(u.RawQuery))
	req = append(req, "GET "...)
	req = append(req, u.RequestURI()...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, u.Host...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, key...)
	req = append(req, "\r\n\r\n"...)
	if _, err := nc.Write(req); err != nil {
		return fail(0, fmt.Errorf("write upgrade request: %w", err))
	}
	br := bufio.NewReaderSize(nc, wsBufferSize)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fail(0, fmt.Errorf("read upgrade response: %w", err))
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return fail(resp.StatusCode, fmt.Errorf("%w: HTTP %d", errUpgradeRefused, resp.StatusCode))
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return fail(0, errors.New("upgrade response: wrong Sec-WebSocket-Accept"))
	}
	if !stop() && ctx.Err() != nil {
		return fail(0, ctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br, rlock: make(chan struct{}, 1), readDone: make(chan struct{})}, resp.StatusCode, nil
}

// Write sends msg as one text message. ctx's deadline bounds the write.
func (c *wsConn) Write(ctx context.Context, msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errors.New("websocket: write after close")
	}
	dl, _ := ctx.Deadline()
	return c.writeFrameLocked(dl, opText, msg)
}

// writeFrameLocked writes one masked frame with FIN set, bounded by the deadline dl unless it
// is zero. c.wmu must be held.
func (c *wsConn) writeFrameLocked(dl time.Time, op byte, payload []byte) error {
	b := c.frameLocked(op, payload)
	if !dl.IsZero() {
		_ = c.nc.SetWriteDeadline(dl)
	}
	_, err := c.nc.Write(b)
	if !dl.IsZero() && op != opClose { // nothing is written after the close frame
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

// frameLocked builds one masked frame with FIN set in c's write buffer. c.wmu must be held.
func (c *wsConn) frameLocked(op byte, payload []byte) []byte {
	b := append(c.wbuf[:0], 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	mask := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, mask)
	start := len(b)
	b = append(b, payload...)
	maskBytes(b[start:], mask)
	if cap(b) <= 4*wsBufferSize {
		c.wbuf = b // keep a small buffer; a rare large message does not stay with the socket
	}
	return b
}

// maskBytes masks (or unmasks) b with the little-endian key (RFC 6455 5.3).
func maskBytes(b []byte, key uint32) {
	var k [4]byte
	binary.LittleEndian.PutUint32(k[:], key)
	for i := range b {
		b[i] ^= k[i&3]
	}
}

// Read returns the next data message (its opcode, opText or opBinary), answering pings and
// the close handshake on the way. Once the socket has ended, every Read returns the same
// error: a *closeError when the server closed it with a close frame. ctx bounds the wait.
func (c *wsConn) Read(ctx context.Context) (byte, []byte, error) {
	select {
	case c.rlock <- struct{}{}:
	case <-c.readDone:
		return 0, nil, c.readErr
	}
	defer func() { <-c.rlock }()
	select {
	case <-c.readDone:
		return 0, nil, c.readErr
	default:
	}
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = c.nc.SetReadDeadline(dl)
		defer c.nc.SetReadDeadline(time.Time{})
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	for {
		op, msg, err := c.readFrameLocked()
		if err != nil {
			timedOut := hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl)
			err = c.end(err) // a frame may be half read: the socket cannot go on
			switch {
			case ctx.Err() != nil:
				return 0, nil, ctx.Err()
			case timedOut:
				// The connection's deadline can fire a moment before ctx's own timer does.
				return 0, nil, context.DeadlineExceeded
			}
			return 0, nil, err
		}
		if op == opText || op == opBinary {
			return op, msg, nil
		}
	}
}

// end records the socket's end (the first one recorded stands), closes the connection and
// returns the recorded error.
func (c *wsConn) end(err error) error {
	c.endOnce.Do(func() {
		c.readErr = err
		close(c.readDone)
	})
	c.CloseNow()
	return c.readErr
}

// readFrameLocked reads one frame and handles it: it returns a whole data message with its
// opcode, or opPing/opPong/opContinuation with no message when there is none yet; a close
// frame is answered and returned as a *closeError. c.rlock must be held.
func (c *wsConn) readFrameLocked() (byte, []byte, error) {
	hdr := c.hdr[:] // not on the stack: through io.Reader, it would escape on every frame
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		return 0, nil, err
	}
	fin, op, masked := hdr[0]&0x80 != 0, hdr[0]&0x0f, hdr[1]&0x80 != 0
	if hdr[0]&0x70 != 0 || masked {
		return 0, nil, c.protocolError("reserved bits or a masked frame from the server")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, hdr[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
	case 127:
		if _, err := io.ReadFull(c.br, hdr[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(hdr[2:10])
	}
	if op >= opClose {
		if !fin || n > maxControlLength {
			return 0, nil, c.protocolError("fragmented or oversized control frame")
		}
		payload := c.control[:n]
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return 0, nil, err
		}
		return c.handleControl(op, payload)
	}
	if n > wsReadLimit || uint64(len(c.msg))+n > wsReadLimit {
		c.sendClose(closeTooBig, "message too big")
		return 0, nil, fmt.Errorf("websocket: message over %d bytes", wsReadLimit)
	}
	switch {
	case op == opContinuation && c.msg == nil:
		return 0, nil, c.protocolError("continuation without a message")
	case op != opContinuation && c.msg != nil:
		return 0, nil, c.protocolError("new message inside a fragmented one")
	case op != opContinuation && op != opText && op != opBinary:
		return 0, nil, c.protocolError(fmt.Sprintf("unknown opcode %d", op))
	}
	if op != opContinuation {
		c.msg = make([]byte, 1, n+1)
		c.msg[0] = op // the opcode rides in front until the message is whole
	}
	start := len(c.msg)
	c.msg = append(c.msg, make([]byte, n)...)
	if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
		return 0, nil, err
	}
	if !fin {
		return opContinuation, nil, nil
	}
	msg := c.msg
	c.msg = nil
	return msg[0], msg[1:], nil
}

// handleControl handles a control frame's payload.
func (c *wsConn) handleControl(op byte, payload []byte) (byte, []byte, error) {
	switch op {
	case opPing:
		c.wmu.Lock()
		var err error
		if !c.closeSent {
			err = c.writeFrameLocked(time.Time{}, opPong, payload) // the server reads while it pings
		}
		c.wmu.Unlock()
		return opPing, nil, err
	case opPong:
		return opPong, nil, nil
	case opClose:
		ce := &closeError{Code: closeNoStatus}
		switch {
		case len(payload) == 1:
			return 0, nil, c.protocolError("close frame of one byte")
		case len(payload) >= 2:
			ce.Code, ce.Reason = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
		}
		reply := ce.Code
		if reply == closeNoStatus {
			reply = closeNormal // 1005 must not be sent (RFC 6455 7.4.1)
		}
		c.replyClose(reply)
		return 0, nil, ce
	}
	return 0, nil, c.protocolError(fmt.Sprintf("unknown control opcode %d", op))
}

// protocolError answers a protocol violation by the server with close code 1002.
func (c *wsConn) protocolError(what string) error {
	c.sendClose(closeProtocol, "protocol error")
	return fmt.Errorf("websocket protocol error: %s", what)
}

// sendClose writes the close frame once; later calls do nothing.
func (c *wsConn) sendClose(code int, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	payload = append(payload, reason...)
	if len(payload) > maxControlLength {
		payload = payload[:maxControlLength]
	}
	return c.writeFrameLocked(time.Now().Add(wsCloseTimeout), opClose, payload)
}

// replyClose answers the server's close frame, just before the connection is closed (end). On
// Linux the frame waits for the close() that follows (writeBeforeClose), which sends it and the
// FIN in one segment rather than two: on these shared cores, one TCP segment less to send and to
// receive per socket in a mass disconnect. Elsewhere it is an ordinary write.
func (c *wsConn) replyClose(code int) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return
	}
	c.closeSent = true
	b := c.frameLocked(opClose, binary.BigEndian.AppendUint16(nil, uint16(code)))
	_ = c.nc.SetWriteDeadline(time.Now().Add(wsCloseTimeout)) // bounds a full send buffer's wait too
	if !writeBeforeClose(c.nc, b) {
		_, _ = c.nc.Write(b)
	}
}

// Close performs the close handshake: it sends a close frame with code and reason, waits (up to
// wsCloseTimeout) for the server's close frame, read by the socket's reader or, when none is
// reading, here, and then closes the connection. It returns nil when the server answered.
func (c *wsConn) Close(code int, reason string) error {
	werr := c.sendClose(code, reason)
	t := time.NewTimer(wsCloseTimeout)
	defer t.Stop()
	select {
	case <-c.readDone:
	case c.rlock <- struct{}{}:
		_ = c.nc.SetReadDeadline(time.Now().Add(wsCloseTimeout))
		for {
			if _, _, err := c.readFrameLocked(); err != nil {
				c.end(err)
				break
			}
		}
		<-c.rlock
	case <-t.C:
		c.end(errors.New("websocket: no close frame from the server"))
	}
	c.CloseNow()
	if werr != nil {
		return werr
	}
	if closeStatus(c.readErr) == -1 {
		return fmt.Errorf("websocket close: %w", c.readErr)
	}
	return nil
}

// CloseNow closes the connection without a handshake.
func (c *wsConn) CloseNow() {
	c.closeOnce.Do(func() { _ = c.nc.Close() })
}
