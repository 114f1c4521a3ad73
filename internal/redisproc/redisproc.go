package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/internal/freeport"
)

// Options configures the servers Start, StartCluster and StartSentinel run.
type Options struct {
	// Dir is the working directory for the server's files (its log, a cluster node's config).
	// Empty means a fresh temporary directory, removed when the server stops.
	Dir string
	// Args are extra redis-server arguments, appended after the defaults so that they win
	// (for example "--maxmemory", "64mb"). They must not change the port or bind address.
	Args []string
	// Binary is the redis-server executable; empty means "redis-server" on PATH.
	Binary string
	// CLI is the redis-cli executable StartCluster uses; empty means "redis-cli" on PATH.
	CLI string
	// StartTimeout bounds the wait for a started server to answer; zero means 5s.
	StartTimeout time.Duration
}

// Server is one redis-server process on a loopback port. Its methods are safe for concurrent
// use. The port stays the same across Restart, so clients configured with Addr reconnect.
type Server struct {
	opts Options
	bin  string
	port int
	// bus is the cluster bus port of a cluster node, zero for a plain server.
	bus     int
	cluster bool
	// sentinelConf is the initial config file of a sentinel, empty for a data server.
	sentinelConf string

	mu     sync.Mutex
	dir    string
	ownDir bool
	proc   *process
}

// process is one run of redis-server. done is closed once Wait has reaped it, so no zombie
// and no waiting goroutine outlives Stop or Kill.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// How often a free port is re-picked when redis-server fails to bind it (another process
// took it between our probe and redis-server's bind).
const startAttempts = 5

// stopTimeout bounds a graceful stop before it escalates to SIGKILL.
const stopTimeout = 10 * time.Second

// errExited reports that redis-server exited before it answered, typically a failed bind.
var errExited = errors.New("redis-server exited before answering")

// Start runs redis-server on a free loopback port with persistence disabled and returns once
// it answers. The caller must Stop or Kill it.
func Start(opts Options) (*Server, error) {
	return start(&Server{opts: opts})
}

// start runs s, whose opts and kind (cluster node, sentinel) the caller set.
func start(s *Server) (*Server, error) {
	bin, err := lookup(s.opts.Binary, "redis-server")
	if err != nil {
		return nil, err
	}
	s.bin = bin
	s.opts.StartTimeout = s.opts.startTimeout()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL returns the server's address as a redis:// URL for database 0, the form
// redis.ParseURL and the gateway's --redis-url accept.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop ends the server with SIGTERM and waits until the process is reaped, escalating to
// SIGKILL if it does not exit within 10s. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGTERM)
}

// Kill ends the server with SIGKILL, as a crash would, and waits until the process is reaped.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL)
}

// Restart stops the server if it runs, then starts a new one on the same port and returns
// once it answers. Nothing is persisted, so the new server starts empty.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(syscall.SIGTERM); err != nil {
		return err
	}
	return s.startLocked()
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// startLocked launches redis-server on s.port, or on a free port picked here when s.port is
// still zero (the first start).
func (s *Server) startLocked() error {
	if s.dir == "" {
		if s.opts.Dir != "" {
			if err := os.MkdirAll(s.opts.Dir, 0o700); err != nil {
				return fmt.Errorf("failed to create redis dir: %w", err)
			}
			s.dir = s.opts.Dir
		} else {
			dir, err := os.MkdirTemp("", "redisproc-")
			if err != nil {
				return fmt.Errorf("failed to create redis dir: %w", err)
			}
			s.dir, s.ownDir = dir, true
		}
	}
	fixed := s.port != 0
	var lastErr error
	for attempt := range startAttempts {
		port, bus := s.port, s.bus
		if !fixed {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
			if s.cluster {
				if bus, err = freePort(); err != nil {
					return err
				}
			}
		}
		err := s.launch(port, bus)
		if err == nil {
			s.port, s.bus = port, bus
			return nil
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
		if fixed {
			// The port is ours to reuse, only perhaps not free yet: wait and try again.
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		}
	}
	s.removeDir()
	return lastErr
}

// launch starts one redis-server process and waits until it answers, or reaps it.
func (s *Server) launch(port, bus int) error {
	var args []string
	if s.sentinelConf != "" {
		// redis-server runs as a sentinel when its config file comes first. The sentinel
		// rewrites that file with what it learns, so it must be a writable file of its own;
		// each launch starts from the initial config, and the flags below override its port.
		conf := filepath.Join(s.dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(s.sentinelConf), 0o600); err != nil {
			return fmt.Errorf("failed to write sentinel config: %w", err)
		}
		args = []string{conf, "--sentinel"}
	}
	args = append(args,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "redis.log",
	)
	if s.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			// An explicit bus port: the default, port+10000, is past 65535 for most ephemeral ports.
			"--cluster-port", strconv.Itoa(bus),
		)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitReady(addr, cmd.Process.Pid, p.done, s.opts.StartTimeout); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server on %s: %w%s", addr, err, s.logTail())
	}
	s.proc = p
	return nil
}

// waitReady polls until the server on addr answers as process pid. Checking the pid, not just
// a PING, makes sure the answer does not come from another process that owns the port.
func waitReady(addr string, pid int, exited <-chan struct{}, timeout time.Duration) error {
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return errExited
		default:
		}
		if info, err := command(addr, 200*time.Millisecond, "INFO", "server"); err == nil && strings.Contains(info, want) {
			if _, err := command(addr, 200*time.Millisecond, "PING"); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	p := s.proc
	s.proc = nil
	if p != nil {
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("failed to signal redis-server: %w", err)
		}
		t := time.NewTimer(stopTimeout)
		select {
		case <-p.done:
			t.Stop()
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.removeDir()
	return nil
}

// removeDir deletes a temporary directory this server created; the next start makes a new one.
func (s *Server) removeDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
		s.dir, s.ownDir = "", false
	}
}

// logTail returns the end of the server's log, to explain a failed start.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	const limit = 2000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return "\nredis log:\n" + string(b)
}

// Cluster is a Redis Cluster of masters without replicas, each a Server.
type Cluster struct {
	servers []*Server
	dir     string
	ownDir  bool
}

// StartCluster runs masters (at least 3) cluster-enabled redis-servers, joins them with
// redis-cli --cluster create, and returns once every node reports cluster_state:ok and knows
// every other node. The caller must Stop it.
func StartCluster(opts Options, masters int) (*Cluster, error) {
	if masters < 3 {
		return nil, fmt.Errorf("a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	cli, err := lookup(opts.CLI, "redis-cli")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: opts.Dir}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "redisproc-cluster-"); err != nil {
			return nil, fmt.Errorf("failed to create cluster dir: %w", err)
		}
		c.ownDir = true
	}
	for i := range masters {
		nodeOpts := opts
		nodeOpts.Dir = filepath.Join(c.dir, fmt.Sprintf("node%d", i))
		s, err := start(&Server{opts: nodeOpts, cluster: true})
		if err != nil {
			_ = c.Stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	cancel()
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("failed to create cluster: %w\n%s", err, out)
	}
	if err := c.waitOK(20 * time.Second); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// waitOK polls CLUSTER INFO on every node until each sees all slots served by all masters.
func (c *Cluster) waitOK(timeout time.Duration) error {
	want := []string{
		"cluster_state:ok\r\n",
		"cluster_slots_ok:16384\r\n",
		"cluster_known_nodes:" + strconv.Itoa(len(c.servers)) + "\r\n",
	}
	deadline := time.Now().Add(timeout)
	for _, s := range c.servers {
		for {
			info, err := command(s.Addr(), time.Second, "CLUSTER", "INFO")
			if err == nil && containsAll(info, want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster node %s not ready after %v: %v\n%s", s.Addr(), timeout, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Addrs returns the "127.0.0.1:port" of every master.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL returns the cluster as one URL in the form redis.ParseClusterURL accepts:
// "redis://first?addr=second&addr=third".
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	if len(addrs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("redis://" + addrs[0])
	for i, a := range addrs[1:] {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString("addr=" + a)
	}
	return b.String()
}

// Servers returns the cluster's nodes, for tests that stop or kill one.
func (c *Cluster) Servers() []*Server { return append([]*Server(nil), c.servers...) }

// Stop stops every node and removes the cluster's temporary directory.
func (c *Cluster) Stop() error {
	var errs []error
	for _, s := range c.servers {
		errs = append(errs, s.Stop())
	}
	if c.ownDir {
		_ = os.RemoveAll(c.dir)
		c.ownDir = false
	}
	return errors.Join(errs...)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// lookup resolves an executable: the configured path, or name on PATH.
func lookup(configured, name string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("failed to find %s: %w", name, err)
	}
	return p, nil
}

// freePort returns a loopback port that was free a moment ago. Another process may take it
// before redis-server binds it; startLocked then retries with another.
func freePort() (int, error) { return freeport.Get() }

// command sends one command over a fresh connection and returns a simple, integer or bulk
// string reply. It is all this package needs to see that a server is up, and keeps the
// package free of a Redis client dependency.
func command(addr string, timeout time.Duration, args ...string) (string, error) {
	v, err := roundTrip(addr, timeout, args...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: array reply, want a string", args[0])
	}
	return s, nil
}

// roundTrip sends one command over a fresh connection and returns its reply: a string for a
// simple, integer or bulk string reply, a []any of replies for an array.
func roundTrip(addr string, timeout time.Duration, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one RESP2 reply. A nil bulk string is an error, at the top level as inside
// an array: none of the replies this package reads has one where a value is expected.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return nil, fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return nil, errors.New("nil reply")
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad array length %q", line)
		}
		elems := make([]any, n)
		for i := range elems {
			if elems[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return elems, nil
	default:
		return nil, fmt.Errorf("unsupported reply %q", line)
	}
}
