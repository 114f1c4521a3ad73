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
	"path/filepath"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/loadtest"
)

const suiteUsage = `usage: loadtest suite [flags]

Runs the benchmark suite on this machine: for each step it starts fresh gateway processes on
loopback (and a redis-server for the Redis steps, which needs redis-server on PATH), runs one
scenario against them, and stops them. Steps: hold (memory per socket), a second hold size
(heartbeat CPU with envelope pings), idle (heartbeat CPU with server pings only), connect
(rate and latency), auth (embedded and Redis), churn, logout (2 nodes on Redis: revocation
reaches both), hold-3-nodes (sockets held over 3 nodes on one Redis), disconnect (3 nodes on
Redis, clients on the first, the server API called on the last; skipped against a gateway
without the server API), disconnect-user-wide (one user's sockets over 3 nodes, one call; skipped
likewise), storm (2-3 embedded nodes, one SIGKILLed: reconnects). Medians over
--runs go into the suite's section of --benchmarks, with the date, the machine and the
commands.

--size full holds 10,000 and 19,000 sockets on one node (minutes per step; run it on a quiet
machine). --size small uses a few hundred clients and finishes in about a minute.

flags:
`

// runSuite is the suite subcommand.
func runSuite(ctx context.Context, args []string, stdout, stderr io.Writer, workerCmd func(i int) *exec.Cmd) int {
	fs := flag.NewFlagSet("loadtest suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, suiteUsage); fs.PrintDefaults() }
	var sc loadtest.SuiteConfig
	var bench, only, resultJSON, gatewayCommit string
	var sourceIPs int
	fs.StringVar(&sc.GatewayBinary, "gateway", "", "the gateway binary to start (default: go build ./cmd/gateway into --out)")
	fs.StringVar(&gatewayCommit, "gateway-commit", "", "what --gateway was built from, for the record (default: this tree's commit when the suite builds it, else \"given binary\")")
	fs.StringVar(&sc.Size, "size", "full", "full (BENCHMARKS.md sizes) or small (a few hundred clients)")
	fs.IntVar(&sc.Runs, "runs", 3, "runs of each step; figures are medians")
	fs.StringVar(&sc.OutDir, "out", filepath.Join(os.TempDir(), "sessiongate-suite"), "directory for each run's JSON and HTML report and the gateways' logs")
	fs.IntVar(&sc.PortBase, "port-base", 0, "first loopback port of the gateways (two per node); 0: free ports")
	fs.StringVar(&only, "only", "", "comma-separated step names to run (hold10000, hold19000, idle19000, connect10000, auth, auth-redis, churn, logout, hold-3-nodes, disconnect, disconnect-user-wide, storm; small: hold300, hold600, idle600, connect500, ...)")
	fs.StringVar(&bench, "benchmarks", "BENCHMARKS.md", "markdown file whose suite section is replaced with the figures; empty: print only")
	fs.StringVar(&resultJSON, "json", "", "also write the suite's figures to this JSON file")
	fs.IntVar(&sourceIPs, "source-ips", 8, "clients dial from 127.0.0.2 .. 127.0.0.(1+N)")
	fs.IntVar(&sc.Base.Workers, "workers", 0, "client processes per step; 0: one per 15,000 sockets")
	fs.DurationVar(&sc.Base.Timeout, "timeout", 10*time.Second, "bound on each request and connect")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest suite: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if only != "" {
		sc.Only = strings.Split(only, ",")
	}
	sc.Base.ServerKey, sc.Base.TokenMaxAge = "defaultkey", 45*time.Second
	sc.Base.SourceIPs = loadtest.SourceRange(sourceIPs)
	sc.Base.WorkerCommand = workerCmd
	if sc.Base.WorkerCommand == nil {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "loadtest suite: cannot find own executable for workers:", err)
			return 1
		}
		sc.Base.WorkerCommand = func(int) *exec.Cmd { return exec.Command(exe, "worker") }
	}
	sc.Log = stderr
	if err := os.MkdirAll(sc.OutDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "loadtest suite:", err)
		return 1
	}
	if gatewayCommit == "" && sc.GatewayBinary != "" {
		gatewayCommit = "given binary " + sc.GatewayBinary
	}
	if sc.GatewayBinary == "" {
		gatewayCommit = "built from commit `" + commit() + "`"
		sc.GatewayBinary = filepath.Join(sc.OutDir, "gateway")
		if err := loadtest.BuildGateway(ctx, sc.GatewayBinary, false); err != nil {
			fmt.Fprintln(stderr, "loadtest suite (run it inside the repository, or pass --gateway):", err)
			return 1
		}
	}
	res, err := loadtest.RunSuite(ctx, sc)
	if res == nil {
		fmt.Fprintln(stderr, "loadtest suite:", err)
		return 1
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " \t\"'$") {
			quoted[i] = fmt.Sprintf("%q", a)
		}
	}
	section := res.Markdown("go run ./cmd/loadtest suite "+strings.Join(quoted, " "), gatewayCommit)
	fmt.Fprint(stdout, section)
	if resultJSON != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(resultJSON, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintln(stderr, "loadtest suite:", werr)
			return 1
		}
	}
	if bench != "" && err == nil {
		if werr := loadtest.UpdateBenchmarks(bench, section); werr != nil {
			fmt.Fprintln(stderr, "loadtest suite:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest suite:", err)
		return 1
	}
	if len(res.Errors) > 0 {
		return 3
	}
	return 0
}

// commit is the working tree's commit, marked when it has local changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " + local changes"
	}
	return c
}
