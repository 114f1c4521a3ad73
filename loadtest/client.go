package loadtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client is one virtual game client: an identity and, at most times, one socket.
type client struct {
	idx     int
	device  string
	userID  string // from the first token's uid claim; set before any socket opens
	target  int    // index of the target its socket is (or was last) on
	friends []string

	// The token changes when the client re-authenticates, which churn's overlapping sockets of
	// one client may do at once.
	mu      sync.Mutex
	token   string
	tokenAt time.Time

	cur       atomic.Pointer[sock] // the socket held now (hold-like scenarios)
	sessionID atomic.Value         // string: the socket's session id, learnt from its own presence event
	discAt    atomic.Int64         // disconnect: unix nanos of the API call, 0 when none
}

// sock is one open WebSocket of a client.
type sock struct {
	c        *client
	conn     *wsConn
	pingSent atomic.Int64 // unix nanos of the outstanding hold ping, 0 when none
	closing  atomic.Bool  // the client is closing it (churn lifetime), so its end is no drop
	done     chan struct{}
	took     time.Duration // dial + upgrade + first pong
}

const pingTick = 100 * time.Millisecond

var (
	firstPing = []byte(`{"cid":"1","ping":{}}`)
	holdPing  = []byte(`{"cid":"2","ping":{}}`)
)

// Envelope ids the client uses for its own requests.
const (
	cidStatus = "3"
	cidFollow = "4"
)

// login authenticates c's device on target and keeps the token.
// With the centrifugo protocol the token is minted here, for user c.device.
func (w *worker) login(ctx context.Context, c *client, target string, create bool) error {
	if w.plan.Protocol == ProtocolCentrifugo {
		c.mu.Lock()
		c.token, c.tokenAt = centrifugoToken(w.plan.CentrifugoSecret, c.device, time.Now().Add(centrifugoTokenTTL)), time.Now()
		c.mu.Unlock()
		return nil
	}
	tok, err := w.authenticate(ctx, target, c.device, create)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.token, c.tokenAt = tok, time.Now()
	c.mu.Unlock()
	return nil
}

// session is c's current token and when it was issued ("" before the pre-phase got one).
func (c *client) session() (string, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, c.tokenAt
}

// tokenUserID reads the uid claim of a session token, or the sub claim of a centrifugo
// connection token (the signature is the server's business).
func tokenUserID(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		UID string `json:"uid"`
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &claims)
	return cmp.Or(claims.UID, claims.Sub)
}

// authenticate POSTs a device authentication to target and returns the session token.
func (w *worker) authenticate(ctx context.Context, target, device string, create bool) (string, error) {
	u := target + "/v2/account/authenticate/device?create=" + fmt.Sprint(create)
	body, _ := json.Marshal(map[string]string{"id": device})
	var out struct {
		Token string `json:"token"`
	}
	status, err := w.postJSON(ctx, u, w.authHdr, body, &out, "auth")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		w.countErr(fmt.Sprintf("auth_http_%d", status))
		return "", fmt.Errorf("authenticate: HTTP %d", status)
	}
	if out.Token == "" {
		w.countErr("auth_bad_response")
		return "", errors.New("authenticate: no token in response")
	}
	return out.Token, nil
}

// postJSON is the package's postJSON on the worker's client, counting a failure as
// <kind>_request, <kind>_transport (unless ctx ended) or <kind>_bad_response.
func (w *worker) postJSON(ctx context.Context, u, authz string, body []byte, out any, kind string) (int, error) {
	status, fail, err := postJSON(ctx, w.http, u, authz, body, out)
	if err != nil && (fail != "transport" || ctx.Err() == nil) {
		w.countErr(kind + "_" + fail)
	}
	return status, err
}

// wsURL is target's socket URL for token.
func wsURL(target, token string) string {
	return wsBase(target) + "/ws?format=json&token=" + url.QueryEscape(token)
}

// wsBase is target's base URL with the WebSocket scheme (http → ws, https → wss).
func wsBase(target string) string {
	return strings.Replace(strings.Replace(target, "https://", "wss://", 1), "http://", "ws://", 1)
}

// connect opens c's socket on its target and records the connect time; failures are counted.
// The caller starts the socket's reader.
func (w *worker) connect(ctx context.Context, c *client) *sock {
	tok, at := c.session()
	if tok == "" {
		return nil // the pre-phase could not authenticate it (counted there)
	}
	if w.plan.TokenMaxAge > 0 && time.Since(at) > w.plan.TokenMaxAge {
		if w.login(ctx, c, w.plan.Targets[0], w.plan.Create) != nil {
			return nil
		}
	}
	s, kind, _ := w.openSocket(ctx, c, w.plan.Targets[c.target])
	if kind != "" {
		if ctx.Err() == nil {
			w.countErr(kind)
		}
		return nil
	}
	w.record(HistConnect, s.took)
	return s
}

// openSocket dials target with c's token, sends the first envelope ping and waits for its pong
// (the connect time), then sets the status and follows friends when the
// plan says so. The caller records s.took. On failure it returns the error's kind and the HTTP status of a refused upgrade.
func (w *worker) openSocket(ctx context.Context, c *client, target string) (*sock, string, int) {
	cctx, cancel := context.WithTimeout(ctx, w.plan.Timeout)
	defer cancel()
	t0 := time.Now()
	tok, _ := c.session()
	var u string
	if w.plan.Protocol == ProtocolCentrifugo {
		u = centrifugoURL(target) // the token goes in the connect command
	} else {
		u = wsURL(target, tok)
	}
	conn, status, err := dialWS(cctx, w.dial, u)
	if err != nil {
		switch {
		case status != 0:
			return nil, fmt.Sprintf("dial_http_%d", status), status
		case cctx.Err() != nil:
			return nil, "dial_timeout", 0
		default:
			return nil, "dial_error", 0
		}
	}
	s := &sock{c: c, conn: conn, done: make(chan struct{})}
	fail := func(kind string) (*sock, string, int) {
		conn.CloseNow()
		return nil, kind, 0
	}
	if w.plan.Protocol == ProtocolCentrifugo {
		if kind := w.centrifugoConnect(cctx, s, tok); kind != "" {
			return fail("connect" + kind)
		}
		s.took = time.Since(t0)
		return s, "", 0 // validateProtocol allows no status, follows or session ids
	}
	if err := conn.Write(cctx, firstPing); err != nil {
		return fail("first_ping_write")
	}
	if kind := w.await(cctx, s, "1"); kind != "" {
		return fail("first_pong" + kind)
	}
	s.took = time.Since(t0)
	learnSession := w.plan.Scenario == "disconnect" && w.plan.DisconnectBy != "user-wide"
	if w.plan.Status != "" || learnSession {
		t1 := time.Now()
		msg, _ := json.Marshal(map[string]any{"cid": cidStatus, "status_update": map[string]string{"status": w.plan.Status}})
		if err := conn.Write(cctx, msg); err != nil {
			return fail("status_write")
		}
		if kind := w.await(cctx, s, cidStatus); kind != "" {
			return fail("status_update" + kind)
		}
		w.record(HistStatusUpdate, time.Since(t1))
	}
	if learnSession {
		// The socket's own presence event (a socket follows its user) names its session id.
		for c.sessionID.Load() == nil {
			if kind := w.await(cctx, s, ""); kind != "" {
				return fail("session_id" + kind)
			}
		}
	}
	if len(c.friends) > 0 {
		t1 := time.Now()
		msg, _ := json.Marshal(map[string]any{"cid": cidFollow, "status_follow": map[string][]string{"user_ids": c.friends}})
		if err := conn.Write(cctx, msg); err != nil {
			return fail("follow_write")
		}
		if kind := w.await(cctx, s, cidFollow); kind != "" {
			return fail("status_follow" + kind)
		}
		w.record(HistStatusFollow, time.Since(t1))
	}
	return s, "", 0
}

// envelope is what the client reads of the server's envelopes.
type envelope struct {
	Cid   string `json:"cid"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Event *struct {
		Joins []struct {
			UserID    string `json:"user_id"`
			SessionID string `json:"session_id"`
		} `json:"joins"`
	} `json:"status_presence_event"`
}

// await reads s until the envelope answering cid arrives (cid "": until any envelope), noting
// presence events on the way. It returns "" or the kind of failure (_timeout, _read, _error).
func (w *worker) await(ctx context.Context, s *sock, cid string) string {
	for {
		msg, kind := readText(ctx, s)
		if kind != "" {
			return kind
		}
		var env envelope
		if err := json.Unmarshal(msg, &env); err != nil {
			return "_bad_envelope"
		}
		if env.Event != nil {
			w.noteEvent(s.c, &env)
		}
		if env.Error != nil {
			return "_error"
		}
		if cid == "" || env.Cid == cid {
			return ""
		}
	}
}

// readText reads s up to its next text message; on failure it returns the kind of failure
// (_timeout, _read).
func readText(ctx context.Context, s *sock) ([]byte, string) {
	for {
		typ, msg, err := s.conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return nil, "_timeout"
			}
			return nil, "_read"
		}
		if typ == opText {
			return msg, ""
		}
	}
}

// noteEvent counts a status_presence_event and learns the client's session id from its own join.
func (w *worker) noteEvent(c *client, env *envelope) {
	w.count(CountStatusEvents, 1)
	for _, j := range env.Event.Joins {
		if j.UserID == c.userID && j.SessionID != "" && c.sessionID.Load() == nil {
			c.sessionID.Store(j.SessionID)
		}
	}
}

// prepareFollows picks each client's friends: the next Follow clients of this worker.
func (w *worker) prepareFollows() {
	n := len(w.clients)
	if w.plan.Follow <= 0 || n < 2 {
		return
	}
	for i, c := range w.clients {
		for k := 1; k <= min(w.plan.Follow, n-1); k++ {
			if f := w.clients[(i+k)%n]; f.userID != "" {
				c.friends = append(c.friends, f.userID)
			}
		}
	}
}

// startReader counts s as open and starts its reader, the socket's one goroutine; once the
// worker is stopping it closes s instead.
func (w *worker) startReader(s *sock) {
	if !w.track(s) {
		return
	}
	w.connected.Add(1)
	w.readers.Add(1)
	go w.read(s)
}

// track counts s as open and as its client's socket, so that closeAll closes it. A socket
// that opens once closeAll has begun is closed at once and track reports false.
func (w *worker) track(s *sock) bool {
	w.liveMu.Lock()
	if w.stopping.Load() {
		w.liveMu.Unlock()
		s.conn.CloseNow()
		return false
	}
	w.live[s] = struct{}{}
	w.liveMu.Unlock()
	w.open.Add(1)
	s.c.cur.Store(s)
	return true
}

// read is s's reader: it answers WebSocket pings (coder/websocket does so while a Read is
// pending), times hold pings, counts presence events, and judges the socket's end. In the storm
// scenario it then reconnects the client and goes on reading its new socket.
func (w *worker) read(s *sock) {
	defer w.readers.Done()
	for s != nil {
		err := w.readUntilEnd(s)
		s = w.ended(s, err)
	}
}

func (w *worker) readUntilEnd(s *sock) error {
	for {
		typ, msg, err := s.conn.Read(context.Background())
		if err != nil {
			return err
		}
		if typ != opText {
			continue
		}
		if w.plan.Protocol == ProtocolCentrifugo {
			w.centrifugoPong(s, msg)
			continue
		}
		if bytes.Contains(msg, []byte(`"status_presence_event"`)) {
			var env envelope
			if json.Unmarshal(msg, &env) == nil && env.Event != nil {
				w.noteEvent(s.c, &env)
			}
			continue
		}
		if bytes.Contains(msg, []byte(`"pong"`)) {
			if sent := s.pingSent.Swap(0); sent != 0 {
				w.pongsSeen.Add(1)
				w.record(HistPingRTT, time.Duration(time.Now().UnixNano()-sent))
			}
		}
	}
}

// ended books the end of s and returns the client's next socket to read (storm), or nil.
func (w *worker) ended(s *sock, err error) *sock {
	endAt := time.Now()
	s.conn.CloseNow()
	close(s.done)
	w.open.Add(-1)
	w.liveMu.Lock()
	delete(w.live, s)
	w.liveMu.Unlock()
	if w.stopping.Load() || s.closing.Load() {
		return nil
	}
	code := "none"
	if st := closeStatus(err); st != -1 {
		code = fmt.Sprint(int(st))
	}
	w.dropped.Add(1)
	w.mu.Lock()
	w.closeCodes[code]++
	w.mu.Unlock()
	c := s.c
	switch {
	case w.plan.Scenario == "disconnect" && c.discAt.Load() != 0:
		w.record(HistDisconnect, endAt.Sub(time.Unix(0, c.discAt.Load())))
		w.count(CountDisconnected, 1)
		if code != "4000" {
			w.countErr("disconnect_close_" + code)
		}
		return nil
	case w.plan.Scenario == "storm":
		return w.reconnect(c, endAt)
	}
	w.nErrors.Add(1)
	w.mu.Lock()
	w.errs["dropped"]++
	w.mu.Unlock()
	return nil
}

// addToSlot schedules c's hold pings: clients are spread over PingInterval in pingTick slots.
func (w *worker) addToSlot(c *client) {
	if w.slots == nil {
		return
	}
	w.slotMu.Lock()
	w.slots[w.nextSl] = append(w.slots[w.nextSl], c)
	w.nextSl = (w.nextSl + 1) % len(w.slots)
	w.slotMu.Unlock()
}

// pinger sends every held socket an envelope ping each PingInterval, one slot per tick: the
// clients need no timer or goroutine of their own for it.
func (w *worker) pinger(ctx context.Context) {
	t := time.NewTicker(pingTick)
	defer t.Stop()
	slot := 0
	var batch []*client
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.slotMu.Lock()
		batch = append(batch[:0], w.slots[slot]...)
		w.slotMu.Unlock()
		slot = (slot + 1) % len(w.slots)
		for _, c := range batch {
			if ctx.Err() != nil {
				return
			}
			s := c.cur.Load()
			if s == nil {
				continue
			}
			select {
			case <-s.done:
				continue
			default:
			}
			if s.pingSent.Load() != 0 {
				w.countErr("ping_unanswered") // the previous ping got no pong within the interval
			}
			s.pingSent.Store(time.Now().UnixNano())
			wctx, cancel := context.WithTimeout(ctx, w.plan.Timeout)
			err := s.conn.Write(wctx, holdPing)
			cancel()
			if err == nil {
				w.pingsSent.Add(1)
			}
		}
	}
}

// closeAll closes every open socket with a normal closure, 256 at a time, and waits for the
// readers (and any reconnect in progress, which gives up once stopping is set).
func (w *worker) closeAll() {
	w.liveMu.Lock()
	w.stopping.Store(true)
	socks := make([]*sock, 0, len(w.live))
	for s := range w.live {
		socks = append(socks, s)
	}
	w.liveMu.Unlock()
	sem := make(chan struct{}, 256)
	for _, s := range socks {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if s.conn.Close(closeNormal, "load test done") == nil {
				w.count(CountClosed, 1)
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	done := make(chan struct{})
	go func() { w.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
