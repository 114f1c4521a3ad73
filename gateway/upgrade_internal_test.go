package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestParseUpgradeHead: the heads served without net/http, and the ones handed to it.
func TestParseUpgradeHead(t *testing.T) {
	const base = "GET /ws?token=abc&status=true HTTP/1.1\r\nHost: 127.0.0.1:7350\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	r := parseUpgradeHead([]byte(base))
	if r == nil {
		t.Fatal("a plain upgrade head was handed off")
	}
	if r.Method != "GET" || r.URL.Path != "/ws" || r.URL.Query().Get("token") != "abc" || r.Host != "127.0.0.1:7350" ||
		r.Header.Get("Sec-Websocket-Key") != "dGhlIHNhbXBsZSBub25jZQ==" || r.Header.Get("Host") != "" ||
		!r.ProtoAtLeast(1, 1) || r.RequestURI != "/ws?token=abc&status=true" || r.Body == nil {
		t.Errorf("parsed %+v", r)
	}
	if r := parseUpgradeHead([]byte(strings.Replace(base, "GET /ws?", "GET /ws/?", 1))); r == nil {
		t.Error("/ws/ was handed off")
	}
	if r := parseUpgradeHead([]byte(base + "X-Empty:\r\nOrigin:  http://game.example \t\r\n")); r == nil ||
		r.Header.Get("Origin") != "http://game.example" || len(r.Header["X-Empty"]) != 1 {
		t.Errorf("values not trimmed or empty value lost: %+v", r)
	}
	for name, head := range map[string]string{
		"another path":      strings.Replace(base, "/ws?", "/wsx?", 1),
		"an API path":       strings.Replace(base, "/ws?", "/v2/account?", 1),
		"another method":    strings.Replace(base, "GET ", "POST ", 1),
		"HTTP/1.0":          strings.Replace(base, "HTTP/1.1\r\n", "HTTP/1.0\r\n", 1),
		"a space in target": strings.Replace(base, "token=abc", "token=a bc", 1),
		"no Host":           strings.Replace(base, "Host: 127.0.0.1:7350\r\n", "", 1),
		"two Hosts":         base + "Host: other\r\n",
		"an empty Host":     strings.Replace(base, "Host: 127.0.0.1:7350", "Host: ", 1),
		"a body":            base + "Content-Length: 2\r\n",
		"a chunked body":    base + "Transfer-Encoding: chunked\r\n",
		"an Expect":         base + "Expect: 100-continue\r\n",
		"a folded header":   base + "X-A: 1\r\n  continued\r\n",
		"a bad header name": base + "X A: 1\r\n",
		"no colon":          base + "X-A\r\n",
		"a control char":    base + "X-A: 1\x00\r\n",
		"a bare LF line":    base + "X-A: 1\nX-B: 2\r\n",
		"no line end":       "GET /ws HTTP/1.1",
	} {
		if r := parseUpgradeHead([]byte(head)); r != nil {
			t.Errorf("%s: served here, want it handed to net/http", name)
		}
	}
}

// TestCouldBeUpgrade: a request for anything but /ws is handed off after its first read.
func TestCouldBeUpgrade(t *testing.T) {
	for _, b := range []string{"", "G", "GET /w", "GET /ws", "GET /ws?", "GET /ws ", "GET /ws/"} {
		if !couldBeUpgrade([]byte(b)) {
			t.Errorf("%q: not a possible upgrade", b)
		}
	}
	for _, b := range []string{"P", "POST /ws", "GET /v2", "GET /wsx", "GET /ws.json", "get /ws"} {
		if couldBeUpgrade([]byte(b)) {
			t.Errorf("%q: a possible upgrade", b)
		}
	}
}

// TestUpgradeListenerHandlerPanic: a handler that panics on an upgrade read outside net/http
// ends that connection only, as net/http would; the listener goes on serving, and hands other
// requests to net/http.
func TestUpgradeListenerHandlerPanic(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			panic("handler bug")
		}
		_, _ = io.WriteString(w, "served by net/http")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var panics atomic.Int32
	log := zerolog.New(io.Discard).Hook(zerolog.HookFunc(func(_ *zerolog.Event, _ zerolog.Level, msg string) {
		if msg == "handler panicked" {
			panics.Add(1)
		}
	}))
	l := newUpgradeListener(ln, handler, log, time.Second)
	srv := &http.Server{Handler: handler}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	}()
	for range 2 {
		nc := sendUpgrade(t, ln.Addr().String(), "token=x")
		if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
			t.Fatalf("after the panic: %q, %v; want the connection closed with no answer", b, err)
		}
		nc.Close()
	}
	if n := panics.Load(); n != 2 {
		t.Errorf("%d panics logged, want 2", n)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "served by net/http" {
		t.Errorf("another request: %d %q", resp.StatusCode, b)
	}
}

// TestUpgradeWorkers: upgrades are served by at most maxWorkers workers, reused from one
// connection to the next; when every worker is busy (a handler waiting on something), the next
// connection is served on its own goroutine, not queued behind them; workers end once idle for
// upgradeWorkerIdle, and Close stops any left (goleak checks the package).
func TestUpgradeWorkers(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newUpgradeListener(ln, handler, zerolog.Nop(), time.Second)
	defer l.Close()
	workers := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.numWorkers
	}
	request := func(query string) net.Conn { return sendUpgrade(t, ln.Addr().String(), query) }
	answer := func(nc net.Conn) string {
		t.Helper()
		defer nc.Close()
		b, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		status, _, _ := strings.Cut(string(b), "\r\n")
		return status
	}
	for range 5 {
		if got := answer(request("")); got != "HTTP/1.1 204 No Content" {
			t.Fatalf("answer %q", got)
		}
	}
	if n := workers(); n != 1 {
		t.Errorf("%d workers after 5 connections one after another, want 1, reused", n)
	}
	held := make([]net.Conn, l.maxWorkers+2)
	for i := range held {
		held[i] = request("wait=1")
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d of %d was not served while the %d workers were busy", i+1, len(held), workers())
		}
	}
	if n := workers(); n != l.maxWorkers {
		t.Errorf("%d workers, want the limit %d", n, l.maxWorkers)
	}
	close(release)
	for _, nc := range held {
		if got := answer(nc); got != "HTTP/1.1 204 No Content" {
			t.Errorf("held connection answered %q", got)
		}
	}
	for deadline := time.Now().Add(upgradeWorkerIdle + 5*time.Second); workers() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still there %v after the last connection", workers(), upgradeWorkerIdle+5*time.Second)
		}
	}
	if got := answer(request("")); got != "HTTP/1.1 204 No Content" {
		t.Errorf("after the workers ended: answer %q", got)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	l.workers.Wait()
}

// sendUpgrade dials addr and sends a minimal upgrade request for /ws?query; the connection has
// a 5 s deadline.
func sendUpgrade(t *testing.T, addr, query string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, "GET /ws?"+query+" HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return nc
}
