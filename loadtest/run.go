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
	"strings"
	"sync"
	"time"
)

// Config is one run of a scenario.
type Config struct {
	Scenario string // "hold", "connect" or "auth"
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
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	switch c.Scenario {
	case "hold", "connect", "auth":
	default:
		return fmt.Errorf("unknown scenario %q (hold, connect, auth)", c.Scenario)
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
	if c.Rate < 0 || c.Hold < 0 || c.Settle < 0 || c.PingInterval < 0 {
		return errors.New("rate, hold, settle and ping interval must not be negative")
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
	if cfg.Scenario != "hold" {
		cfg.Hold, cfg.Settle, cfg.PingInterval = 0, 0, 0
	}
	rep := &Report{Scenario: cfg.Scenario, RunID: hex.EncodeToString(runID), Started: time.Now().UTC(), Clients: cfg.Clients,
		Rate: cfg.Rate, InFlight: cfg.InFlight, Workers: cfg.Workers, Targets: cfg.Targets, PingInterval: cfg.PingInterval.String(),
		Hold: cfg.Hold.String(), Settle: cfg.Settle.String(), Errors: map[string]int64{}, CloseCodes: map[string]int64{}}
	settle := min(cfg.Settle, cfg.Hold)
	deadline := time.Now().Add(2*cfg.PhaseTimeout + cfg.Hold + time.Minute)

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
				case "ready", "ramped":
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
	if cfg.Progress != nil {
		go progressLoop(progCtx, cfg, &mu, progress)
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
	scrape := func(label string) {
		if len(cfg.MetricsURLs) == 0 {
			return
		}
		ss := make([]*Scrape, len(cfg.MetricsURLs))
		for i, u := range cfg.MetricsURLs {
			s, err := scrapeMetrics(context.WithoutCancel(ctx), metricsClient, u)
			if err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("scrape %s (%s): %v", label, u, err))
				return
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
		if runErr == nil && cfg.Hold > 0 {
			sleepCtx(ctx, time.Until(rampStart.Add(time.Duration(rep.RampSeconds*float64(time.Second))).Add(settle)))
			scrape("settled")
			if cfg.Hold > settle {
				sleepCtx(ctx, cfg.Hold-settle)
				scrape("end")
			}
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
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: "+ctx.Err().Error())
	}
	rep.finish(results)
	return rep, runErr
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
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

var phaseRank = map[string]int{"auth": 0, "ramp": 1, "auth-bench": 1, "hold": 2, "close": 3, "done": 4}

// progressLoop prints the merged progress of the workers every second.
func progressLoop(ctx context.Context, cfg Config, mu *sync.Mutex, progress []*Progress) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	var lastConn int64
	lastAt := start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var authed, conn, open, errs int64
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
			h.Merge(p.Connect)
			if phase == "" || phaseRank[p.Phase] < phaseRank[phase] {
				phase = p.Phase
			}
		}
		mu.Unlock()
		now := time.Now()
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
		cfg.Progress(fmt.Sprintf("%6.0fs %-10s authed %d  %s %d/%d  open %d  %.0f/s  errors %d  p99 %.2f ms",
			now.Sub(start).Seconds(), phase, authed, what, count, cfg.Clients, open, rate, errs, float64(h.Percentile(99))/1e6))
	}
}
