package loadtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

	// Churn: Ops sockets are opened at Rate, each closed by the client after Lifetime.
	Ops      int           `json:"ops"`
	Lifetime time.Duration `json:"lifetime"`
	// Status, when set, is each client's status_update right after its first pong; Follow is
	// how many other clients of this worker each client follows (status_follow) after that.
	Status string `json:"status"`
	Follow int    `json:"follow"`
	// Storm: a client whose socket drops reconnects to the next target after a jittered
	// exponential backoff (full jitter over [0, min(BackoffMax, BackoffMin·2^attempt)]), for at
	// most ReconnectFor.
	BackoffMin   time.Duration `json:"backoff_min"`
	BackoffMax   time.Duration `json:"backoff_max"`
	ReconnectFor time.Duration `json:"reconnect_for"`
	// Disconnect: the server API is called on APITarget with HTTPKey; DisconnectBy is
	// "session", "user" or "both" (alternating by client).
	APITarget    string `json:"api_target"`
	HTTPKey      string `json:"http_key"`
	DisconnectBy string `json:"disconnect_by"`
	// Users > 0: the clients share that many accounts (client i is user i mod Users).
	Users int `json:"users"`
	// Protocol is what the sockets speak (ProtocolSessiongate or ProtocolCentrifugo), and
	// CentrifugoSecret the HMAC key the centrifugo protocol signs connection tokens with.
	Protocol         string `json:"protocol"`
	CentrifugoSecret string `json:"centrifugo_secret,omitempty"`
	// ActRate and ActInFlight pace the logout and disconnect calls.
	ActRate     float64 `json:"act_rate"`
	ActInFlight int     `json:"act_in_flight"`
}

// Worker commands, sent by the coordinator one per line.
const (
	cmdStart = "start" // begin the measured phase (ramp, or auth requests)
	cmdAct   = "act"   // logout, disconnect: run the scenario's action on the held sockets
	cmdAbort = "abort" // user-wide disconnect: every call failed, stop waiting for closes
	cmdStop  = "stop"  // close every socket and report
)

// Event is what a worker tells the coordinator, one JSON object per line.
type Event struct {
	Kind     string        `json:"ev"` // "progress", "ready", "ramped", "acted", "result"
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
	Dropped   int64      `json:"dropped"`
	Connect   *Histogram `json:"connect,omitempty"`
}

// Histogram names: the keys of WorkerResult.Hists and Report.Histograms (all nanoseconds).
const (
	HistAuthPrephase  = "auth_prephase"   // pre-phase authenticate
	HistAuth          = "auth"            // auth scenario's measured requests
	HistConnect       = "connect"         // dial + upgrade + token check + first pong
	HistPingRTT       = "ping_rtt"        // envelope ping round trips while holding
	HistClose         = "close"           // churn: the client's close handshake
	HistStatusUpdate  = "status_update"   // status_update → its answer
	HistStatusFollow  = "status_follow"   // status_follow → its answer
	HistLogout        = "logout"          // POST /v2/session/logout
	HistRefused       = "logout_refused"  // logout answered → a socket with its token refused on a target
	HistReconnect     = "reconnect"       // storm: socket lost → connected again elsewhere
	HistDisconnect    = "disconnect"      // server API call → close frame at the client
	HistDisconnectAPI = "disconnect_call" // server API call → its answer
)

// Counter names: the keys of WorkerResult.Counts and Report.Counts.
const (
	CountClosed       = "closed_by_client"     // sockets the client closed (churn lifetime, stop)
	CountStatusEvents = "status_events"        // status_presence_event envelopes received
	CountLoggedOut    = "logged_out"           // logout requests answered 200
	CountRefused      = "refused_after_logout" // socket attempts with a logged-out token refused (401)
	// CountAcceptedAfterLogout is sockets a node still accepted with a logged-out token before
	// it refused it (revocation not there yet); past refusalBound that is an error.
	CountAcceptedAfterLogout = "accepted_after_logout"
	CountReconnected         = "reconnected"           // storm: dropped clients connected again
	CountAttempts            = "reconnect_attempts"    // storm: dials made to reconnect, failures included
	CountDisconnected        = "disconnected"          // disconnect: sockets closed by the server API
	CountDisconnectAck       = "disconnect_acked"      // disconnect: sockets the API calls' answers counted
	CountServerPingsAnswered = "server_pings_answered" // centrifugo: the server's pings answered
)

// WorkerResult is everything a worker measured.
type WorkerResult struct {
	Index       int                   `json:"index"`
	Clients     int                   `json:"clients"`
	Authed      int64                 `json:"authed"`
	Connected   int64                 `json:"connected"`
	Dropped     int64                 `json:"dropped"` // sockets closed by anything but the client
	Errors      map[string]int64      `json:"errors"`
	CloseCodes  map[string]int64      `json:"close_codes"` // of dropped sockets
	Counts      map[string]int64      `json:"counts"`
	Hists       map[string]*Histogram `json:"hists"`
	PingsSent   int64                 `json:"pings_sent"`
	PongsSeen   int64                 `json:"pongs_seen"`
	StartAt     time.Time             `json:"start_at"`     // the measured phase began
	RampedAt    time.Time             `json:"ramped_at"`    // the last connect (or request) finished
	RecoveredAt time.Time             `json:"recovered_at"` // storm: the last reconnect
	RampCPU     float64               `json:"ramp_cpu_seconds"`
	CPUSeconds  float64               `json:"cpu_seconds"`
}

// worker runs one WorkerPlan.
type worker struct {
	plan    WorkerPlan
	emit    func(Event)
	http    *http.Client
	dial    func(ctx context.Context, network, addr string) (net.Conn, error) // the sockets' connections
	authHdr string

	mu          sync.Mutex
	errs        map[string]int64
	closeCodes  map[string]int64
	counts      map[string]int64
	hists       map[string]*Histogram
	recoveredAt time.Time

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
	// holdCtx ends when the worker is told to stop; reconnects and churn closes run under it.
	holdCtx context.Context

	liveMu sync.Mutex
	live   map[*sock]struct{}

	slotMu sync.Mutex
	slots  [][]*client
	nextSl int
}

// RunWorker runs plan: it authenticates its clients (the pre-phase), emits "ready", waits for
// cmdStart, runs the measured phase, emits "ramped", runs the scenario's action on each
// cmdAct (emitting "acted"), waits for cmdStop (or the end of cmds), closes its sockets and
// emits "result". It returns when the result has been emitted; ctx ends it early (the result
// is still emitted).
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
	w := &worker{plan: plan, emit: emit, errs: map[string]int64{}, closeCodes: map[string]int64{}, counts: map[string]int64{},
		hists: map[string]*Histogram{}, live: map[*sock]struct{}{}}
	w.phase.Store("auth")
	w.authHdr = "Basic " + base64.StdEncoding.EncodeToString([]byte(plan.ServerKey+":"))
	var srcN atomic.Uint64
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		// No TCP keepalive: the sockets have WebSocket heartbeats, and enabling it costs four
		// setsockopt calls per connection on the cores the gateway shares.
		d := net.Dialer{Timeout: plan.Timeout, KeepAlive: -1}
		if n := len(plan.SourceIPs); n > 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(plan.SourceIPs[srcN.Add(1)%uint64(n)])}
		}
		return d.DialContext(ctx, network, addr)
	}
	authTr := &http.Transport{DialContext: dialer, MaxIdleConns: plan.InFlight * 2, MaxIdleConnsPerHost: plan.InFlight * 2, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	defer authTr.CloseIdleConnections()
	w.http = &http.Client{Transport: authTr, Timeout: plan.Timeout}
	w.dial = dialer

	cpu0 := processCPUSeconds()
	res := &WorkerResult{Index: plan.Index, Clients: plan.Count}
	defer func() {
		w.mu.Lock()
		res.Authed, res.Connected, res.Dropped = w.authed.Load(), w.connected.Load(), w.dropped.Load()
		res.Errors, res.CloseCodes, res.Counts, res.RecoveredAt = w.errs, w.closeCodes, w.counts, w.recoveredAt
		res.Hists = make(map[string]*Histogram, len(w.hists))
		for k, h := range w.hists {
			res.Hists[k] = h.Clone()
		}
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
		idx := plan.First + i
		w.clients[i] = &client{idx: idx, target: idx % len(plan.Targets), device: deviceID(plan.RunID, idx, plan.Users)}
	}
	w.forEach(ctx, len(w.clients), 0, func(ctx context.Context, i int) {
		c := w.clients[i]
		t0 := time.Now()
		if err := w.login(ctx, c, plan.Targets[0], plan.Create || plan.Scenario == "auth"); err == nil {
			tok, at := c.session()
			c.userID = tokenUserID(tok)
			w.authed.Add(1)
			w.record(HistAuthPrephase, at.Sub(t0))
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
	w.holdCtx = holdCtx
	switch plan.Scenario {
	case "auth":
		w.phase.Store("auth-bench")
		w.forEach(ctx, plan.Count, plan.Rate, func(ctx context.Context, i int) {
			c := w.clients[i%len(w.clients)]
			t0 := time.Now()
			if _, err := w.authenticate(ctx, plan.Targets[0], c.device, false); err == nil {
				w.record(HistAuth, time.Since(t0))
			}
		})
		res.RampedAt = time.Now()
		res.RampCPU = processCPUSeconds() - rampCPU0
		w.phase.Store("done")
		emit(Event{Kind: "ramped"})
		return nil
	case "churn":
		w.phase.Store("churn")
		w.churn(ctx)
	default: // hold, connect, logout, storm, disconnect
		w.phase.Store("ramp")
		if plan.PingInterval > 0 {
			w.slots = make([][]*client, max(1, int(plan.PingInterval/pingTick)))
			go w.pinger(holdCtx)
		}
		w.prepareFollows()
		w.forEach(ctx, len(w.clients), plan.Rate, func(ctx context.Context, i int) {
			c := w.clients[i]
			if s := w.connect(ctx, c); s != nil {
				w.addToSlot(c)
				w.startReader(s)
			}
		})
	}
	res.RampedAt = time.Now()
	res.RampCPU = processCPUSeconds() - rampCPU0
	w.phase.Store("hold")
	emit(Event{Kind: "ramped"})
	for stop := false; !stop; {
		cmd, ok := nextCmd(ctx, cmds)
		if !ok || cmd == cmdStop {
			break
		}
		if name, arg, _ := strings.Cut(cmd, " "); name == cmdAct {
			w.phase.Store("act")
			stop = w.act(ctx, arg, cmds)
			w.phase.Store("hold")
			emit(Event{Kind: "acted"})
		}
	}
	w.phase.Store("close")
	endHold()
	w.closeAll()
	w.phase.Store("done")
	return nil
}

// act runs the scenario's action on the held sockets (cmdAct, with its argument). It reports
// true when cmdStop (or the end of cmds) came meanwhile.
func (w *worker) act(ctx context.Context, arg string, cmds <-chan string) bool {
	switch {
	case w.plan.Scenario == "logout":
		w.logoutAll(ctx)
	case w.plan.Scenario == "disconnect" && w.plan.DisconnectBy == "user-wide":
		callAt, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			w.countErr("bad_act_command")
			return false
		}
		return w.awaitUserWide(ctx, time.Unix(0, callAt), cmds)
	case w.plan.Scenario == "disconnect":
		w.disconnectAll(ctx)
	}
	return false
}

// deviceID is client idx's device: its own, or with users > 0 that of its user (idx mod
// users), so that clients share accounts.
func deviceID(runID string, idx, users int) string {
	if users > 0 {
		return fmt.Sprintf("lt-%s-u%08d", runID, idx%users)
	}
	return fmt.Sprintf("lt-%s-%08d", runID, idx)
}

// waitCmd waits for cmd; it reports false if ctx ended or cmds closed first.
func waitCmd(ctx context.Context, cmds <-chan string, cmd string) bool {
	for {
		c, ok := nextCmd(ctx, cmds)
		if !ok {
			return false
		}
		if c == cmd {
			return true
		}
	}
}

// nextCmd is the next command; false when ctx ended or cmds closed.
func nextCmd(ctx context.Context, cmds <-chan string) (string, bool) {
	select {
	case <-ctx.Done():
		return "", false
	case c, ok := <-cmds:
		return c, ok
	}
}

// forEach runs fn for 0..n-1 on plan.InFlight goroutines (so at most that many at once; the
// goroutines and their grown stacks are reused) and, when rate > 0, starts call i no earlier
// than i/rate seconds after the start. It returns when every call has returned.
func (w *worker) forEach(ctx context.Context, n int, rate float64, fn func(context.Context, int)) {
	w.forEachN(ctx, n, rate, w.plan.InFlight, fn)
}

// forEachN is forEach on par goroutines.
func (w *worker) forEachN(ctx context.Context, n int, rate float64, par int, fn func(context.Context, int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(max(par, 1), n) {
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

func (w *worker) count(name string, n int64) {
	w.mu.Lock()
	w.counts[name] += n
	w.mu.Unlock()
}

// record adds d to the histogram name.
func (w *worker) record(name string, d time.Duration) {
	w.mu.Lock()
	h := w.hists[name]
	if h == nil {
		h = &Histogram{}
		w.hists[name] = h
	}
	h.RecordDuration(d)
	w.mu.Unlock()
}

// progressLoop emits a progress event every sampleEvery.
func (w *worker) progressLoop(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
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
	name := HistConnect
	if w.plan.Scenario == "auth" {
		name = HistAuth
	}
	w.mu.Lock()
	h := &Histogram{}
	if src := w.hists[name]; src != nil {
		h = src.Clone()
	}
	w.mu.Unlock()
	return &Progress{Phase: w.phase.Load().(string), Authed: w.authed.Load(), Connected: w.connected.Load(),
		Open: w.open.Load(), Errors: w.nErrors.Load(), Dropped: w.dropped.Load(), Connect: h}
}
