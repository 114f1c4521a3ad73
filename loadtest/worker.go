package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WorkerPlan is one worker's share of a run: the clients [First, First+Count) of the run, at
// its share of the rate and of the connects in flight.
type WorkerPlan struct {
	Scenario     string        `json:"scenario"`
	RunID        string        `json:"run_id"`
	Index        int           `json:"index"`
	Targets      []string      `json:"targets"` // API base URLs, http(s)://host:port
	First        int           `json:"first"`
	Count        int           `json:"count"`
	Rate         float64       `json:"rate"` // connects (or auth requests) per second; 0: as fast as InFlight allows
	InFlight     int           `json:"in_flight"`
	PingInterval time.Duration `json:"ping_interval"` // envelope ping period while holding; 0: none
	Timeout      time.Duration `json:"timeout"`       // per request / per connect (upgrade + first pong)
	ServerKey    string        `json:"server_key"`
	Create       bool          `json:"create"`
	SourceIPs    []string      `json:"source_ips"`    // local addresses to dial from, round robin
	TokenMaxAge  time.Duration `json:"token_max_age"` // re-authenticate before connecting with an older token
	Devices      int           `json:"devices"`       // auth scenario: distinct existing devices
	Deadline     time.Time     `json:"deadline"`      // the worker gives up and reports by then
}

// Worker commands, sent by the coordinator one per line.
const (
	cmdStart = "start" // begin the measured phase (ramp, or auth requests)
	cmdStop  = "stop"  // close every socket and report
)

// Event is what a worker tells the coordinator, one JSON object per line.
type Event struct {
	Kind     string        `json:"ev"` // "progress", "ready", "ramped", "result"
	Progress *Progress     `json:"progress,omitempty"`
	Result   *WorkerResult `json:"result,omitempty"`
}

// Progress is a worker's running counts.
type Progress struct {
	Phase     string     `json:"phase"`
	Authed    int64      `json:"authed"`
	Connected int64      `json:"connected"`
	Open      int64      `json:"open"`
	Errors    int64      `json:"errors"`
	Connect   *Histogram `json:"connect,omitempty"`
}

// WorkerResult is everything a worker measured.
type WorkerResult struct {
	Index      int              `json:"index"`
	Clients    int              `json:"clients"`
	Authed     int64            `json:"authed"`
	Connected  int64            `json:"connected"`
	Dropped    int64            `json:"dropped"` // sockets closed by anything but the run's stop
	Errors     map[string]int64 `json:"errors"`
	CloseCodes map[string]int64 `json:"close_codes"` // of dropped sockets
	Auth       *Histogram       `json:"auth"`        // pre-phase authenticate latency (ns)
	AuthBench  *Histogram       `json:"auth_bench"`  // auth scenario's measured requests (ns)
	Connect    *Histogram       `json:"connect"`     // upgrade + token check + first pong (ns)
	PingRTT    *Histogram       `json:"ping_rtt"`    // envelope ping round trips while holding (ns)
	PingsSent  int64            `json:"pings_sent"`
	PongsSeen  int64            `json:"pongs_seen"`
	StartAt    time.Time        `json:"start_at"`  // the measured phase began
	RampedAt   time.Time        `json:"ramped_at"` // the last connect (or request) finished
	RampCPU    float64          `json:"ramp_cpu_seconds"`
	CPUSeconds float64          `json:"cpu_seconds"`
}

// client is one virtual game client.
type client struct {
	idx      int
	device   string
	token    string
	tokenAt  time.Time
	conn     *websocket.Conn
	pingSent atomic.Int64 // unix nanos of the outstanding hold ping, 0 when none
	done     chan struct{}
}

// worker runs one WorkerPlan.
type worker struct {
	plan    WorkerPlan
	emit    func(Event)
	http    *http.Client
	dial    *http.Client
	authHdr string

	mu         sync.Mutex
	errs       map[string]int64
	closeCodes map[string]int64
	authH      Histogram
	benchH     Histogram
	connectH   Histogram
	rttH       Histogram

	phase     atomic.Value // string
	authed    atomic.Int64
	connected atomic.Int64
	open      atomic.Int64
	nErrors   atomic.Int64
	dropped   atomic.Int64
	pingsSent atomic.Int64
	pongsSeen atomic.Int64
	stopping  atomic.Bool

	clients []*client
	readers sync.WaitGroup

	slotMu sync.Mutex
	slots  [][]*client
	nextSl int
}

const pingTick = 100 * time.Millisecond

var (
	firstPing = []byte(`{"cid":"1","ping":{}}`)
	holdPing  = []byte(`{"cid":"2","ping":{}}`)
)

// RunWorker runs plan: it authenticates its clients (the pre-phase), emits "ready", waits for
// cmdStart, runs the measured phase, emits "ramped", waits for cmdStop (or the end of cmds),
// closes its sockets and emits "result". It returns when the result has been emitted; ctx ends
// it early (the result is still emitted).
func RunWorker(ctx context.Context, plan WorkerPlan, cmds <-chan string, emit func(Event)) error {
	if plan.Count < 0 || plan.InFlight < 1 || len(plan.Targets) == 0 {
		return fmt.Errorf("invalid worker plan: count %d, in flight %d, %d targets", plan.Count, plan.InFlight, len(plan.Targets))
	}
	if plan.Timeout <= 0 {
		plan.Timeout = 10 * time.Second
	}
	if !plan.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, plan.Deadline)
		defer cancel()
	}
	w := &worker{plan: plan, emit: emit, errs: map[string]int64{}, closeCodes: map[string]int64{}}
	w.phase.Store("auth")
	w.authHdr = "Basic " + base64.StdEncoding.EncodeToString([]byte(plan.ServerKey+":"))
	var srcN atomic.Uint64
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: plan.Timeout}
		if n := len(plan.SourceIPs); n > 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(plan.SourceIPs[srcN.Add(1)%uint64(n)])}
		}
		return d.DialContext(ctx, network, addr)
	}
	authTr := &http.Transport{DialContext: dialer, MaxIdleConns: plan.InFlight * 2, MaxIdleConnsPerHost: plan.InFlight * 2, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	defer authTr.CloseIdleConnections()
	w.http = &http.Client{Transport: authTr, Timeout: plan.Timeout}
	w.dial = &http.Client{Transport: &upgradeTransport{dial: dialer}}

	cpu0 := processCPUSeconds()
	res := &WorkerResult{Index: plan.Index, Clients: plan.Count}
	defer func() {
		w.mu.Lock()
		res.Authed, res.Connected, res.Dropped = w.authed.Load(), w.connected.Load(), w.dropped.Load()
		res.Errors, res.CloseCodes = w.errs, w.closeCodes
		res.Auth, res.AuthBench, res.Connect, res.PingRTT = w.authH.Clone(), w.benchH.Clone(), w.connectH.Clone(), w.rttH.Clone()
		w.mu.Unlock()
		res.PingsSent, res.PongsSeen = w.pingsSent.Load(), w.pongsSeen.Load()
		res.CPUSeconds = processCPUSeconds() - cpu0
		emit(Event{Kind: "result", Result: res})
	}()

	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	defer func() { stopProgress(); <-progDone }() // runs before the result is emitted
	go func() { defer close(progDone); w.progressLoop(progCtx) }()

	// Pre-phase: authenticate every client (the auth scenario: create its devices).
	nAuth := plan.Count
	if plan.Scenario == "auth" {
		nAuth = min(plan.Devices, plan.Count)
	}
	w.clients = make([]*client, nAuth)
	for i := range w.clients {
		w.clients[i] = &client{idx: plan.First + i, device: fmt.Sprintf("lt-%s-%08d", plan.RunID, plan.First+i), done: make(chan struct{})}
	}
	w.forEach(ctx, len(w.clients), 0, func(ctx context.Context, i int) {
		c := w.clients[i]
		t0 := time.Now()
		if tok, err := w.authenticate(ctx, c.device, plan.Create || plan.Scenario == "auth"); err == nil {
			c.token, c.tokenAt = tok, time.Now()
			w.authed.Add(1)
			w.mu.Lock()
			w.authH.RecordDuration(c.tokenAt.Sub(t0))
			w.mu.Unlock()
		}
	})
	emit(Event{Kind: "ready"})
	if !waitCmd(ctx, cmds, cmdStart) {
		return ctx.Err()
	}

	// Measured phase.
	res.StartAt = time.Now()
	rampCPU0 := processCPUSeconds()
	holdCtx, endHold := context.WithCancel(ctx)
	defer endHold()
	switch plan.Scenario {
	case "auth":
		w.phase.Store("auth-bench")
		w.forEach(ctx, plan.Count, plan.Rate, func(ctx context.Context, i int) {
			c := w.clients[i%len(w.clients)]
			t0 := time.Now()
			if _, err := w.authenticate(ctx, c.device, false); err == nil {
				w.mu.Lock()
				w.benchH.RecordDuration(time.Since(t0))
				w.mu.Unlock()
			}
		})
		res.RampedAt = time.Now()
		res.RampCPU = processCPUSeconds() - rampCPU0
		w.phase.Store("done")
		emit(Event{Kind: "ramped"})
		return nil
	default: // hold, connect
		w.phase.Store("ramp")
		if plan.PingInterval > 0 {
			w.slots = make([][]*client, max(1, int(plan.PingInterval/pingTick)))
			go w.pinger(holdCtx)
		}
		w.forEach(ctx, len(w.clients), plan.Rate, func(ctx context.Context, i int) {
			w.connect(ctx, w.clients[i])
		})
		res.RampedAt = time.Now()
		res.RampCPU = processCPUSeconds() - rampCPU0
		w.phase.Store("hold")
		emit(Event{Kind: "ramped"})
	}
	waitCmd(ctx, cmds, cmdStop)
	w.phase.Store("close")
	endHold()
	w.closeAll()
	w.phase.Store("done")
	return nil
}

// waitCmd waits for cmd; it reports false if ctx ended or cmds closed first.
func waitCmd(ctx context.Context, cmds <-chan string, cmd string) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case c, ok := <-cmds:
			if !ok {
				return false
			}
			if c == cmd {
				return true
			}
		}
	}
}

// forEach runs fn for 0..n-1 on plan.InFlight goroutines (so at most that many at once; the
// goroutines and their grown stacks are reused) and, when rate > 0, starts call i no earlier
// than i/rate seconds after the start. It returns when every call has returned.
func (w *worker) forEach(ctx context.Context, n int, rate float64, fn func(context.Context, int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(w.plan.InFlight, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var t *time.Timer
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if rate > 0 {
					if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
						if t == nil {
							t = time.NewTimer(d)
						} else {
							t.Reset(d)
						}
						select {
						case <-ctx.Done():
							return
						case <-t.C:
						}
					}
				}
				fn(ctx, i)
			}
		}()
	}
	wg.Wait()
}

func (w *worker) countErr(kind string) {
	w.nErrors.Add(1)
	w.mu.Lock()
	w.errs[kind]++
	w.mu.Unlock()
}

// authenticate POSTs a device authentication and returns the session token.
func (w *worker) authenticate(ctx context.Context, device string, create bool) (string, error) {
	target := w.plan.Targets[0]
	u := target + "/v2/account/authenticate/device?create=" + fmt.Sprint(create)
	body, _ := json.Marshal(map[string]string{"id": device})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		w.countErr("auth_request")
		return "", err
	}
	req.Header.Set("Authorization", w.authHdr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.countErr("auth_transport")
		}
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	resp.Body.Close()
	if err != nil {
		w.countErr("auth_transport")
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		w.countErr(fmt.Sprintf("auth_http_%d", resp.StatusCode))
		return "", fmt.Errorf("authenticate: %s", resp.Status)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		w.countErr("auth_bad_response")
		return "", errors.New("authenticate: no token in response")
	}
	return out.Token, nil
}

// wsURL is target's socket URL for token.
func wsURL(target, token string) string {
	u := strings.Replace(strings.Replace(target, "https://", "wss://", 1), "http://", "ws://", 1)
	return u + "/ws?format=json&token=" + url.QueryEscape(token)
}

// connect opens c's socket, sends the first envelope ping and waits for its pong (the connect
// time), then keeps reading on this goroutine until the socket closes.
func (w *worker) connect(ctx context.Context, c *client) {
	if c.token == "" {
		return // the pre-phase could not authenticate it (counted there)
	}
	if w.plan.TokenMaxAge > 0 && time.Since(c.tokenAt) > w.plan.TokenMaxAge {
		tok, err := w.authenticate(ctx, c.device, w.plan.Create)
		if err != nil {
			return
		}
		c.token, c.tokenAt = tok, time.Now()
	}
	target := w.plan.Targets[c.idx%len(w.plan.Targets)]
	cctx, cancel := context.WithTimeout(ctx, w.plan.Timeout)
	defer cancel()
	t0 := time.Now()
	conn, resp, err := websocket.Dial(cctx, wsURL(target, c.token), &websocket.DialOptions{HTTPClient: w.dial, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case resp != nil:
			w.countErr(fmt.Sprintf("dial_http_%d", resp.StatusCode))
		case cctx.Err() != nil:
			w.countErr("dial_timeout")
		default:
			w.countErr("dial_error")
		}
		return
	}
	fail := func(kind string) {
		if ctx.Err() == nil {
			w.countErr(kind)
		}
		conn.CloseNow()
	}
	if err := conn.Write(cctx, websocket.MessageText, firstPing); err != nil {
		fail("first_ping_write")
		return
	}
	for {
		typ, msg, err := conn.Read(cctx)
		if err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				fail("first_pong_timeout")
			} else {
				fail("first_pong_read")
			}
			return
		}
		if typ == websocket.MessageText && bytes.Contains(msg, []byte(`"pong"`)) {
			break
		}
		if bytes.Contains(msg, []byte(`"error"`)) {
			fail("envelope_error")
			return
		}
	}
	d := time.Since(t0)
	cancel()
	c.conn = conn
	w.mu.Lock()
	w.connectH.RecordDuration(d)
	w.mu.Unlock()
	w.connected.Add(1)
	w.open.Add(1)
	w.addToSlot(c)
	w.readers.Add(1)
	go w.read(c) // the socket's one goroutine; this one returns to the ramp
}

// read is c's reader while holding: it answers WebSocket pings (coder/websocket does so while
// a Read is pending), times hold pings, and counts the socket's end.
func (w *worker) read(c *client) {
	defer w.readers.Done()
	defer close(c.done)
	defer w.open.Add(-1)
	for {
		typ, msg, err := c.conn.Read(context.Background())
		if err != nil {
			if !w.stopping.Load() {
				w.dropped.Add(1)
				w.nErrors.Add(1)
				code := "none"
				if s := websocket.CloseStatus(err); s != -1 {
					code = fmt.Sprint(int(s))
				}
				w.mu.Lock()
				w.closeCodes[code]++
				w.errs["dropped"]++
				w.mu.Unlock()
			}
			c.conn.CloseNow()
			return
		}
		if typ == websocket.MessageText && bytes.Contains(msg, []byte(`"pong"`)) {
			if sent := c.pingSent.Swap(0); sent != 0 {
				w.pongsSeen.Add(1)
				rtt := time.Now().UnixNano() - sent
				w.mu.Lock()
				w.rttH.Record(rtt)
				w.mu.Unlock()
			}
		}
	}
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
			select {
			case <-c.done:
				continue
			default:
			}
			if c.pingSent.Load() != 0 {
				w.countErr("ping_unanswered") // the previous ping got no pong within the interval
			}
			c.pingSent.Store(time.Now().UnixNano())
			wctx, cancel := context.WithTimeout(ctx, w.plan.Timeout)
			err := c.conn.Write(wctx, websocket.MessageText, holdPing)
			cancel()
			if err == nil {
				w.pingsSent.Add(1)
			}
		}
	}
}

// closeAll closes every open socket with a normal closure, 256 at a time, and waits for the
// readers.
func (w *worker) closeAll() {
	w.stopping.Store(true)
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, c := range w.clients {
		if c.conn == nil {
			continue
		}
		select {
		case <-c.done:
			continue
		default:
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = c.conn.Close(websocket.StatusNormalClosure, "load test done")
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { w.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// progressLoop emits a progress event every 500ms.
func (w *worker) progressLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.emit(Event{Kind: "progress", Progress: w.progress()})
	}
}

func (w *worker) progress() *Progress {
	w.mu.Lock()
	h := w.connectH.Clone()
	if w.plan.Scenario == "auth" {
		h = w.benchH.Clone()
	}
	w.mu.Unlock()
	return &Progress{Phase: w.phase.Load().(string), Authed: w.authed.Load(), Connected: w.connected.Load(),
		Open: w.open.Load(), Errors: w.nErrors.Load(), Connect: h}
}
