package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/internal/freeport"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// NodesConfig describes gateway processes for StartNodes.
type NodesConfig struct {
	Binary string // the cmd/gateway executable
	Count  int    // nodes
	// Redis starts one fresh redis-server (on a free port) that every node joins with
	// --redis-url; otherwise each node is embedded (in-memory stores, its own).
	Redis       bool
	DrainPeriod time.Duration // --drain-period; 0: the gateway's default
	// LogDir receives each node's output as <LogPrefix>-node<i>.log.
	LogDir, LogPrefix string
	// PortBase, when set, is node i's API port PortBase+2i and metrics port PortBase+2i+1; 0
	// picks free loopback ports.
	PortBase int
}

// Nodes are running gateway processes on loopback. They share the session keys, so a token
// issued by one verifies on all, and the http key NodesHTTPKey.
type Nodes struct {
	APIs, Metrics []string // API base URLs and /metrics URLs, by node
	PIDs          []int
	cmds          []*exec.Cmd
	exited        []chan struct{}
	redis         *redisproc.Server
}

// NodesHTTPKey is the server API key of the nodes StartNodes runs.
const NodesHTTPKey = "loadtest-suite-http-key"

const nodesKeys = "--encryption-key=loadtest-suite-session-key --refresh-encryption-key=loadtest-suite-refresh-key --http-key=" + NodesHTTPKey

// StartNodes starts the gateway processes side by side and returns once each answers /readyz
// (20s at most). The caller must Stop them.
func StartNodes(ctx context.Context, nc NodesConfig) (*Nodes, error) {
	s := &Nodes{}
	if nc.Redis {
		rs, err := redisproc.Start(redisproc.Options{})
		if err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		s.redis = rs
	}
	for i := range nc.Count {
		apiPort, metricsPort, err := nodePorts(nc.PortBase, i)
		if err != nil {
			s.Stop()
			return nil, err
		}
		args := append(strings.Fields(nodesKeys), fmt.Sprintf("--addr=127.0.0.1:%d", apiPort), fmt.Sprintf("--metrics-addr=127.0.0.1:%d", metricsPort),
			"--log-level=warn", fmt.Sprintf("--node-id=%s-%d", strings.TrimSuffix("loadtest-"+nc.LogPrefix, "-"), i))
		if nc.DrainPeriod > 0 {
			args = append(args, "--drain-period="+nc.DrainPeriod.String())
		}
		if s.redis != nil {
			args = append(args, "--redis-url="+s.redis.URL())
		}
		logf, err := os.OpenFile(filepath.Join(nc.LogDir, fmt.Sprintf("%s-node%d.log", nc.LogPrefix, i)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			s.Stop()
			return nil, err
		}
		cmd := exec.Command(nc.Binary, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			s.Stop()
			return nil, fmt.Errorf("start gateway: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		s.cmds, s.exited, s.PIDs = append(s.cmds, cmd), append(s.exited, done), append(s.PIDs, cmd.Process.Pid)
		api := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
		s.APIs, s.Metrics = append(s.APIs, api), append(s.Metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	}
	for i, api := range s.APIs {
		if err := waitReady(ctx, api, s.exited[i]); err != nil {
			s.Stop()
			return nil, fmt.Errorf("gateway node %d: %w (log in %s)", i, err, nc.LogDir)
		}
	}
	return s, nil
}

// nodePorts are node i's API and metrics ports.
func nodePorts(base, i int) (int, int, error) {
	if base > 0 {
		return base + 2*i, base + 2*i + 1, nil
	}
	var ps [2]int
	for j := range ps {
		p, err := freeport.Get() // not an ephemeral port: the clients' connections cannot take it
		if err != nil {
			return 0, 0, err
		}
		ps[j] = p
	}
	return ps[0], ps[1], nil
}

func waitReady(ctx context.Context, api string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("not ready within 20s")
}

// Stop ends the nodes (SIGTERM to all, then SIGKILL to any still running 30 s later) and the
// redis-server. A node that already exited (a storm's) is fine.
func (s *Nodes) Stop() {
	for _, c := range s.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for i, c := range s.cmds {
		select {
		case <-s.exited[i]:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			<-s.exited[i]
		}
	}
	if s.redis != nil {
		_ = s.redis.Stop()
	}
}

// BuildGateway builds cmd/gateway of this module into dst (with -race when race), from any
// directory inside the module.
func BuildGateway(ctx context.Context, dst string, race bool) error {
	args := []string{"build", "-o", dst}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, "github.com/sessiongate/sessiongate/cmd/gateway")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build cmd/gateway: %w\n%s", err, out)
	}
	return nil
}

// GatewayBuild builds cmd/gateway once, into a temporary directory, for a process that starts
// gateways several times (tests). Its methods are safe for concurrent use.
type GatewayBuild struct {
	Race bool // build with -race

	once sync.Once
	path string
	err  error
}

// Path builds the binary the first time and returns its path.
func (b *GatewayBuild) Path(ctx context.Context) (string, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "loadtest-gateway-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "gateway")
		b.err = BuildGateway(ctx, b.path, b.Race)
	})
	return b.path, b.err
}

// Remove deletes the binary's directory, if it was built.
func (b *GatewayBuild) Remove() {
	if b.path != "" {
		os.RemoveAll(filepath.Dir(b.path))
	}
}
