package gateway

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Socket upgrades without net/http's connection machinery.
//
// A socket connect is one HTTP request on a fresh connection, answered with 101 and hijacked.
// Served by net/http, it pays for a server connection made for keep-alive HTTP: a 4 KiB reader
// and writer, a request and response with their contexts, a background read that the hijack
// has to stop, and the 101's headers written through a chunk writer; measured, about a fifth of
// the node's CPU per connect. So on a plain TCP listener (not TLS) the first request of each
// connection is read here (upgradeListener). A WebSocket upgrade of /ws in the common form
// (GET, HTTP/1.1, one Host, no body, a head within upgradeHeadSize) is served here: its
// http.Request is built from the head and it goes through the same Server.ServeHTTP as every
// request, with an upgradeResponse for a ResponseWriter, which writes the 101 itself at the
// hijack. Every other connection, and any head this parser does not take whole (a request
// for another path, another method, a folded header, a body, a head that is not complete by
// upgradeHeadSize), is handed to net/http with the bytes read so far served to it first:
// net/http then does everything as before, keep-alive included.
//
// A /ws request served here that is refused (401, 400, 503 while draining, 426, ...) gets the
// response ServeHTTP wrote, with Connection: close: a refused socket is not a keep-alive HTTP
// client. The head must arrive within readHeaderTimeout, as with net/http.

// upgradeHeadSize is the largest request head read here; a longer one goes to net/http (whose
// limit is MaxHeaderBytes). A socket's upgrade request, token included, is well under 2 KiB.
const upgradeHeadSize = 4 << 10

// upgradeListener is the API listener as net/http sees it: it accepts the connections itself,
// serves socket upgrades (serveFirst), and returns the other connections from Accept.
type upgradeListener struct {
	net.Listener
	handler     http.Handler // the server's ServeHTTP
	log         zerolog.Logger
	headTimeout time.Duration

	handoff   chan net.Conn // connections for net/http, with the bytes read so far
	closed    chan struct{} // closed by Close
	acceptWG  sync.WaitGroup
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // why the accept loop stopped, for Accept to report

	mu      sync.Mutex
	reading map[net.Conn]struct{} // connections whose first request is being read here
	conns   sync.WaitGroup        // each until its first request is served or handed to net/http

	// Heads read whole go to a few workers (serveHead), see upgradeWorker.
	heads      chan readHead // unbuffered: taken only by a worker waiting for one
	workers    sync.WaitGroup
	numWorkers int // under mu; never more than maxWorkers
	maxWorkers int
}

// readHead is a connection whose first request head has been read, for a worker to serve.
type readHead struct {
	nc  net.Conn
	buf *[]byte // from headBufs: the n bytes read, the head's end (its blank line) at end
	n   int
	end int
}

// newUpgradeListener starts accepting on ln; Close stops it.
func newUpgradeListener(ln net.Listener, handler http.Handler, log zerolog.Logger, headTimeout time.Duration) *upgradeListener {
	l := &upgradeListener{Listener: ln, handler: handler, log: log, headTimeout: headTimeout, handoff: make(chan net.Conn),
		closed: make(chan struct{}), reading: make(map[net.Conn]struct{}),
		heads: make(chan readHead), maxWorkers: max(runtime.GOMAXPROCS(0), 2)}
	l.acceptWG.Add(1)
	go l.acceptLoop()
	return l
}

// acceptLoop accepts connections until the listener fails for good, backing off on a lack of
// file descriptors or memory, as net/http does.
func (l *upgradeListener) acceptLoop() {
	defer l.acceptWG.Done()
	var backoff time.Duration
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
				select {
				case <-time.After(backoff):
					continue
				case <-l.closed:
				}
			}
			l.errMu.Lock()
			l.err = err
			l.errMu.Unlock()
			_ = l.shut()
			return
		}
		backoff = 0
		l.mu.Lock()
		select {
		case <-l.closed:
			l.mu.Unlock()
			_ = nc.Close()
			continue
		default:
		}
		l.reading[nc] = struct{}{}
		l.conns.Add(1)
		l.mu.Unlock()
		go l.serveFirst(nc)
	}
}

// Accept returns the next connection for net/http.
func (l *upgradeListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.handoff:
		return nc, nil
	case <-l.closed:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		if l.err != nil && !errors.Is(l.err, net.ErrClosed) {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting, ends the reads of first requests in progress, and waits for their
// goroutines and the accept loop. Sockets already upgraded are the server's to close.
func (l *upgradeListener) Close() error {
	err := l.shut()
	l.acceptWG.Wait()
	return err
}

// shut is Close but for the wait for the accept loop, which calls it when accepting fails.
func (l *upgradeListener) shut() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		close(l.closed) // under mu: no connection is added after this (acceptLoop)
		for nc := range l.reading {
			_ = nc.SetReadDeadline(aLongTimeAgo)
		}
		l.mu.Unlock()
		err = l.Listener.Close()
		l.conns.Wait()
		l.workers.Wait() // each returns once closed, its head served
	})
	return err
}

// doneReading takes nc off the connections whose first request is being read.
func (l *upgradeListener) doneReading(nc net.Conn) {
	l.mu.Lock()
	delete(l.reading, nc)
	l.mu.Unlock()
}

var headBufs = sync.Pool{New: func() any { b := make([]byte, upgradeHeadSize); return &b }}

// serveFirst reads nc's first request head, then has it served (serveHead) by an idle worker, a
// new one, or, when there are maxWorkers and all are busy, right here.
func (l *upgradeListener) serveFirst(nc net.Conn) {
	bp := headBufs.Get().(*[]byte)
	buf := *bp
	_ = nc.SetReadDeadline(time.Now().Add(l.headTimeout))
	n, end := 0, -1
	for end < 0 && n < len(buf) {
		m, err := nc.Read(buf[n:])
		n += m
		if !couldBeUpgrade(buf[:n]) {
			break
		}
		end = bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if err != nil {
			if end < 0 {
				l.doneReading(nc)
				_ = nc.Close() // gone or too slow before its head was whole, as net/http would drop it
				headBufs.Put(bp)
				l.conns.Done()
				return
			}
			break
		}
	}
	l.doneReading(nc)
	h := readHead{nc: nc, buf: bp, n: n, end: end}
	if end < 0 {
		l.handOffRead(h) // not an upgrade: no worker needed
		return
	}
	select {
	case l.heads <- h:
		return
	default:
	}
	l.mu.Lock()
	spawn := l.numWorkers < l.maxWorkers
	if spawn {
		l.numWorkers++
		l.workers.Add(1)
	}
	l.mu.Unlock()
	if spawn {
		go l.upgradeWorker(h)
		return
	}
	l.serveHead(h)
}

// upgradeWorker serves heads, starting with first, until none has come for upgradeWorkerIdle
// or the listener is closed.
//
// Why workers: serving an upgrade (the handler, coder/websocket's Accept, the hub) grows the
// stack of the goroutine that runs it several times past its initial 2 KiB, and each doubling
// copies the stack and walks every frame on it. On a goroutine per connection that was a tenth
// of the node's CPU per connect (a profile of the connect ramp); a worker grows its stack once
// per burst of connects. The connection's own goroutine only reads the head, which stays
// shallow. Between bursts no worker is left: a node that takes no connects keeps no goroutine
// for them.
func (l *upgradeListener) upgradeWorker(first readHead) {
	defer l.workers.Done()
	idle := time.NewTimer(upgradeWorkerIdle)
	defer idle.Stop()
	for h := first; ; {
		l.serveHead(h)
		idle.Reset(upgradeWorkerIdle)
		select {
		case h = <-l.heads:
		case <-idle.C:
			l.mu.Lock()
			l.numWorkers--
			l.mu.Unlock()
			return
		case <-l.closed:
			return
		}
	}
}

// upgradeWorkerIdle is how long a worker waits for the next head before it ends. Connects come
// in bursts (a match start, a reconnect wave after a deploy), with a head every few
// microseconds to milliseconds; a worker left over after one is cheap but need not stay.
const upgradeWorkerIdle = time.Second

// serveHead serves a connection's first request when it is a socket upgrade in the common form;
// otherwise it hands the connection, with what was read, to net/http.
func (l *upgradeListener) serveHead(h readHead) {
	buf := *h.buf
	var r *http.Request
	if h.end >= 0 {
		r = parseUpgradeHead(buf[:h.end+2])
	}
	if r == nil {
		l.handOffRead(h)
		return
	}
	r.RemoteAddr = h.nc.RemoteAddr().String()
	w := &upgradeResponse{nc: h.nc, carried: buf[h.end+4 : h.n]}
	ok := l.serve(w, r)
	w.carried = nil // Hijack took a copy; buf goes back to the pool
	headBufs.Put(h.buf)
	if !ok || w.hijacked {
		l.conns.Done()
		return
	}
	// A refused upgrade: its response and the wait for the client's close (up to a second)
	// go on without holding the worker.
	go func() {
		defer l.conns.Done()
		w.finish()
	}()
}

// serve runs the handler as net/http does: a panic in it is logged with its stack and ends
// this connection only (reported false), not the process.
func (l *upgradeListener) serve(w *upgradeResponse, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				l.log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Str("path", r.URL.Path).Msg("handler panicked")
			}
			if !w.hijacked {
				_ = w.nc.Close()
			}
			ok = false
		}
	}()
	l.handler.ServeHTTP(w, r)
	return true
}

// handOffRead gives a connection whose first request is not served here to net/http, which
// reads it again from the start, under its own timeouts.
func (l *upgradeListener) handOffRead(h readHead) {
	_ = h.nc.SetReadDeadline(time.Time{})
	pending := bytes.Clone((*h.buf)[:h.n])
	headBufs.Put(h.buf)
	l.handOff(&prefixConn{inputConn{Conn: h.nc, pending: pending}})
	l.conns.Done()
}

// handOff gives nc to net/http, or closes it once the listener is closed.
func (l *upgradeListener) handOff(nc net.Conn) {
	select {
	case l.handoff <- nc:
	case <-l.closed:
		_ = nc.Close()
	}
}

// couldBeUpgrade reports whether b can still be the start of a request this file serves, so
// that any other request is handed to net/http after its first read, not after a wait.
func couldBeUpgrade(b []byte) bool {
	const prefix = "GET /ws"
	if len(b) < len(prefix) {
		return string(b) == prefix[:len(b)]
	}
	if string(b[:len(prefix)]) != prefix {
		return false
	}
	return len(b) == len(prefix) || b[len(prefix)] == ' ' || b[len(prefix)] == '?' || b[len(prefix)] == '/'
}

// parseUpgradeHead parses head (the request line and header lines, each ending in CRLF, the
// blank line left out) as a request this file serves: GET of /ws (or /ws/) over HTTP/1.1, with
// one Host header, no body, and header lines net/http would take as they are. It returns nil
// for anything else, which net/http then parses (and answers, or refuses) itself.
//
// The request's strings (target, header values) are all substrings of one copy of head, and
// its header values share one backing array: a few allocations instead of two per header.
func parseUpgradeHead(headBytes []byte) *http.Request {
	head := string(headBytes)
	line, rest, ok := strings.Cut(head, "\r\n")
	if !ok {
		return nil
	}
	target, ok := strings.CutPrefix(line, "GET ")
	if !ok {
		return nil
	}
	target, ok = strings.CutSuffix(target, " HTTP/1.1")
	if !ok || target == "" || strings.IndexByte(target, ' ') >= 0 {
		return nil
	}
	if path, _, _ := strings.Cut(target, "?"); path != "/ws" && path != "/ws/" {
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	h := make(http.Header, 8)
	values := make([]string, 0, 12)
	host, hosts := "", 0
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validHeaderName(name) {
			return nil // includes a folded line (it starts with a space or a tab)
		}
		value = strings.Trim(value, " \t")
		if !validHeaderValue(value) {
			return nil
		}
		key := headerKey(name)
		switch key {
		case "Host":
			host, hosts = value, hosts+1
			continue // net/http keeps it in Request.Host, not in the header map
		case "Content-Length", "Transfer-Encoding", "Expect":
			return nil // a body, or the promise of one
		}
		if prev := h[key]; prev != nil {
			h[key] = append(prev, value) // a repeated header: a slice of its own (prev's cap is 1)
			continue
		}
		values = append(values, value)
		n := len(values)
		h[key] = values[n-1 : n : n]
	}
	if hosts != 1 || host == "" {
		return nil
	}
	return &http.Request{Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RequestURI: target}
}

// commonHeaderKeys are the canonical keys (textproto's spelling) of headers an upgrade request
// usually carries: headerKey finds them without building the key.
var commonHeaderKeys = [...]string{"Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Origin", "Authorization", "User-Agent", "Accept-Encoding",
	"Accept-Language", "Cache-Control", "Pragma", "Cookie", "Content-Length", "Transfer-Encoding", "Expect"}

// headerKey is textproto.CanonicalMIMEHeaderKey(name) for a valid header name.
func headerKey(name string) string {
	for _, k := range commonHeaderKeys {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// validHeaderName reports whether b is a token (RFC 9110 5.6.2).
func validHeaderName(b string) bool {
	if len(b) == 0 {
		return false
	}
	for i := range len(b) {
		switch c := b[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether b holds only field-value characters: visible ASCII,
// obs-text, spaces and tabs.
func validHeaderValue(b string) bool {
	for i := range len(b) {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// upgradeResponse is the ResponseWriter of a request served by the upgradeListener: the 101 is
// written at the hijack, any other response once the handler returns (finish), and then the
// connection is closed.
type upgradeResponse struct {
	nc       net.Conn
	carried  []byte // bytes the client sent after the head (a client normally waits for the 101)
	header   http.Header
	code     int
	body     []byte
	hijacked bool
}

func (w *upgradeResponse) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *upgradeResponse) WriteHeader(code int) {
	if w.code == 0 && !w.hijacked {
		w.code = code
	}
}

func (w *upgradeResponse) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// Hijack writes the status line and headers set so far (the 101 and its headers) and hands
// over the connection, with the bytes read past the head buffered in the reader.
func (w *upgradeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if _, err := w.nc.Write(w.appendHead(make([]byte, 0, 256))); err != nil {
		_ = w.nc.Close()
		return nil, nil, err
	}
	w.hijacked = true
	var br *bufio.Reader
	if len(w.carried) == 0 {
		br = bufio.NewReaderSize(w.nc, 16) // nothing buffered: the hijacker reads the connection itself
	} else {
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(w.carried)), w.nc), len(w.carried))
		_, _ = br.Peek(len(w.carried)) // buffered now, so that the hijacker carries them over
	}
	return w.nc, bufio.NewReadWriter(br, bufio.NewWriterSize(w.nc, 16)), nil
}

// appendHead appends the status line (200 when the handler set none) and the headers, sorted,
// to b.
func (w *upgradeResponse) appendHead(b []byte) []byte {
	code := cmp.Or(w.code, http.StatusOK)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	keys := make([]string, 0, len(w.header))
	for k := range w.header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range w.header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...) // set by the handlers; any echoed from the request (Origin) passed validHeaderValue
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// finish writes the response of a request that was not upgraded, and closes the connection.
func (w *upgradeResponse) finish() {
	h := w.Header()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.Itoa(len(w.body)))
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if h.Get("Content-Type") == "" && len(w.body) > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body))
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(finishWait))
	_, _ = w.nc.Write(append(w.appendHead(make([]byte, 0, 256+len(w.body))), w.body...))
	// As net/http does: end the stream and let the client close first, so that bytes it sent
	// that were never read do not make the close a reset, which could cut the response short.
	if tc, ok := w.nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		_ = tc.SetReadDeadline(time.Now().Add(finishWait))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, upgradeHeadSize))
	}
	_ = w.nc.Close()
}

// finishWait bounds the write of a refused upgrade's response and the wait for the client's
// close after it.
const finishWait = 500 * time.Millisecond

// prefixConn is a connection handed to net/http: the bytes read from it already come first
// (inputConn's pending).
type prefixConn struct {
	inputConn
}

// errPrefixUnread: the raw connection is not offered while read bytes wait in front of it.
var errPrefixUnread = errors.New("bytes read ahead are still unread")

// SyscallConn offers the raw connection (for a socket upgraded through net/http, whose
// heartbeat fast path reads the file descriptor itself) once the prefix has been read: net/http
// reads it whole with its first read (it fits the reader's 4 KiB).
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	if len(c.pending) > 0 {
		return nil, errPrefixUnread
	}
	return sc.SyscallConn()
}
