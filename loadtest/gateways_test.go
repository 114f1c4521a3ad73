package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// TestMain runs this test binary as a gateway process when asked to (childGateway), and
// otherwise fails the package if a goroutine outlives the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childGateway())
	}
	code := m.Run()
	gatewayBinary.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The keys every test gateway shares, so that a token issued by one node verifies on all.
var testAuth = auth.Config{EncryptionKey: "loadtest-session-key", RefreshEncryptionKey: "loadtest-refresh-key",
	TokenExpiry: time.Minute, RefreshTokenExpiry: time.Hour, BcryptCost: 4}

const (
	childEnv      = "LOADTEST_CHILD_GATEWAY" // its value is the drain period
	testHTTPKey   = "loadtest-http-key"
	testPingEvery = time.Second
)

func testGatewayConfig() gateway.Config {
	return gateway.Config{PingPeriod: testPingEvery, PongWait: 3 * testPingEvery, HTTPKey: testHTTPKey, Auth: testAuth}
}

// childGateway is the body of a gateway process started by startGatewayProcess: an embedded
// node on free loopback ports, which it prints as "<api URL> <metrics URL>" on stdout, stopped
// (gracefully, with the drain period given in childEnv) by SIGTERM.
func childGateway() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg := testGatewayConfig()
	if d, err := time.ParseDuration(os.Getenv(childEnv)); err == nil {
		cfg.DrainPeriod = d
	}
	srv, err := gateway.New(cfg, zerolog.Nop(), gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("http://%s http://%s/metrics\n", apiLn.Addr(), mLn.Addr())
	if err := srv.Run(ctx, apiLn, mLn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// gatewayProc is a gateway running as a process of its own.
type gatewayProc struct {
	API, Metrics string
	cmd          *exec.Cmd
	exited       chan struct{}
}

// startGatewayProcess starts this test binary as an embedded gateway node (childGateway) and
// stops it when t ends, if the test has not.
func startGatewayProcess(t *testing.T, drain time.Duration) *gatewayProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+drain.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProc{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		if !ok || len(f) != 2 {
			t.Fatalf("gateway process printed %q", line)
		}
		p.API, p.Metrics = f[0], f[1]
	case <-time.After(20 * time.Second):
		t.Fatal("gateway process did not start")
	}
	return p
}

// startGatewayOn runs a gateway node in this process on stores and returns its API and
// metrics URLs; it stops when t ends.
func startGatewayOn(t *testing.T, stores gateway.Stores) (api, metrics string) {
	t.Helper()
	srv, err := gateway.New(testGatewayConfig(), zerolog.Nop(), stores)
	if err != nil {
		t.Fatal(err)
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, apiLn, mLn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return "http://" + apiLn.Addr().String(), "http://" + mLn.Addr().String() + "/metrics"
}

// startGateway runs an embedded (in-memory) gateway node in this process.
func startGateway(t *testing.T) (api, metrics string) {
	t.Helper()
	return startGatewayOn(t, gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
}

// startRedisGateways runs n gateway nodes in this process that share one real redis-server
// (accounts and revocations), and returns their API and metrics URLs.
func startRedisGateways(t *testing.T, n int) (apis, metrics []string) {
	t.Helper()
	rs := redisproc.ForTest(t)
	for range n {
		client := redis.NewClient(&redis.Options{Addr: rs.Addr()})
		t.Cleanup(func() { client.Close() })
		api, m := startGatewayOn(t, gateway.Stores{Accounts: auth.NewRedisAccounts(client, "lt:"), Revocations: auth.NewRedisRevocations(client, "lt:")})
		apis, metrics = append(apis, api), append(metrics, m)
	}
	return apis, metrics
}

// The gateway binary the tests start, built once (with -race under -race, reusing the
// packages this test build compiled).
var gatewayBinary = GatewayBuild{Race: raceBuild}

func buildGateway(t *testing.T) string {
	t.Helper()
	path, err := gatewayBinary.Path(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// startClusterProcesses starts n real gateway processes (cmd/gateway, built here) on one
// fresh redis-server, as the suite does, and stops them when t ends. Whatever the gateway does
// with --redis-url (the cluster bus, once it exists) is what the test gets.
func startClusterProcesses(t *testing.T, n int) *Nodes {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server not found on PATH; install Redis to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	nodes, err := StartNodes(context.Background(), NodesConfig{Binary: buildGateway(t), Count: n, Redis: true, LogDir: t.TempDir(), LogPrefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodes.Stop)
	return nodes
}
