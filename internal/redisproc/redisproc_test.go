package redisproc

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func do(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, err := command(addr, time.Second, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

// pid returns the server's current process id.
func pid(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// reaped reports whether no process (not even a zombie) has that pid any more.
func reaped(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestServerLifecycle(t *testing.T) {
	s := ForTest(t)
	if got := do(t, s.Addr(), "PING"); got != "PONG" {
		t.Fatalf("PING = %q", got)
	}
	if want := "redis://127.0.0.1:" + strconv.Itoa(s.Port()) + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	do(t, s.Addr(), "SET", "k", "v")
	first := pid(s)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if !reaped(first) {
		t.Fatalf("process %d not reaped after Restart", first)
	}
	if _, err := command(s.Addr(), time.Second, "GET", "k"); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("GET after restart: %v, want nil reply (fresh state)", err)
	}

	second := pid(s)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if !reaped(second) || s.Running() {
		t.Fatalf("process %d not reaped after Kill", second)
	}
	if _, err := command(s.Addr(), 200*time.Millisecond, "PING"); err == nil {
		t.Fatal("killed server still answers")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := do(t, s.Addr(), "PING"); got != "PONG" {
		t.Fatalf("PING after restart = %q", got)
	}

	third := pid(s)
	dir := s.dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !reaped(third) {
		t.Fatalf("process %d not reaped after Stop", third)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary dir %s left behind: %v", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// A fixed port that another process holds makes Restart fail with the server's own reason,
// not hang, and leaves no process behind.
func TestRestartPortTaken(t *testing.T) {
	requireBinaries(t, "redis-server")
	s, err := Start(Options{StartTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Skipf("port reused by someone else meanwhile: %v", err)
	}
	defer l.Close()
	err = s.Restart()
	if err == nil {
		t.Fatal("Restart on a taken port succeeded")
	}
	if !errors.Is(err, errExited) {
		t.Fatalf("Restart error = %v, want errExited", err)
	}
	if s.Running() {
		t.Fatal("server reported running after failed start")
	}
}

func TestStartRejectsMissingBinary(t *testing.T) {
	if _, err := Start(Options{Binary: "/nonexistent/redis-server"}); err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

func TestCluster(t *testing.T) {
	if _, err := StartCluster(Options{}, 2); err == nil {
		t.Fatal("StartCluster(2) succeeded")
	}
	c := ClusterForTest(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 || len(c.Servers()) != 3 {
		t.Fatalf("Addrs = %v", addrs)
	}
	if want := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]; c.URL() != want {
		t.Fatalf("URL = %q, want %q", c.URL(), want)
	}
	for _, a := range addrs {
		if info := do(t, a, "CLUSTER", "INFO"); !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("%s: %s", a, info)
		}
	}
	// Keys in different slots live on different masters: a node refuses keys it does not own.
	moved := 0
	for i := range 10 {
		if _, err := command(addrs[0], time.Second, "SET", "key"+strconv.Itoa(i), "v"); err != nil && strings.Contains(err.Error(), "MOVED") {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("every key landed on the first node; slots not spread")
	}
	pids := []int{pid(c.servers[0]), pid(c.servers[1]), pid(c.servers[2])}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if !reaped(p) {
			t.Fatalf("cluster node %d not reaped", p)
		}
	}
}

func TestSentinel(t *testing.T) {
	start := time.Now()
	d := SentinelForTest(t)
	t.Logf("deployment ready in %v", time.Since(start))
	addrs := d.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 sentinels", addrs)
	}
	if want := "redis-sentinel://" + strings.Join(addrs, ",") + "?master=" + d.MasterName(); d.URL() != want {
		t.Fatalf("URL = %q, want %q", d.URL(), want)
	}
	master, replica := d.data[0], d.data[1]
	if got, err := d.MasterAddr(); err != nil || got != master.Addr() {
		t.Fatalf("MasterAddr = %q, %v; want %s", got, err, master.Addr())
	}
	do(t, master.Addr(), "SET", "k", "v")
	waitUntil(t, 5*time.Second, "the write replicated", func() bool {
		v, err := command(replica.Addr(), time.Second, "GET", "k")
		return err == nil && v == "v"
	})

	old := pid(master)
	killed, err := d.KillMaster()
	if err != nil || killed != master.Addr() {
		t.Fatalf("KillMaster = %q, %v; want %s", killed, err, master.Addr())
	}
	if !reaped(old) || master.Running() {
		t.Fatalf("master process %d not reaped after KillMaster", old)
	}
	start = time.Now()
	waitUntil(t, 15*time.Second, "the replica promoted", func() bool {
		got, err := d.MasterAddr()
		return err == nil && got == replica.Addr()
	})
	t.Logf("failover in %v", time.Since(start))
	if info := do(t, replica.Addr(), "INFO", "replication"); !strings.Contains(info, "role:master\r\n") {
		t.Fatalf("promoted replica: %s", info)
	}
	if got := do(t, replica.Addr(), "GET", "k"); got != "v" {
		t.Fatalf("GET on the new master = %q, want the replicated value", got)
	}

	pids := []int{pid(replica)}
	for _, s := range d.sentinels {
		pids = append(pids, pid(s))
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if !reaped(p) {
			t.Fatalf("process %d not reaped after Stop", p)
		}
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Fatalf("temporary dir %s left behind: %v", d.dir, err)
	}
}

// waitUntil polls cond until it holds, failing t after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
