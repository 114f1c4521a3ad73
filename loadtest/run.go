package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is one run of a scenario.
type Config struct {
	Scenario string // one of Scenarios
	// Targets are the nodes' API base URLs (http://127.0.0.1:7350); clients spread over them.
	Targets []string
	// MetricsURLs are the nodes' /metrics URLs (any order, any number; empty: no server figures).
	MetricsURLs []string
	// Clients is the number of sockets (hold, connect) or of authenticate requests (auth).
	Clients int
	// Rate caps connects (or auth requests) per second over the whole run; 0: no cap.
	Rate float64
	// InFlight is how many connects (or requests) run at once over the whole run.
	InFlight int
	// Hold is how long the sockets stay open after the ramp (hold).
	Hold time.Duration
	// Settle is when, after the ramp, the server's memory is read (hold; DESIGN: 30s). The CPU
	// of idle holding is measured from then to the end of Hold.
	Settle time.Duration
	// PingInterval is each client's envelope ping period while holding; 0 disables.
	PingInterval time.Duration
	// Timeout bounds each request and each connect (upgrade + first pong).
	Timeout time.Duration
	// PhaseTimeout bounds the pre-phase and the ramp each.
	PhaseTimeout time.Duration
	ServerKey    string
	Create       bool
	// Devices is the number of distinct existing devices the auth scenario authenticates.
	Devices int
	// SourceIPs are the local addresses clients dial from, round robin; empty: the system's choice.
	SourceIPs []string
	// TokenMaxAge: a client whose pre-phase token is older re-authenticates before connecting.
	TokenMaxAge time.Duration
	// Workers is the number of client processes; 1 runs the clients in this process.
	Workers int
	// WorkerCommand builds the command of worker process i (Workers > 1); it must run
	// ServeWorker on its stdin and stdout.
	WorkerCommand func(i int) *exec.Cmd
	// AllowRemote permits targets outside 127.0.0.0/8 (and ::1).
	AllowRemote bool
	// Progress, when set, receives a one-line status about every second.
	Progress func(line string)

	// Duration is how long churn opens sockets at Rate (Rate × Duration sockets in all);
	// Lifetime is how long each of them stays open (default 1s).
	Duration time.Duration
	Lifetime time.Duration
	// Status, when set, is sent as each client's status_update after it connects; Follow is
	// how many other clients each client follows with status_follow (friends within a worker).
	Status string
	Follow int
	// StormPID is the gateway process the storm scenario stops StormAfter (default 1s) after
	// the ramp, with StormSignal: "kill" (SIGKILL, default) or "term" (SIGTERM: a graceful
	// drain). Hold is then the window in which its clients reconnect to the other targets,
	// with a full-jitter exponential backoff from BackoffMin (100ms) to BackoffMax (5s),
	// giving up after ReconnectFor (30s).
	StormPID     int
	StormSignal  string
	StormAfter   time.Duration
	BackoffMin   time.Duration
	BackoffMax   time.Duration
	ReconnectFor time.Duration
	// APITarget is the node whose server API the disconnect scenario calls (default: the last
	// target, so that with several targets the call crosses nodes), with HTTPKey as Bearer
	// (default "defaulthttpkey"); DisconnectBy is "session", "user" or "both" (default:
	// alternate by client).
	APITarget    string
	HTTPKey      string
	DisconnectBy string
	// Users > 0 makes the clients share that many accounts (client i authenticates user i mod
	// Users' device, each with a token of its own); 0: an account per client.
	Users int
	// ActRate and ActInFlight pace the logout and disconnect actions: calls per second over the
	// run and calls at once (default: Rate and InFlight). One call at a time at a modest rate
	// measures an idle cluster; the defaults measure a burst.
	ActRate     float64
	ActInFlight int
	// ScrapeInterval is how often the timeline reads the targets' /metrics (RSS and sockets
	// over time); 0 means 2s, negative disables. Client counts are sampled every 250ms.
	ScrapeInterval time.Duration
	// Protocol is what the sockets speak: ProtocolSessiongate (default) or ProtocolCentrifugo,
	// a baseline for the connect and hold scenarios (centrifugo.go), whose connection tokens
	// are signed with CentrifugoSecret, the server's token HMAC secret.
	Protocol         string
	CentrifugoSecret string
}

// Scenarios are the scenarios Run knows.
var Scenarios = []string{"hold", "connect", "auth", "churn", "logout", "storm", "disconnect"}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("unknown scenario %q (%s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if err := c.validateScenario(); err != nil {
		return err
	}
	if err := c.validateProtocol(); err != nil {
		return err
	}
	if len(c.Targets) == 0 {
		return errors.New("at least one target is required")
	}
	if c.Clients < 1 {
		return errors.New("clients must be at least 1")
	}
	if c.InFlight < 1 {
		return errors.New("in flight must be at least 1")
	}
	if c.Workers < 1 {
		c.Workers = 1
	}
	if c.Workers > c.Clients {
		c.Workers = c.Clients
	}
	if c.InFlight < c.Workers {
		return fmt.Errorf("in flight (%d) must be at least the number of workers (%d)", c.InFlight, c.Workers)
	}
	if c.Workers > 1 && c.WorkerCommand == nil {
		return errors.New("workers > 1 needs a worker command")
	}
	if c.Rate < 0 || c.Hold < 0 || c.Settle < 0 || c.PingInterval < 0 || c.Follow < 0 {
		return errors.New("rate, hold, settle, ping interval and follow must not be negative")
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PhaseTimeout <= 0 {
		c.PhaseTimeout = 5 * time.Minute
	}
	if c.ServerKey == "" {
		c.ServerKey = "defaultkey"
	}
	if c.Scenario == "auth" && c.Devices < 1 {
		c.Devices = min(c.Clients, 1000)
	}
	for i, t := range c.Targets {
		t = strings.TrimSuffix(t, "/")
		if !strings.Contains(t, "://") {
			t = "http://" + t
		}
		c.Targets[i] = t
		if err := checkTarget(t, c.AllowRemote); err != nil {
			return err
		}
	}
	if c.Scenario == "disconnect" {
		if c.APITarget == "" {
			c.APITarget = c.Targets[len(c.Targets)-1]
		}
		c.APITarget = strings.TrimSuffix(c.APITarget, "/")
		if !strings.Contains(c.APITarget, "://") {
			c.APITarget = "http://" + c.APITarget
		}
		if err := checkTarget(c.APITarget, c.AllowRemote); err != nil {
			return err
		}
	}
	for i, m := range c.MetricsURLs {
		if !strings.Contains(m, "://") {
			m = "http://" + m
		}
		if u, err := url.Parse(m); err == nil && (u.Path == "" || u.Path == "/") {
			m = strings.TrimSuffix(m, "/") + "/metrics"
		}
		c.MetricsURLs[i] = m
		if err := checkTarget(m, c.AllowRemote); err != nil {
			return err
		}
	}
	for _, ip := range c.SourceIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("source address %q is not an IP", ip)
		}
	}
	return nil
}

// checkTarget refuses URLs whose host is not a loopback address unless allowRemote.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("target %q: want http(s)://host:port", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.LookupIP(host)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("target %q: cannot resolve %s", raw, host)
		}
		ips = addrs
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("target %q is not on loopback (127.0.0.0/8); pass --allow-remote to load a remote host", raw)
		}
	}
	return nil
}

// SourceRange returns n loopback source addresses 127.0.0.2 .. 127.0.0.(n+1).
func SourceRange(n int) []string {
	out := make([]string, 0, n)
	for i := 0; i < n && i < 250; i++ {
		out = append(out, fmt.Sprintf("127.0.0.%d", i+2))
	}
	return out
}

// workerHandle is a running worker, in this process or another.
type workerHandle struct {
	cmds   chan string
	events chan Event
	done   chan error
}

// Run runs the scenario described by cfg and returns its report. It stops by itself: every
// phase is bounded. Cancelling ctx ends the run early with whatever was measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	runID := make([]byte, 4)
	_, _ = rand.Read(runID)
	if !cfg.keepsHold() {
		cfg.Hold, cfg.Settle, cfg.PingInterval = 0, 0, 0
	}
	if cfg.Scenario != "hold" {
		cfg.Settle = 0
	}
	if cfg.Scenario == "disconnect" {
		cfg.Hold = 0 // the sockets end with the action
	}
	ops := 0
	if cfg.Scenario == "churn" {
		ops = cfg.churnOps()
	}
	rep := &Report{Scenario: cfg.Scenario, Protocol: cfg.Protocol, RunID: hex.EncodeToString(runID), Started: time.Now().UTC(), Clients: cfg.Clients,
		Rate: cfg.Rate, InFlight: cfg.InFlight, Workers: cfg.Workers, Targets: cfg.Targets, PingInterval: cfg.PingInterval.String(),
		Hold: cfg.Hold.String(), Settle: cfg.Settle.String(), Ops: ops, Lifetime: cfg.Lifetime.String(), Status: cfg.Status,
		Follow: cfg.Follow, StormSignal: cfg.StormSignal, Users: cfg.Users, Errors: map[string]int64{}, CloseCodes: map[string]int64{}}
	settle := min(cfg.Settle, cfg.Hold)
	deadline := time.Now().Add(3*cfg.PhaseTimeout + cfg.Hold + cfg.Duration + cfg.Lifetime + cfg.StormAfter + time.Minute)

	// Plans: clients and in-flight slots split as evenly as possible.
	handles := make([]*workerHandle, cfg.Workers)
	for i := range handles {
		first := cfg.Clients * i / cfg.Workers
		plan := WorkerPlan{
			Scenario: cfg.Scenario, RunID: rep.RunID, Index: i, Targets: cfg.Targets,
			First: first, Count: cfg.Clients*(i+1)/cfg.Workers - first,
			Rate: cfg.Rate / float64(cfg.Workers), InFlight: cfg.InFlight*(i+1)/cfg.Workers - cfg.InFlight*i/cfg.Workers,
			PingInterval: cfg.PingInterval, Timeout: cfg.Timeout, ServerKey: cfg.ServerKey, Create: cfg.Create,
			SourceIPs: cfg.SourceIPs, TokenMaxAge: cfg.TokenMaxAge, Deadline: deadline,
			Devices: cfg.Devices*(i+1)/cfg.Workers - cfg.Devices*i/cfg.Workers,
			Ops:     ops*(i+1)/cfg.Workers - ops*i/cfg.Workers, Lifetime: cfg.Lifetime, Status: cfg.Status, Follow: cfg.Follow,
			BackoffMin: cfg.BackoffMin, BackoffMax: cfg.BackoffMax, ReconnectFor: cfg.ReconnectFor,
			APITarget: cfg.APITarget, HTTPKey: cfg.HTTPKey, DisconnectBy: cfg.DisconnectBy,
			Users: cfg.Users, Protocol: cfg.Protocol, CentrifugoSecret: cfg.CentrifugoSecret,
			ActRate:     cfg.ActRate / float64(cfg.Workers),
			ActInFlight: max(1, cfg.ActInFlight*(i+1)/cfg.Workers-cfg.ActInFlight*i/cfg.Workers),
		}
		if cfg.Scenario == "auth" {
			plan.Devices = max(plan.Devices, 1)
		}
		h, err := startWorker(ctx, cfg, plan)
		if err != nil {
			for _, h := range handles[:i] {
				close(h.cmds)
			}
			return nil, err
		}
		handles[i] = h
	}

	// Fan in events.
	var mu sync.Mutex
	progress := make([]*Progress, len(handles))
	results := make([]*WorkerResult, len(handles))
	phaseCh := make(chan string, 4*len(handles))
	var fan sync.WaitGroup
	for i, h := range handles {
		fan.Add(1)
		go func() {
			defer fan.Done()
			for ev := range h.events {
				switch ev.Kind {
				case "progress":
					mu.Lock()
					progress[i] = ev.Progress
					mu.Unlock()
				case "ready", "ramped", "acted":
					phaseCh <- ev.Kind
				case "result":
					mu.Lock()
					results[i] = ev.Result
					mu.Unlock()
				}
			}
		}()
	}
	progCtx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	tl := &timeline{start: time.Now()}
	var samplers sync.WaitGroup
	samplers.Add(1)
	go func() { defer samplers.Done(); progressLoop(progCtx, cfg, &mu, progress, tl) }()
	if len(cfg.MetricsURLs) > 0 && cfg.ScrapeInterval >= 0 {
		samplers.Add(1)
		go func() { defer samplers.Done(); tl.scrapeLoop(progCtx, cfg) }()
	}
	waitAll := func(kind string, timeout time.Duration) error {
		t := time.NewTimer(timeout)
		defer t.Stop()
		for n := 0; n < len(handles); {
			select {
			case k := <-phaseCh:
				if k == kind {
					n++
				}
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return fmt.Errorf("workers not %s after %v", kind, timeout)
			}
		}
		return nil
	}
	send := func(cmd string) {
		for _, h := range handles {
			select {
			case h.cmds <- cmd:
			default:
			}
		}
	}
	metricsClient := &http.Client{Timeout: 10 * time.Second}
	defer metricsClient.CloseIdleConnections()
	scrape := func(label string) {
		if len(cfg.MetricsURLs) == 0 {
			return
		}
		ss := make([]*Scrape, len(cfg.MetricsURLs))
		for i, u := range cfg.MetricsURLs {
			s, err := scrapeMetrics(context.WithoutCancel(ctx), metricsClient, u)
			if err != nil {
				if cfg.Scenario != "storm" {
					rep.Notes = append(rep.Notes, fmt.Sprintf("scrape %s (%s): %v", label, u, err))
					return
				}
				// The stopped node does not answer: the sum is over the others.
				rep.Notes = append(rep.Notes, fmt.Sprintf("scrape %s: %s did not answer", label, u))
			}
			ss[i] = s
		}
		rep.Scrapes = append(rep.Scrapes, LabeledScrape{Label: label, Nodes: ss, Sum: sumScrapes(ss)})
	}

	var runErr error
	if runErr = waitAll("ready", cfg.PhaseTimeout); runErr == nil {
		scrape("before")
		rampStart := time.Now()
		send(cmdStart)
		runErr = waitAll("ramped", cfg.PhaseTimeout)
		rep.RampSeconds = time.Since(rampStart).Seconds()
		scrape("ramped")
		if runErr == nil {
			runErr = afterRamp(ctx, cfg, rep, rampStart, settle, scrape, send, waitAll)
		}
	}
	send(cmdStop)
	for _, h := range handles {
		close(h.cmds)
	}
	for _, h := range handles {
		select {
		case err := <-h.done:
			if err != nil && runErr == nil && ctx.Err() == nil {
				runErr = err
			}
		case <-time.After(time.Minute):
			rep.Notes = append(rep.Notes, "a worker did not finish within a minute of stop")
		}
	}
	fan.Wait()
	stopProg()
	samplers.Wait()
	rep.TimelineStart, rep.Timeline, rep.ServerTimeline = tl.start, tl.samples, tl.server
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: "+ctx.Err().Error())
	}
	if rep.coordinator != nil {
		results = append(results, rep.coordinator)
	}
	rep.finish(results)
	return rep, runErr
}

// afterRamp runs the scenario's part after the ramp: the hold's settle and end readings, the
// logout and disconnect actions, the storm's stop of a node and its window.
func afterRamp(ctx context.Context, cfg Config, rep *Report, rampStart time.Time, settle time.Duration,
	scrape func(string), send func(string), waitAll func(string, time.Duration) error) error {
	switch cfg.Scenario {
	case "hold":
		if cfg.Hold > 0 {
			sleepCtx(ctx, time.Until(rampStart.Add(time.Duration(rep.RampSeconds*float64(time.Second))).Add(settle)))
			scrape("settled")
			if cfg.Hold > settle {
				sleepCtx(ctx, cfg.Hold-settle)
				scrape("end")
			}
		}
	case "logout", "disconnect":
		actStart := time.Now()
		var err error
		if cfg.Scenario == "disconnect" && cfg.DisconnectBy == "user-wide" {
			err = userWideDisconnect(ctx, cfg, rep, send, waitAll)
		} else {
			send(cmdAct)
			err = waitAll("acted", cfg.PhaseTimeout)
		}
		rep.ActSeconds = time.Since(actStart).Seconds()
		scrape("acted")
		if err != nil {
			return err
		}
		if cfg.Hold > 0 { // logout: the held sockets must stay open through it
			sleepCtx(ctx, cfg.Hold)
			scrape("end")
		}
	case "storm":
		sleepCtx(ctx, cfg.StormAfter)
		if err := signalProcess(cfg.StormPID, cfg.StormSignal); err != nil {
			return fmt.Errorf("storm: stop pid %d: %w", cfg.StormPID, err)
		}
		rep.StormAt = time.Now()
		scrape("storm")
		sleepCtx(ctx, cfg.Hold)
		scrape("end")
	}
	return nil
}

// sleepCtx sleeps d or until ctx ends; it reports whether the whole d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// startWorker starts one worker in this process (cfg.Workers == 1) or as a process.
func startWorker(ctx context.Context, cfg Config, plan WorkerPlan) (*workerHandle, error) {
	h := &workerHandle{cmds: make(chan string, 4), events: make(chan Event, 64), done: make(chan error, 1)}
	if cfg.Workers == 1 {
		go func() {
			err := RunWorker(ctx, plan, h.cmds, func(ev Event) { h.events <- ev })
			close(h.events)
			h.done <- err
		}()
		return h, nil
	}
	cmd := cfg.WorkerCommand(plan.Index)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", plan.Index, err)
	}
	enc := json.NewEncoder(stdin)
	if err := enc.Encode(plan); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("worker %d: send plan: %w", plan.Index, err)
	}
	go func() { // commands → stdin; closing cmds closes stdin
		for c := range h.cmds {
			if _, err := io.WriteString(stdin, c+"\n"); err != nil {
				break
			}
		}
		stdin.Close()
	}()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err == nil {
				h.events <- ev
			}
		}
		close(h.events)
		h.done <- cmd.Wait()
	}()
	return h, nil
}

// ServeWorker is the body of a worker process: it reads a WorkerPlan (one JSON line) and then
// commands from in, runs the plan and writes its events to out as JSON lines.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("read plan: %w", err)
	}
	var plan WorkerPlan
	if err := json.Unmarshal(line, &plan); err != nil {
		return fmt.Errorf("decode plan: %w", err)
	}
	cmds := make(chan string, 4)
	go func() {
		defer close(cmds)
		for {
			l, err := br.ReadString('\n')
			if s := strings.TrimSpace(l); s != "" {
				cmds <- s
			}
			if err != nil {
				return
			}
		}
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	return RunWorker(ctx, plan, cmds, func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	})
}

var phaseRank = map[string]int{"auth": 0, "ramp": 1, "churn": 1, "auth-bench": 1, "hold": 2, "act": 2, "close": 3, "done": 4}

// sampleEvery is the period of the timeline's client samples (and of the workers' progress
// events); the progress line is printed every progressEvery.
const (
	sampleEvery   = 250 * time.Millisecond
	progressEvery = time.Second
)

// progressLoop samples the merged progress of the workers into the timeline every sampleEvery
// and prints it every progressEvery.
func progressLoop(ctx context.Context, cfg Config, mu *sync.Mutex, progress []*Progress, tl *timeline) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	start := time.Now()
	var lastConn int64
	lastAt := start
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var authed, conn, open, errs, dropped int64
		var h Histogram
		phase := ""
		mu.Lock()
		for _, p := range progress {
			if p == nil {
				continue
			}
			authed += p.Authed
			conn += p.Connected
			open += p.Open
			errs += p.Errors
			dropped += p.Dropped
			h.Merge(p.Connect)
			if phase == "" || phaseRank[p.Phase] < phaseRank[phase] {
				phase = p.Phase
			}
		}
		mu.Unlock()
		now := time.Now()
		tl.add(Sample{T: now.Sub(tl.start).Seconds(), Phase: phase, Open: open, Connected: conn, Errors: errs, Dropped: dropped})
		if cfg.Progress == nil || tick%int(progressEvery/sampleEvery) != 0 {
			continue
		}
		count := conn
		if cfg.Scenario == "auth" {
			count = int64(h.Count())
		}
		rate := float64(count-lastConn) / now.Sub(lastAt).Seconds()
		lastConn, lastAt = count, now
		what := "connected"
		if cfg.Scenario == "auth" {
			what = "requests"
		}
		total := cfg.Clients
		if cfg.Scenario == "churn" {
			total = cfg.churnOps()
		}
		cfg.Progress(fmt.Sprintf("%6.0fs %-10s authed %d  %s %d/%d  open %d  %.0f/s  errors %d  dropped %d  p99 %.2f ms",
			now.Sub(start).Seconds(), phase, authed, what, count, total, open, rate, errs, dropped, float64(h.Percentile(99))/1e6))
	}
}
