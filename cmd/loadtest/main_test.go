package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/loadtest"
)

// TestMain lets the test binary stand in for the loadtest binary as a worker process.
func TestMain(m *testing.M) {
	if os.Getenv("LOADTEST_TEST_WORKER") == "1" {
		os.Exit(run(context.Background(), []string{"worker"}, os.Stdin, os.Stdout, os.Stderr, nil))
	}
	code := m.Run()
	gatewayBinary.Remove()
	os.Exit(code)
}

// testWorkerCmd starts this test binary as a worker process.
func testWorkerCmd(t *testing.T) func(int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(int) *exec.Cmd {
		c := exec.Command(exe)
		c.Env = append(os.Environ(), "LOADTEST_TEST_WORKER=1")
		return c
	}
}

// The gateway binary the tests start, built once (with -race under -race, reusing the
// packages this test build compiled).
var gatewayBinary = loadtest.GatewayBuild{Race: raceBuild}

func buildGateway(t *testing.T) string {
	t.Helper()
	path, err := gatewayBinary.Path(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// startGateway starts one embedded gateway process and returns its API URL and its metrics
// base URL (without the /metrics path, which the load tool adds).
func startGateway(t *testing.T) (api, metrics string) {
	t.Helper()
	nodes, err := loadtest.StartNodes(context.Background(), loadtest.NodesConfig{Binary: buildGateway(t), Count: 1, LogDir: t.TempDir(), LogPrefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodes.Stop)
	return nodes.APIs[0], strings.TrimSuffix(nodes.Metrics[0], "/metrics")
}

// readReport decodes the JSON report at path.
func readReport(t *testing.T, path string) *loadtest.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r loadtest.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestUsageAndBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "scenarios:"},
		{[]string{"--help"}, 0, "-in-flight"},
		{[]string{"stampede"}, 2, "unknown scenario"},
		{[]string{"report"}, 2, "usage: loadtest report"},
		{[]string{"report", "--json", "/nonexistent/r.json"}, 1, "no such file"},
		{[]string{"storm", "--quiet"}, 1, "pid"},
		{[]string{"churn", "--rate", "0", "--quiet"}, 1, "churn needs a rate"},
		{[]string{"suite", "--size", "huge", "--gateway", "/bin/true"}, 1, "want full or small"},
		{[]string{"hold", "--clients", "x"}, 2, "invalid value"},
		{[]string{"hold", "extra"}, 2, "unexpected arguments"},
		{[]string{"hold", "--target", "http://192.0.2.7:7350", "--quiet"}, 1, "--allow-remote"},
		{[]string{"hold", "--clients", "0", "--quiet"}, 1, "at least 1"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb, nil)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

// TestHoldWithWorkerProcesses runs a small hold over two worker processes (this test binary
// re-executed) and checks the merged report.
func TestHoldWithWorkerProcesses(t *testing.T) {
	api, metrics := startGateway(t)
	workerCmd := testWorkerCmd(t)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"hold", "--target", api, "--metrics", metrics, "--clients", "240", "--workers", "2",
		"--in-flight", "16", "--rate", "1000", "--hold", "2s", "--settle", "1s", "--ping-interval", "1s", "--source-ips", "3",
		"--json", jsonPath, "--fail-on-errors"}, strings.NewReader(""), &out, &errb, workerCmd)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	r := readReport(t, jsonPath)
	if r.Workers != 2 || r.Authed != 240 || r.Connected != 240 || r.ErrorCount != 0 || r.Histograms[loadtest.HistConnect].Count() != 240 {
		t.Errorf("merged report: workers %d, authed %d, connected %d, errors %v, connect samples %d", r.Workers, r.Authed, r.Connected, r.Errors, r.Histograms[loadtest.HistConnect].Count())
	}
	if r.Server == nil || r.Server.Sockets != 240 || r.PingRTT.Count == 0 {
		t.Errorf("server %+v, ping samples %d", r.Server, r.PingRTT.Count)
	}
	c := r.Connect
	if !(c.P50 <= c.P90 && c.P90 <= c.P99 && c.P99 <= c.P999 && c.P999 <= c.Max) {
		t.Errorf("connect percentiles not ordered: %+v", c)
	}
	if !strings.Contains(out.String(), "rss per socket") {
		t.Errorf("no summary table:\n%s", out.String())
	}
}

// TestLogoutWithWorkerProcesses runs the logout scenario over two worker processes: the
// action is a command the coordinator sends each worker over stdin, and the workers' counts and
// latencies merge into one report.
func TestLogoutWithWorkerProcesses(t *testing.T) {
	api, metrics := startGateway(t)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	htmlPath := filepath.Join(t.TempDir(), "r.html")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"logout", "--target", api, "--metrics", metrics, "--clients", "160", "--workers", "2",
		"--in-flight", "16", "--hold", "2s", "--ping-interval", "1s", "--json", jsonPath, "--html", htmlPath, "--fail-on-errors"},
		strings.NewReader(""), &out, &errb, testWorkerCmd(t))
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	r := readReport(t, jsonPath)
	if r.Workers != 2 || r.Connected != 160 || r.Dropped != 0 || r.Counts[loadtest.CountLoggedOut] != 160 || r.Counts[loadtest.CountRefused] != 160 ||
		r.Histograms[loadtest.HistRefused].Count() != 160 {
		t.Errorf("merged logout report: workers %d, connected %d, dropped %d, counts %v", r.Workers, r.Connected, r.Dropped, r.Counts)
	}
	if page, err := os.ReadFile(htmlPath); err != nil || !strings.Contains(string(page), "logout refused latency") {
		t.Errorf("html report: %v", err)
	}
	if !strings.Contains(out.String(), "logout refused latency") {
		t.Errorf("summary table lacks the logout figures:\n%s", out.String())
	}
	// The saved report renders again: the same table, and the same page but for its date.
	again := filepath.Join(t.TempDir(), "again.html")
	var out2 bytes.Buffer
	if code := run(context.Background(), []string{"report", "--json", jsonPath, "--html", again}, strings.NewReader(""), &out2, &errb, nil); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errb.String())
	}
	if out2.String() != out.String() {
		t.Errorf("re-rendered table differs:\n%s\nwant:\n%s", out2.String(), out.String())
	}
	first, _ := os.ReadFile(htmlPath)
	second, _ := os.ReadFile(again)
	if len(second) == 0 || strings.Count(string(second), "<svg") != strings.Count(string(first), "<svg") {
		t.Errorf("re-rendered page has %d charts, the first %d", strings.Count(string(second), "<svg"), strings.Count(string(first), "<svg"))
	}
}
