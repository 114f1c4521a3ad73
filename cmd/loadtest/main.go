// Command loadtest is the load tool: virtual game clients that authenticate, hold sockets and
// heartbeat against one or more gateway nodes, with the server's own figures read from its
// /metrics. See the README's "Load tool" section.
//
//	loadtest hold    [flags]  ramp to --clients sockets, hold them, read memory and idle CPU
//	loadtest connect [flags]  connect --clients sockets as fast as --in-flight allows; latency
//	loadtest auth    [flags]  authenticate existing devices: throughput and latency
//	loadtest churn   [flags]  open sockets at --rate for --duration, each closed after --lifetime
//	loadtest logout  [flags]  hold, log every client out, check new sockets are refused
//	loadtest storm   [flags]  hold over several nodes, stop one (--pid), measure reconnects
//	loadtest disconnect [flags]  hold, disconnect every socket through the server API
//	loadtest suite   [flags]  the BENCHMARKS.md suite: starts Redis and gateways, runs them all
//	loadtest report  --json FILE [--html FILE]  the table (and HTML page) of a saved report
//	loadtest worker           (internal) one client process of a --workers run
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil))
}

// raiseFileLimit lifts the soft open-file limit to the hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// listFlag is a repeatable, comma-separated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

const usage = `usage: loadtest <scenario> [flags]

scenarios:
  hold     ramp to --clients sockets at --rate with --in-flight connects at once over the
           --target nodes, hold them for --hold, read the servers' memory --settle after the
           ramp and their CPU from then to the end of the hold
  connect  connect --clients sockets with --in-flight at once (no rate cap by default):
           connect rate and latency (upgrade + token check + first envelope ping answered)
  auth     authenticate --devices existing devices --clients times in total: req/s, latency
  churn    open sockets at --rate for --duration (identities from --clients, in turn), each
           closed by the client after --lifetime: connect and close latency, sockets over time
  logout   ramp like hold, then every client logs out (POST /v2/session/logout) and tries a
           new socket with its token on every target (each must be refused with 401); the
           held sockets must stay open through --hold
  storm    ramp like hold over at least two --target nodes, then --storm-after stop the
           gateway process --pid (--signal kill: SIGKILL; term: SIGTERM, a graceful drain); its
           clients reconnect to the next targets with a jittered exponential backoff; --hold is
           the window for that: reconnect latency, time to the last reconnect
  disconnect
           ramp like hold on the --target nodes, then disconnect every socket through the
           server API of --api-target (default the last target) by session id and by user id
           (--disconnect-by; user-wide with --users N: one call per shared account): API call
           → close frame at the client
  suite    the benchmark suite (see loadtest suite --help)
  report   --json FILE [--html FILE]: the summary table (and HTML page) of a saved report
  worker   internal: one client process of a --workers run (plan on stdin, events on stdout)

Every client authenticates in a pre-phase (device ids unique per run, or --users N shared
accounts) before the measured phase starts. Targets must be on loopback unless --allow-remote.

flags:
`

// run is main without the process: it returns the exit code. workerCmd, when set, replaces
// the re-execution of this binary for worker processes (tests).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, workerCmd func(i int) *exec.Cmd) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		fs := newFlags("hold", stderr, &loadtest.Config{}, new(options)).fs
		fs.PrintDefaults()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	scenario := args[0]
	if scenario == "worker" {
		if err := loadtest.ServeWorker(ctx, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "loadtest worker:", err)
			return 1
		}
		return 0
	}
	if scenario == "suite" {
		return runSuite(ctx, args[1:], stdout, stderr, workerCmd)
	}
	if scenario == "report" {
		return runReport(args[1:], stdout, stderr)
	}
	if !slices.Contains(loadtest.Scenarios, scenario) {
		fmt.Fprintf(stderr, "loadtest: unknown scenario %q\n\n%s", scenario, usage)
		return 2
	}
	var cfg loadtest.Config
	var o options
	f := newFlags(scenario, stderr, &cfg, &o)
	if err := f.fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected arguments %q\n", f.fs.Args())
		return 2
	}
	cfg.Scenario = scenario
	cfg.Targets = []string(f.targets)
	if len(cfg.Targets) == 0 {
		cfg.Targets = []string{"http://127.0.0.1:7350"}
	}
	if !f.noMetrics {
		cfg.MetricsURLs = []string(f.metrics)
		if len(cfg.MetricsURLs) == 0 {
			cfg.MetricsURLs = []string{"http://127.0.0.1:9100/metrics"}
		}
	}
	if o.sourceIPs > 0 {
		cfg.SourceIPs = loadtest.SourceRange(o.sourceIPs)
	}
	if cfg.Workers == 0 {
		cfg.Workers = cfg.AutoWorkers()
	}
	if cfg.Workers > 1 {
		cfg.WorkerCommand = workerCmd
		if cfg.WorkerCommand == nil {
			exe, err := os.Executable()
			if err != nil {
				fmt.Fprintln(stderr, "loadtest: cannot find own executable for workers:", err)
				return 1
			}
			cfg.WorkerCommand = func(int) *exec.Cmd { return exec.Command(exe, "worker") }
		}
	}
	if !o.quiet {
		cfg.Progress = progressPrinter(stderr)
	}
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			fmt.Fprintln(stderr, "loadtest: cpu profile:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	rep, err := loadtest.Run(ctx, cfg)
	if !o.quiet && cfg.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if rep != nil {
		rep.WriteTable(stdout)
		if o.jsonPath != "" {
			if werr := rep.WriteJSON(o.jsonPath); werr != nil {
				fmt.Fprintln(stderr, "loadtest: write json:", werr)
				return 1
			}
		}
		if o.htmlPath != "" {
			if werr := rep.WriteHTML(o.htmlPath); werr != nil {
				fmt.Fprintln(stderr, "loadtest: write html:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	if rep.ErrorCount > 0 && o.failOnErrors {
		return 3
	}
	return 0
}

type options struct {
	jsonPath     string
	htmlPath     string
	quiet        bool
	sourceIPs    int
	failOnErrors bool
	cpuProfile   string
}

type flags struct {
	fs        *flag.FlagSet
	targets   listFlag
	metrics   listFlag
	noMetrics bool
}

func newFlags(scenario string, out io.Writer, cfg *loadtest.Config, o *options) *flags {
	f := &flags{fs: flag.NewFlagSet("loadtest "+scenario, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprint(out, usage); fs.PrintDefaults() }
	fs.Var(&f.targets, "target", "gateway API base URL; repeat or comma-separate for several nodes (default http://127.0.0.1:7350)")
	fs.Var(&f.metrics, "metrics", "a node's /metrics URL; repeat or comma-separate (default http://127.0.0.1:9100/metrics)")
	fs.BoolVar(&f.noMetrics, "no-metrics", false, "do not scrape server metrics")
	defClients, defHold := 1000, 60*time.Second
	if scenario == "auth" {
		defClients = 100000
	}
	fs.IntVar(&cfg.Clients, "clients", defClients, "sockets to open (hold, connect) or authenticate requests to send (auth)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "cap on connects (or requests) per second over the whole run; 0: none")
	fs.IntVar(&cfg.InFlight, "in-flight", 64, "connects (or requests) running at once over the whole run")
	fs.DurationVar(&cfg.Hold, "hold", defHold, "hold, logout, storm: how long sockets stay open after the ramp (logout: after the logouts; storm: after the node stops)")
	fs.DurationVar(&cfg.Settle, "settle", 30*time.Second, "hold: when after the ramp server memory is read; idle CPU is measured from then to the end of --hold")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 10*time.Second, "envelope ping period of each held socket; 0 disables")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "bound on each request and each connect (upgrade + first pong)")
	fs.DurationVar(&cfg.PhaseTimeout, "phase-timeout", 5*time.Minute, "bound on the pre-phase and on the ramp each")
	fs.StringVar(&cfg.ServerKey, "server-key", "defaultkey", "server key sent as Basic auth")
	fs.BoolVar(&cfg.Create, "create", true, "create device accounts in the pre-phase (create=true)")
	fs.IntVar(&cfg.Devices, "devices", 0, "auth: distinct existing devices to authenticate (default min(clients, 1000))")
	fs.IntVar(&o.sourceIPs, "source-ips", 8, "dial from 127.0.0.2 .. 127.0.0.(1+N), round robin (avoids ephemeral port exhaustion); 0: system's choice")
	fs.DurationVar(&cfg.TokenMaxAge, "token-max-age", 45*time.Second, "re-authenticate before connecting when the pre-phase token is older (the gateway's default token expiry is 1m)")
	fs.IntVar(&cfg.Workers, "workers", 0, fmt.Sprintf("client processes (this binary re-executed as 'loadtest worker'); 0: one per %d sockets", loadtest.MaxSocketsPerWorker))
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow targets outside loopback")
	fs.StringVar(&o.jsonPath, "json", "", "write every figure to this JSON file")
	fs.StringVar(&o.htmlPath, "html", "", "write a self-contained HTML report (charts as inline SVG) to this file")
	fs.DurationVar(&cfg.ScrapeInterval, "scrape-interval", 2*time.Second, "how often /metrics is read for the timeline (RSS and sockets over time); negative disables")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "churn: how long sockets are opened at --rate")
	fs.DurationVar(&cfg.Lifetime, "lifetime", time.Second, "churn: how long each socket stays open")
	fs.StringVar(&cfg.Status, "status", "", "each client sets this status (status_update) after connecting; empty: none")
	fs.IntVar(&cfg.Follow, "follow", 0, "each client follows this many other clients (status_follow) after connecting")
	fs.IntVar(&cfg.StormPID, "pid", 0, "storm: the gateway process to stop")
	fs.StringVar(&cfg.StormSignal, "signal", "kill", "storm: kill (SIGKILL) or term (SIGTERM, graceful drain)")
	fs.DurationVar(&cfg.StormAfter, "storm-after", time.Second, "storm: how long after the ramp the node is stopped")
	fs.DurationVar(&cfg.BackoffMin, "backoff-min", 100*time.Millisecond, "storm: first reconnect backoff ceiling (full jitter, doubling per attempt)")
	fs.DurationVar(&cfg.BackoffMax, "backoff-max", 5*time.Second, "storm: largest reconnect backoff ceiling")
	fs.DurationVar(&cfg.ReconnectFor, "reconnect-for", 30*time.Second, "storm: a client gives up reconnecting after this")
	fs.StringVar(&cfg.APITarget, "api-target", "", "disconnect: the node whose server API is called (default the last --target)")
	fs.StringVar(&cfg.HTTPKey, "http-key", "defaulthttpkey", "disconnect: the server API's http key, sent as Bearer")
	fs.StringVar(&cfg.DisconnectBy, "disconnect-by", "both", "disconnect: session, user, both (alternating by client), or user-wide (one call per --users account, all its sockets)")
	fs.IntVar(&cfg.Users, "users", 0, "clients share this many accounts (client i is user i mod N, each with a token of its own); 0: one account per client")
	fs.Float64Var(&cfg.ActRate, "act-rate", 0, "logout, disconnect: calls per second during the action (default --rate)")
	fs.IntVar(&cfg.ActInFlight, "act-in-flight", 0, "logout, disconnect: calls at once during the action (default --in-flight); 1 measures an idle cluster")
	fs.StringVar(&cfg.Protocol, "protocol", loadtest.ProtocolSessiongate, "what the sockets speak: sessiongate, or centrifugo (a same-run baseline for connect and hold: --target is a Centrifugo server, --metrics its /metrics, --ping-interval 0)")
	fs.StringVar(&cfg.CentrifugoSecret, "centrifugo-secret", "", "protocol centrifugo: the server's client.token.hmac_secret_key, to sign connection tokens with")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the clients when --workers is 1) to this file")
	fs.BoolVar(&o.failOnErrors, "fail-on-errors", false, "exit with status 3 when any client error was counted")
	return f
}

// progressPrinter rewrites one line on a terminal, or prints a line every 5s otherwise.
func progressPrinter(w io.Writer) func(string) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var last time.Time
	return func(line string) {
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
			return
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintln(w, line)
		}
	}
}

// runReport prints the summary table of a saved JSON report and writes its HTML page.
func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("json", "", "the JSON report (written with --json) to read")
	out := fs.String("html", "", "write its HTML page to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *in == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: loadtest report --json FILE [--html FILE]")
		return 2
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest report:", err)
		return 1
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintf(stderr, "loadtest report: %s is not a load test report: %v\n", *in, err)
		return 1
	}
	rep.WriteTable(stdout)
	if *out != "" {
		if err := rep.WriteHTML(*out); err != nil {
			fmt.Fprintln(stderr, "loadtest report:", err)
			return 1
		}
	}
	return 0
}
