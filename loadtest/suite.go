package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// SuiteConfig is one run of the benchmark suite: each step starts fresh gateway processes
// (and, where it needs one, a redis-server) on loopback, runs one scenario against them and
// keeps its figures; every step is repeated Runs times and its figures are quoted as medians.
type SuiteConfig struct {
	// GatewayBinary is the cmd/gateway executable to start.
	GatewayBinary string
	// Size is "full" (the sizes of BENCHMARKS.md: 10k and 19k sockets on one node) or "small"
	// (a few hundred clients: proves the suite works in a minute).
	Size string
	Runs int
	// OutDir receives each run's JSON and HTML report and the gateways' logs.
	OutDir string
	// PortBase, when set, is the first of the loopback ports the gateways listen on (two per
	// node); 0 picks free ports.
	PortBase int
	// Only, when set, runs only the steps whose names it lists.
	Only []string
	// Base is applied to every scenario's Config before the step's own settings (worker
	// command, source addresses, timeouts).
	Base Config
	// Log receives a line per step and run.
	Log io.Writer
}

// SuiteFigure is one line of the suite's table.
type SuiteFigure struct {
	Step   string    `json:"step"`
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Values []float64 `json:"values"` // one per run
	Median float64   `json:"median"`
	Target string    `json:"target,omitempty"`
}

// SuiteResult is what the suite measured.
type SuiteResult struct {
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Size     string        `json:"size"`
	Runs     int           `json:"runs"`
	Machine  string        `json:"machine"`
	Figures  []SuiteFigure `json:"figures"`
	Commands []string      `json:"commands"` // the equivalent manual runs, one per step
	Errors   []string      `json:"errors,omitempty"`
	Skipped  []string      `json:"skipped,omitempty"` // steps the gateway cannot run yet, and why
}

// suiteStep is one scenario of the suite.
type suiteStep struct {
	name  string
	nodes int
	redis bool
	drain time.Duration
	// needsServerAPI: the step calls the server API (/v2/server/...) and is skipped, not failed,
	// against a gateway that answers 404 there.
	needsServerAPI bool
	config         func(s *Nodes) Config
	figures        []suiteMetric
}

// suiteMetric reads one figure of a step's report.
type suiteMetric struct {
	name, unit, target string
	get                func(*Report) float64
}

func lat(name string, pick func(Summary) float64) func(*Report) float64 {
	return func(r *Report) float64 { return pick(r.Latencies[name]) }
}

func server(pick func(*ServerFigures) float64) func(*Report) float64 {
	return func(r *Report) float64 {
		if r.Server == nil {
			return 0
		}
		return pick(r.Server)
	}
}

func p50(s Summary) float64 { return s.P50 }
func p99(s Summary) float64 { return s.P99 }

var errorsFigure = suiteMetric{"client errors", "", "0", func(r *Report) float64 { return float64(r.ErrorCount) }}

// suiteSteps are the suite's scenarios at size (full or small).
func suiteSteps(size string) []suiteStep {
	full := size == "full"
	pick := func(f, s int) int {
		if full {
			return f
		}
		return s
	}
	dur := func(f, s time.Duration) time.Duration {
		if full {
			return f
		}
		return s
	}
	settle := dur(30*time.Second, time.Second)
	rssKiB := suiteMetric{fmt.Sprintf("RSS per idle socket (%v after the ramp)", settle), "KiB", "≤ 12 KiB", server(func(f *ServerFigures) float64 { return f.RSSPerSocket / 1024 })}
	hold := func(n int, ping time.Duration) func(*Nodes) Config {
		return func(s *Nodes) Config {
			return Config{Scenario: "hold", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: n, Rate: 2000, InFlight: 64,
				Hold: dur(90*time.Second, 2*time.Second), Settle: settle, PingInterval: ping, ScrapeInterval: 5 * time.Second}
		}
	}
	return []suiteStep{
		{name: fmt.Sprintf("hold%d", pick(10000, 300)), nodes: 1, config: hold(pick(10000, 300), 10*time.Second), figures: []suiteMetric{
			rssKiB,
			{"heap + stack per socket", "KiB", "", server(func(f *ServerFigures) float64 { return f.HeapStackPerSocket / 1024 })},
			{"goroutines per socket", "", "1", server(func(f *ServerFigures) float64 { return f.GoroutinesPerSocket })},
			{"connect p99 (ramp at 2,000/s)", "ms", "", lat(HistConnect, p99)},
			{"envelope ping RTT p99", "ms", "", lat(HistPingRTT, p99)},
			errorsFigure,
		}},
		{name: fmt.Sprintf("hold%d", pick(19000, 600)), nodes: 1, config: hold(pick(19000, 600), 10*time.Second), figures: []suiteMetric{
			rssKiB,
			{"heartbeat CPU, envelope ping every 10 s", "% of a core", "", server(func(f *ServerFigures) float64 { return f.IdleCPUPercentOfCore })},
			{"CPU per heartbeat (envelope pings and server pings)", "µs", "", server(func(f *ServerFigures) float64 { return f.CPUPerHeartbeatMicro })},
			errorsFigure,
		}},
		{name: fmt.Sprintf("idle%d", pick(19000, 600)), nodes: 1, config: hold(pick(19000, 600), 0), figures: []suiteMetric{
			{"heartbeat CPU, server WebSocket pings only (every 15 s)", "% of a core", "≤ 1 %", server(func(f *ServerFigures) float64 { return f.IdleCPUPercentOfCore })},
			{"CPU per server ping", "µs", "", server(func(f *ServerFigures) float64 { return f.CPUPerHeartbeatMicro })},
			errorsFigure,
		}},
		{name: fmt.Sprintf("connect%d", pick(10000, 500)), nodes: 1, config: func(s *Nodes) Config {
			return Config{Scenario: "connect", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: pick(10000, 500), InFlight: 64}
		}, figures: []suiteMetric{
			{"connects per second, 64 in flight", "/s", "≥ 10,000", func(r *Report) float64 { return r.ConnectRate }},
			{"connect p50", "ms", "", lat(HistConnect, p50)},
			{"connect p99", "ms", "≤ 25 ms", lat(HistConnect, p99)},
			errorsFigure,
		}},
		{name: "auth", nodes: 1, config: func(s *Nodes) Config {
			return Config{Scenario: "auth", Targets: s.APIs, Clients: pick(100000, 3000), Devices: pick(1000, 100), InFlight: 64}
		}, figures: []suiteMetric{
			{"authenticate an existing device, embedded", "req/s", "≥ 15,000", func(r *Report) float64 { return r.ConnectRate }},
			{"authenticate p99, embedded", "ms", "", lat(HistAuth, p99)},
			errorsFigure,
		}},
		{name: "auth-redis", nodes: 1, redis: true, config: func(s *Nodes) Config {
			return Config{Scenario: "auth", Targets: s.APIs, Clients: pick(100000, 3000), Devices: pick(1000, 100), InFlight: 64}
		}, figures: []suiteMetric{
			{"authenticate an existing device, Redis store", "req/s", "≥ 10,000", func(r *Report) float64 { return r.ConnectRate }},
			{"authenticate p99, Redis store", "ms", "", lat(HistAuth, p99)},
			errorsFigure,
		}},
		{name: "churn", nodes: 1, config: func(s *Nodes) Config {
			return Config{Scenario: "churn", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: pick(5000, 100), Rate: float64(pick(1000, 200)),
				Duration: dur(30*time.Second, 2*time.Second), Lifetime: dur(5*time.Second, 300*time.Millisecond), InFlight: 64}
		}, figures: []suiteMetric{
			{fmt.Sprintf("churn at %d/s: connect p99", pick(1000, 200)), "ms", "", lat(HistConnect, p99)},
			{"churn: close handshake p99", "ms", "", lat(HistClose, p99)},
			{"churn: sockets opened and closed", "", "", func(r *Report) float64 { return float64(r.Counts[CountClosed]) }},
			errorsFigure,
		}},
		{name: "logout", nodes: 2, redis: true, config: func(s *Nodes) Config {
			return Config{Scenario: "logout", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: pick(2000, 200), InFlight: 32,
				Hold: dur(10*time.Second, time.Second), PingInterval: dur(2*time.Second, 5*time.Second)}
		}, figures: []suiteMetric{
			{"logout → new socket refused on both nodes, p50", "ms", "", lat(HistRefused, p50)},
			{"logout → new socket refused on both nodes, p99", "ms", "≤ 100 ms", lat(HistRefused, p99)},
			{"sockets dropped by logout", "", "0", func(r *Report) float64 { return float64(r.Dropped) }},
			errorsFigure,
		}},
		{name: "hold-3-nodes", nodes: 3, redis: true, config: func(s *Nodes) Config {
			return Config{Scenario: "hold", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: pick(55000, 600), Rate: 2000, InFlight: 64,
				Hold: dur(60*time.Second, 2*time.Second), Settle: settle, PingInterval: 10 * time.Second}
		}, figures: []suiteMetric{
			{"sockets held over 3 nodes on one Redis", "", "≥ 55,000", server(func(f *ServerFigures) float64 { return f.Sockets })},
			{"RSS per socket, all nodes", "KiB", "≤ 12 KiB", server(func(f *ServerFigures) float64 { return f.RSSPerSocket / 1024 })},
			errorsFigure,
		}},
		{name: "disconnect", nodes: 3, redis: true, needsServerAPI: true, config: func(s *Nodes) Config {
			return Config{Scenario: "disconnect", Targets: s.APIs[:1], APITarget: s.APIs[len(s.APIs)-1], MetricsURLs: s.Metrics,
				Clients: pick(3000, 200), Rate: 2000, InFlight: 16, HTTPKey: NodesHTTPKey, DisconnectBy: "both", ActRate: 100, ActInFlight: 1}
		}, figures: []suiteMetric{
			{"cross-node disconnect, one call at a time (100/s), API call on C → close at the client on A, p50", "ms", "", lat(HistDisconnect, p50)},
			{"cross-node disconnect, p99", "ms", "≤ 5 ms", lat(HistDisconnect, p99)},
			{"cross-node disconnect, max", "ms", "", lat(HistDisconnect, func(s Summary) float64 { return s.Max })},
			{"disconnect call answered (acknowledged), p99", "ms", "", lat(HistDisconnectAPI, p99)},
			errorsFigure,
		}},
		{name: "disconnect-user-wide", nodes: 3, redis: true, needsServerAPI: true, config: func(s *Nodes) Config {
			return Config{Scenario: "disconnect", Targets: s.APIs, APITarget: s.APIs[len(s.APIs)-1], MetricsURLs: s.Metrics,
				Clients: pick(10000, 300), Users: 1, Rate: 2000, InFlight: 64, HTTPKey: NodesHTTPKey, DisconnectBy: "user-wide", ActInFlight: 1}
		}, figures: []suiteMetric{
			{fmt.Sprintf("user-wide disconnect of %d sockets of one user over 3 nodes: call → last close", pick(10000, 300)), "ms", "≤ 500 ms",
				lat(HistDisconnect, func(s Summary) float64 { return s.Max })},
			{"user-wide disconnect: call → close, p50", "ms", "", lat(HistDisconnect, p50)},
			{"user-wide disconnect: call answered", "ms", "", lat(HistDisconnectAPI, func(s Summary) float64 { return s.Max })},
			errorsFigure,
		}},
		{name: "storm", nodes: pick(3, 2), drain: time.Second, config: func(s *Nodes) Config {
			return Config{Scenario: "storm", Targets: s.APIs, MetricsURLs: s.Metrics, Clients: pick(9000, 300), Rate: 2000, InFlight: 64,
				Hold: dur(20*time.Second, 3*time.Second), PingInterval: 10 * time.Second, StormPID: s.PIDs[0], StormSignal: "kill",
				StormAfter: dur(5*time.Second, 500*time.Millisecond)}
		}, figures: []suiteMetric{
			{"storm: sockets lost with the killed node", "", "", func(r *Report) float64 { return float64(r.Dropped) }},
			{"storm: reconnect p50 (lost → connected elsewhere)", "ms", "", lat(HistReconnect, p50)},
			{"storm: reconnect p99", "ms", "", lat(HistReconnect, p99)},
			{"storm: kill → last client reconnected", "s", "", func(r *Report) float64 { return r.RecoverySeconds }},
			errorsFigure,
		}},
	}
}

// describeNodes says which gateway processes the step starts.
func (st suiteStep) describeNodes() string {
	d := fmt.Sprintf("%d embedded node(s)", st.nodes)
	if st.redis {
		d = fmt.Sprintf("%d node(s) on one redis-server", st.nodes)
	}
	if st.drain > 0 {
		d += ", --drain-period=" + st.drain.String()
	}
	return d
}

// RunSuite runs the suite. A step that fails is reported in SuiteResult.Errors and the suite
// goes on; ctx ends it early.
func RunSuite(ctx context.Context, sc SuiteConfig) (*SuiteResult, error) {
	if sc.GatewayBinary == "" {
		return nil, errors.New("suite: the gateway binary is required")
	}
	if sc.Size != "full" && sc.Size != "small" {
		return nil, fmt.Errorf("suite: size %q: want full or small", sc.Size)
	}
	if sc.Runs < 1 {
		sc.Runs = 1
	}
	if sc.Log == nil {
		sc.Log = io.Discard
	}
	if err := os.MkdirAll(sc.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("suite: %w", err)
	}
	res := &SuiteResult{Started: time.Now().UTC(), Size: sc.Size, Runs: sc.Runs, Machine: machine()}
	for _, st := range suiteSteps(sc.Size) {
		if len(sc.Only) > 0 && !slices.Contains(sc.Only, st.name) {
			continue
		}
		values := make([][]float64, len(st.figures))
		var command string
		for run := 1; run <= sc.Runs && ctx.Err() == nil; run++ {
			rep, cmdline, err := sc.runStep(ctx, st, run)
			if cmdline != "" {
				command = fmt.Sprintf("# %s: %s\n%s", st.name, st.describeNodes(), cmdline)
			}
			if errors.Is(err, errNoServerAPI) {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", st.name, err))
				fmt.Fprintf(sc.Log, "suite: %s skipped: %v\n", st.name, err)
				break
			}
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s run %d: %v", st.name, run, err))
				fmt.Fprintf(sc.Log, "suite: %s run %d: %v\n", st.name, run, err)
				continue
			}
			for i, f := range st.figures {
				values[i] = append(values[i], f.get(rep))
			}
			fmt.Fprintf(sc.Log, "suite: %s run %d: %d connected, %d errors\n", st.name, run, rep.Connected, rep.ErrorCount)
		}
		res.Commands = append(res.Commands, command)
		for i, f := range st.figures {
			if len(values[i]) == 0 {
				continue
			}
			res.Figures = append(res.Figures, SuiteFigure{Step: st.name, Name: f.name, Unit: f.unit, Values: values[i], Median: median(values[i]), Target: f.target})
		}
	}
	res.Finished = time.Now().UTC()
	return res, ctx.Err()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runStep starts the step's nodes, runs its scenario once and stops the nodes.
func (sc *SuiteConfig) runStep(ctx context.Context, st suiteStep, run int) (*Report, string, error) {
	nodes, err := StartNodes(ctx, NodesConfig{Binary: sc.GatewayBinary, Count: st.nodes, Redis: st.redis, DrainPeriod: st.drain,
		LogDir: sc.OutDir, LogPrefix: fmt.Sprintf("%s-%d", st.name, run), PortBase: sc.PortBase})
	if err != nil {
		return nil, "", err
	}
	defer nodes.Stop()
	cfg := st.config(nodes)
	cfg.ServerKey, cfg.Create, cfg.Workers = sc.Base.ServerKey, true, sc.Base.Workers
	cfg.WorkerCommand, cfg.SourceIPs, cfg.Timeout, cfg.TokenMaxAge = sc.Base.WorkerCommand, sc.Base.SourceIPs, sc.Base.Timeout, sc.Base.TokenMaxAge
	if cfg.Workers == 0 {
		cfg.Workers = 1
		if cfg.WorkerCommand != nil {
			cfg.Workers = cfg.AutoWorkers()
		}
	}
	cmdline := cfg.CommandLine()
	rep, err := Run(ctx, cfg)
	if err == nil && st.needsServerAPI && rep.Errors["disconnect_http_404"] > 0 && rep.Counts[CountDisconnected] == 0 {
		return nil, cmdline, errNoServerAPI
	}
	if rep != nil {
		base := filepath.Join(sc.OutDir, fmt.Sprintf("%s-%d", st.name, run))
		if werr := rep.WriteJSON(base + ".json"); werr != nil && err == nil {
			err = werr
		}
		if werr := rep.WriteHTML(base + ".html"); werr != nil && err == nil {
			err = werr
		}
	}
	return rep, cmdline, err
}

// errNoServerAPI skips a step that needs the server API on a gateway without it.
var errNoServerAPI = errors.New("the gateway answers 404 on the server API (/v2/server/...): it comes with the cluster issue")

// machine describes this machine for the record.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d CPU (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// Markdown is the suite's section of BENCHMARKS.md, between SuiteBegin and SuiteEnd; gateway
// says what the gateway binary was built from.
func (res *SuiteResult) Markdown(command, gateway string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n## Load suite (`cmd/loadtest suite`)\n\n", SuiteBegin)
	fmt.Fprintf(&b, "Measured %s – %s UTC on %s; gateway: %s; size `%s`, %d run(s) per step, each against fresh gateway processes on loopback (the load tool shares the machine). Written by the suite itself:\n\n",
		res.Started.Format("2006-01-02 15:04"), res.Finished.Format("15:04"), res.Machine, gateway, res.Size, res.Runs)
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", command)
	if res.Size == "small" {
		b.WriteString("Size `small` checks that the suite works end to end; its figures are not benchmark figures (a few hundred sockets, seconds per step). Run `--size full` on a quiet machine for those.\n\n")
	}
	b.WriteString("| step | figure | runs | median | target |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range res.Figures {
		vals := make([]string, len(f.Values))
		for i, v := range f.Values {
			vals[i] = fmtFigure(v)
		}
		unit := ""
		if f.Unit != "" {
			unit = " " + f.Unit
		}
		fmt.Fprintf(&b, "| %s | %s | %s | **%s%s** | %s |\n", f.Step, f.Name, strings.Join(vals, " · "), fmtFigure(f.Median), unit, f.Target)
	}
	b.WriteString("\nEach step is equivalent to this manual run against nodes started as the suite starts them (`gateway --addr … --metrics-addr … --log-level=warn`, shared keys, `--redis-url` for the Redis steps):\n\n```sh\n")
	for _, c := range res.Commands {
		if c != "" {
			b.WriteString(c + "\n")
		}
	}
	b.WriteString("```\n")
	if len(res.Skipped) > 0 {
		b.WriteString("\nSkipped:\n\n")
		for _, e := range res.Skipped {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	if len(res.Errors) > 0 {
		b.WriteString("\nFailed runs (left out of the medians):\n\n")
		for _, e := range res.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	b.WriteString(SuiteEnd + "\n")
	return b.String()
}

func fmtFigure(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Markers of the suite's section in BENCHMARKS.md.
const (
	SuiteBegin = "<!-- loadtest suite: begin (written by `loadtest suite`; edits inside are replaced) -->"
	SuiteEnd   = "<!-- loadtest suite: end -->"
)

// UpdateBenchmarks replaces the suite's section of the markdown file at path with section (or
// appends it when the file has none).
func UpdateBenchmarks(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc := string(b)
	i, j := strings.Index(doc, SuiteBegin), strings.Index(doc, SuiteEnd)
	if i >= 0 && j > i {
		doc = doc[:i] + section + strings.TrimPrefix(doc[j+len(SuiteEnd):], "\n")
	} else {
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		doc += section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
