package gateway_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
)

// memStores are fresh in-memory stores.
func memStores() gateway.Stores {
	return gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()}
}

// wsURL is the socket URL of s with the query q (without "?").
func (s *testServer) wsURL(q string) string {
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/ws"
	if q != "" {
		u += "?" + q
	}
	return u
}

// dialSocket opens a socket with the query q and optional handshake headers.
func (s *testServer) dialSocket(ctx context.Context, q string, header http.Header) (*websocket.Conn, *http.Response, error) {
	c, resp, err := websocket.Dial(ctx, s.wsURL(q), &websocket.DialOptions{HTTPHeader: header})
	if c != nil {
		c.SetReadLimit(-1)
	}
	return c, resp, err
}

// mustSocket opens a socket for token and closes it when the test ends.
func (s *testServer) mustSocket(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := s.dialSocket(ctx, "token="+query(token), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func sendText(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
}

// readJSON reads one message and decodes it into a generic map.
func readJSON(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("message %q is not JSON: %v", data, err)
	}
	return m
}

// wantJSON checks that m encodes to the same JSON as want.
func wantJSON(t *testing.T, m map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m)
	exp, _ := json.Marshal(w)
	if string(got) != string(exp) {
		t.Errorf("got %s, want %s", got, exp)
	}
}

// wantClose reads until the socket closes and checks the close code (and reason when not "").
func wantClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("socket ended with %v, want close %d", err, code)
		}
		if ce.Code != code || (reason != "" && ce.Reason != reason) {
			t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

func TestSocketRefusedBeforeUpgrade(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-refused", "")
	revoked := s.authDevice(t, "device-socket-revoked", "")
	if r := s.logout(t, revoked.Token, revoked.Token, revoked.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, query, auth string
		status, code      int
		message           string
	}{
		{"missing token", "", "", 401, 16, "Auth token required"},
		{"invalid token", "token=nope", "", 401, 16, "Auth token invalid"},
		{"invalid bearer", "", "Bearer nope", 401, 16, "Auth token invalid"},
		{"basic auth", "", basicAuth(testServerKey), 401, 16, "Auth token invalid"},
		{"refresh token", "token=" + query(sess.RefreshToken), "", 401, 16, "Auth token invalid"},
		{"revoked token", "token=" + query(revoked.Token), "", 401, 16, "Auth token invalid"},
		{"unknown format", "format=xml&token=" + query(sess.Token), "", 400, 3, "Invalid format parameter, expected json or protobuf."},
		{"bad status", "status=maybe&token=" + query(sess.Token), "", 400, 3, "Invalid status parameter, expected true or false."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := s.dialSocket(ctx, tc.query, h)
			if err == nil {
				c.CloseNow()
				t.Fatal("socket opened, want refusal")
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			wantError(t, response{status: resp.StatusCode, header: resp.Header, body: body}, tc.status, tc.code, tc.message)
		})
	}
	waitFor(t, time.Second, "no sockets", func() bool { return s.srv.Hub().Len() == 0 })

	// A plain HTTP request with a valid token is told to upgrade, in Nakama's error shape.
	wantError(t, s.do(t, http.MethodGet, "/ws?token="+query(sess.Token), ""), 400, 3, "WebSocket upgrade required.")

	// The token is accepted from the Authorization header too, and format=json explicitly.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := s.dialSocket(ctx, "format=json&status=true", http.Header{"Authorization": {bearer(sess.Token)}})
	if err != nil {
		t.Fatalf("dial with bearer: %v", err)
	}
	defer c.CloseNow()
	// status=true: the socket appears online, and hears its own join (it follows its own user).
	if m := readJSON(t, c); m["status_presence_event"] == nil {
		t.Errorf("got %v, want the socket's own status join", m)
	}
	sendText(t, c, `{"cid":"1","ping":{}}`)
	wantJSON(t, readJSON(t, c), `{"cid":"1","pong":{}}`)
	if got := s.srv.Hub().UserCount(tokenClaims(t, sess.Token).UserID); got != 1 {
		t.Errorf("hub has %d sockets for the user, want 1", got)
	}
}

func TestSocketOrigins(t *testing.T) {
	cfg := testConfig()
	cfg.CORSOrigins = []string{"https://game.example"}
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-origins", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := s.dialSocket(ctx, "token="+query(sess.Token), http.Header{"Origin": {"https://evil.example"}})
	if err == nil {
		c.CloseNow()
		t.Fatal("socket opened from a foreign origin")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, want 403", err)
	}
	c, _, err = s.dialSocket(ctx, "token="+query(sess.Token), http.Header{"Origin": {"https://game.example"}})
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestSocketPingPong(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-ping", "")
	c := s.mustSocket(t, sess.Token)
	for _, tc := range []struct{ in, want string }{
		{`{"cid":"1","ping":{}}`, `{"cid":"1","pong":{}}`},
		{`{"ping":{}}`, `{"pong":{}}`},
		{`{"cid":"a \"quoted\" cid é","ping":{},"unknown_field":1}`, `{"cid":"a \"quoted\" cid é","pong":{}}`},
	} {
		sendText(t, c, tc.in)
		wantJSON(t, readJSON(t, c), tc.want)
	}
	// An envelope pong (the answer to a client-side ping) is accepted silently.
	sendText(t, c, `{"pong":{}}`)
	sendText(t, c, `{"cid":"2","ping":{}}`)
	wantJSON(t, readJSON(t, c), `{"cid":"2","pong":{}}`)
	c.Close(websocket.StatusNormalClosure, "")
}

func TestSocketBadEnvelopes(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-bad", "")
	for _, tc := range []struct {
		name, in string
		binary   bool
		code     float64
		cid      string
		message  string // prefix
		reason   string
	}{
		{name: "not json", in: `{"cid":`, code: 3, message: "Malformed message: ", reason: "malformed message"},
		{name: "wrong type", in: `{"cid":1,"ping":{}}`, code: 3, message: "Malformed message: ", reason: "malformed message"},
		{name: "no message", in: `{"cid":"7"}`, code: 2, cid: "7", message: "Missing message.", reason: "missing message"},
		{name: "unknown field only", in: `{"cid":"8","nope":{}}`, code: 2, cid: "8", message: "Missing message.", reason: "missing message"},
		{name: "unsupported message", in: `{"cid":"9","channel_join":{"target":"x"}}`, code: 1, cid: "9", message: "Unrecognized message.", reason: "unrecognized message"},
		{name: "binary frame", in: `{"ping":{}}`, binary: true, code: 1, message: "Unexpected binary message", reason: "binary message on a json socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.mustSocket(t, sess.Token)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			if err := c.Write(ctx, typ, []byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			m := readJSON(t, c)
			cid, _ := m["cid"].(string)
			e, _ := m["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if e == nil || e["code"] != tc.code || cid != tc.cid || !strings.HasPrefix(msg, tc.message) {
				t.Errorf("got %v, want error code %v cid %q message %q...", m, tc.code, tc.cid, tc.message)
			}
			wantClose(t, c, gateway.CloseProtocolError, tc.reason)
		})
	}
}

func TestSocketMessageTooBig(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 4096
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-big", "")
	c := s.mustSocket(t, sess.Token)
	// Exactly the limit is fine.
	head, tail := `{"cid":"`, `","ping":{}}`
	cid := strings.Repeat("x", 4096-len(head)-len(tail))
	sendText(t, c, head+cid+tail)
	if m := readJSON(t, c); m["cid"] != cid || m["pong"] == nil {
		t.Fatalf("4096-byte ping: got %v", m)
	}
	// One byte more closes with 1009.
	sendText(t, c, head+cid+"y"+tail)
	wantClose(t, c, websocket.StatusMessageTooBig, "read limited at 4097 bytes")
	waitFor(t, 5*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
}

func TestSocketNotifications(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-notify", "")
	uid := tokenClaims(t, sess.Token).UserID
	a, b := s.mustSocket(t, sess.Token), s.mustSocket(t, sess.Token)
	// The client may see the 101 before the server has registered the socket.
	waitFor(t, 5*time.Second, "both sockets registered", func() bool { return s.srv.Hub().UserCount(uid) == 2 })
	n, err := s.srv.NotifyUser(uid, &api.Notification{Id: "n1", Subject: "hello", Content: `{"a":1}`, Code: 101, Persistent: true})
	if err != nil || n != 2 {
		t.Fatalf("NotifyUser = %d, %v; want 2 sockets", n, err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		wantJSON(t, readJSON(t, c), `{"notifications":{"notifications":[{"id":"n1","subject":"hello","content":"{\"a\":1}","code":101,"persistent":true}]}}`)
	}
	if n, _ := s.srv.NotifyUser("nobody"); n != 0 {
		t.Errorf("NotifyUser(nobody) = %d", n)
	}
}

func TestSocketSlowConsumer(t *testing.T) {
	cfg := testConfig()
	cfg.OutgoingQueueSize = 4
	cfg.WriteWait = 20 * time.Second // the overflow, not the write deadline, must close it
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-slow", "")
	uid := tokenClaims(t, sess.Token).UserID
	c := s.mustSocket(t, sess.Token)
	// The client may see the 101 before the server has registered the socket.
	waitFor(t, 5*time.Second, "the socket registered", func() bool { return s.srv.Hub().UserCount(uid) == 1 })
	big := &api.Notification{Id: "big", Subject: "big", Content: `"` + strings.Repeat("x", 256<<10) + `"`}
	sent := 0
	for ; sent < 10000; sent++ {
		n, err := s.srv.NotifyUser(uid, big)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if sent == 10000 {
		t.Fatal("the queue never overflowed")
	}
	// The client that did not read gets the messages already written, then the close.
	wantClose(t, c, gateway.CloseSlowConsumer, "slow consumer")
	waitFor(t, 5*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	if n, _ := s.srv.NotifyUser(uid, big); n != 0 {
		t.Errorf("closed socket accepted a message")
	}
	body := scrape(t, s)
	if !containsLine(body, `sessiongate_socket_disconnects_total{cause="slow_consumer"} 1`) {
		t.Errorf("slow consumer not counted:\n%s", grepLines(body, "sessiongate_socket"))
	}
}

func scrape(t *testing.T, s *testServer) string {
	t.Helper()
	resp, err := s.client.Get(s.metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// heartbeatConfig has periods short enough for tests.
func heartbeatConfig() gateway.Config {
	cfg := testConfig()
	// Sweeps every (700-100)/2 = 300ms: an idle client is pinged by about 400ms and has 300ms
	// or more to answer, a margin that survives -race on a loaded machine.
	cfg.PingPeriod = 100 * time.Millisecond
	cfg.PongWait = 700 * time.Millisecond
	return cfg
}

// rawSocket completes a WebSocket handshake over a plain TCP connection and then does nothing
// unless told: it never answers pings.
func rawSocket(t *testing.T, s *testServer, token string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /ws?token=" + query(token) + " HTTP/1.1\r\nHost: " + nc.RemoteAddr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key) + "\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	return nc, br
}

// readFrame reads one unmasked server frame: opcode and payload.
func readFrame(br *bufio.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}

func TestSocketHeartbeatTimeout(t *testing.T) {
	cfg := heartbeatConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-silent", "")
	nc, br := rawSocket(t, s, sess.Token)
	start := time.Now()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	pings := 0
	for {
		op, payload, err := readFrame(br)
		if err != nil {
			t.Fatalf("reading frames: %v (after %d pings)", err, pings)
		}
		if op == 0x9 {
			pings++
			continue
		}
		if op != 0x8 {
			t.Fatalf("unexpected opcode %#x", op)
		}
		if len(payload) < 2 {
			t.Fatalf("close frame without code")
		}
		code := binary.BigEndian.Uint16(payload)
		if code != gateway.CloseHeartbeatTimeout || string(payload[2:]) != "heartbeat timeout" {
			t.Fatalf("close %d %q, want %d heartbeat timeout", code, payload[2:], gateway.CloseHeartbeatTimeout)
		}
		break
	}
	elapsed := time.Since(start)
	if pings == 0 {
		t.Error("the server never pinged the silent client")
	}
	if elapsed < cfg.PongWait-50*time.Millisecond || elapsed > cfg.PongWait+time.Second {
		t.Errorf("closed after %v, want about PongWait %v", elapsed, cfg.PongWait)
	}
	// The server drops the connection without waiting long for the silent client's close frame.
	waitFor(t, 3*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="heartbeat_timeout"} 1`) {
		t.Errorf("timeout not counted:\n%s", grepLines(body, "sessiongate_socket"))
	}
}

// A client that answers pings, or sends anything, stays connected for many PongWaits.
func TestSocketHeartbeatKeepsLiveClients(t *testing.T) {
	cfg := heartbeatConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-alive", "")

	// A quiet client whose library answers the server's pings (it must be reading).
	quiet := s.mustSocket(t, sess.Token)
	readCtx := quiet.CloseRead(context.Background())

	// A chatty client that answers no pings but sends envelope pings.
	nc, br := rawSocket(t, s, sess.Token)
	stop := time.Now().Add(5 * cfg.PongWait)
	for time.Now().Before(stop) {
		if err := writeMaskedText(nc, `{"cid":"hb","ping":{}}`); err != nil {
			t.Fatalf("chatty client write: %v", err)
		}
		time.Sleep(cfg.PingPeriod / 2)
	}
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		op, payload, err := readFrame(br)
		if err != nil {
			t.Fatalf("chatty client: %v", err)
		}
		if op == 0x8 {
			t.Fatalf("chatty client closed: %d %q", binary.BigEndian.Uint16(payload), payload[2:])
		}
		if op == 0x1 {
			break // a pong envelope: still open
		}
	}
	select {
	case <-readCtx.Done():
		t.Fatal("quiet client that answers pings was closed")
	default:
	}
	if n := s.srv.Hub().Len(); n != 2 {
		t.Errorf("%d sockets live, want 2", n)
	}
}

// writeMaskedText writes one masked text frame, as a client must.
func writeMaskedText(w io.Writer, msg string) error {
	if len(msg) > 125 {
		return fmt.Errorf("message too long for this helper")
	}
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
	for i := 0; i < len(msg); i++ {
		frame = append(frame, msg[i]^frame[2+i%4])
	}
	_, err := w.Write(frame)
	return err
}

// Logout revokes the token: the open socket keeps working, a new socket is refused.
func TestSocketLogoutKeepsOpenSocket(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-logout", "")
	c := s.mustSocket(t, sess.Token)
	if r := s.logout(t, sess.Token, sess.Token, sess.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	sendText(t, c, `{"cid":"after-logout","ping":{}}`)
	wantJSON(t, readJSON(t, c), `{"cid":"after-logout","pong":{}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c2, resp, err := s.dialSocket(ctx, "token="+query(sess.Token), nil)
	if err == nil {
		c2.CloseNow()
		t.Fatal("a logged-out token opened a new socket")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("new socket with logged-out token: %v, want 401", err)
	}
	if n := s.srv.Hub().Len(); n != 1 {
		t.Errorf("%d sockets live, want 1", n)
	}
}

func TestSocketShutdownCloses1001(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-shutdown", "")
	a, b := s.mustSocket(t, sess.Token), s.mustSocket(t, sess.Token)
	sendText(t, a, `{"cid":"1","ping":{}}`)
	wantJSON(t, readJSON(t, a), `{"cid":"1","pong":{}}`)
	var wg sync.WaitGroup
	for _, c := range []*websocket.Conn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wantClose(t, c, websocket.StatusGoingAway, "server shutting down")
		}()
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown with 2 sockets took %v", d)
	}
	wg.Wait()
	if n := s.srv.Hub().Len(); n != 0 {
		t.Errorf("%d sockets still registered after Run returned", n)
	}
}

// Thousands of connect/ping/close cycles leave no socket and no goroutine behind (TestMain's
// goleak checks the package as a whole; this checks the count right after the cycles).
func TestSocketConnectCloseCycles(t *testing.T) {
	cfg := testConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-cycles", "")
	before := runtime.NumGoroutine()
	const cycles, workers = 1000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < cycles; i += workers {
				if err := cycle(s, sess.Token, i); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every socket to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	waitFor(t, 10*time.Second, "goroutines to return to the baseline", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
	body := scrape(t, s)
	for _, line := range []string{"sessiongate_socket_connects_total 1000", `sessiongate_socket_disconnects_total{cause="client"} 1000`, "sessiongate_sockets 0"} {
		if !containsLine(body, line) {
			t.Errorf("metrics lack %q:\n%s", line, grepLines(body, "sessiongate_socket"))
		}
	}
}

// cycle opens a socket, pings on every other cycle, and closes it from the client.
func cycle(s *testServer, token string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.wsURL("token="+query(token)), nil)
	if err != nil {
		return err
	}
	if i%2 == 0 {
		cid := fmt.Sprint(i)
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"cid":"`+cid+`","ping":{}}`)); err != nil {
			c.CloseNow()
			return err
		}
		_, data, err := c.Read(ctx)
		if err != nil {
			c.CloseNow()
			return err
		}
		if want := `{"cid":"` + cid + `","pong":{}}`; string(data) != want {
			c.CloseNow()
			return fmt.Errorf("got %s, want %s", data, want)
		}
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

func TestSocketConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*gateway.Config)
	}{
		{"pong wait equal to ping period", func(c *gateway.Config) { c.PingPeriod, c.PongWait = time.Second, time.Second }},
		{"pong wait below ping period", func(c *gateway.Config) { c.PingPeriod, c.PongWait = 30*time.Second, 0 }},
		{"hub shards not a power of two", func(c *gateway.Config) { c.HubShards = 3 }},
		{"negative queue", func(c *gateway.Config) { c.OutgoingQueueSize = -1 }},
		{"negative message size", func(c *gateway.Config) { c.MaxMessageSize = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.edit(&cfg)
			if _, err := gateway.New(cfg, zerolog.Nop(), memStores()); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
	d := gateway.Config{}.Defaults()
	if d.MaxMessageSize != 4096 || d.OutgoingQueueSize != 64 || d.WriteWait != 5*time.Second ||
		d.PingPeriod != 15*time.Second || d.PongWait != 25*time.Second || d.HubShards != 0 {
		t.Errorf("socket defaults %+v", d)
	}
}

// hub.Conn.Close from server code reaches the client with its code and reason, after the
// messages queued before it; a code that may not be sent becomes 1011 and a long reason is cut.
func TestSocketServerClose(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-close", "")
	uid := tokenClaims(t, sess.Token).UserID
	a, b := s.mustSocket(t, sess.Token), s.mustSocket(t, sess.Token)
	waitFor(t, 5*time.Second, "two sockets", func() bool { return s.srv.Hub().UserCount(uid) == 2 })
	if _, err := s.srv.NotifyUser(uid, &api.Notification{Id: "before-close"}); err != nil {
		t.Fatal(err)
	}
	if n := s.srv.Hub().DisconnectUser(uid, gateway.CloseDisconnected, "bye"); n != 2 {
		t.Fatalf("DisconnectUser asked %d sockets, want 2", n)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if m := readJSON(t, c); m["notifications"] == nil {
			t.Errorf("got %v, want the notification queued before the close", m)
		}
		wantClose(t, c, gateway.CloseDisconnected, "bye")
	}
	// a and b unregister once their close handshakes end; until then they would count below.
	waitFor(t, 5*time.Second, "the closed sockets to unregister", func() bool { return s.srv.Hub().UserCount(uid) == 0 })

	c := s.mustSocket(t, sess.Token)
	waitFor(t, 5*time.Second, "the socket", func() bool { return s.srv.Hub().UserCount(uid) == 1 })
	long := strings.Repeat("é", 100) // 200 bytes
	if n := s.srv.Hub().DisconnectUser(uid, 1006, long); n != 1 {
		t.Fatalf("DisconnectUser asked %d sockets, want 1", n)
	}
	wantClose(t, c, websocket.StatusInternalError, strings.Repeat("é", 61))
	waitFor(t, 5*time.Second, "no sockets", func() bool { return s.srv.Hub().Len() == 0 })
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="server"} 3`) {
		t.Errorf("server closes not counted:\n%s", grepLines(body, "sessiongate_socket"))
	}
}

// An expired token refuses new sockets but does not close the one it opened, as Nakama.
func TestSocketTokenExpiryKeepsOpenSocket(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.TokenExpiry = time.Second
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-socket-expiry", "")
	c := s.mustSocket(t, sess.Token)
	waitFor(t, 5*time.Second, "the token to expire", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c2, resp, err := s.dialSocket(ctx, "token="+query(sess.Token), nil)
		if err == nil {
			c2.CloseNow()
			return false
		}
		return resp != nil && resp.StatusCode == http.StatusUnauthorized
	})
	sendText(t, c, `{"cid":"expired","ping":{}}`)
	wantJSON(t, readJSON(t, c), `{"cid":"expired","pong":{}}`)
}
