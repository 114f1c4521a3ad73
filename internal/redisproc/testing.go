package redisproc

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ForTest starts a redis-server for t and stops it when t ends. Without a redis-server on
// PATH it skips t, except under CI=true, where a missing server must fail the run rather
// than silently skip the Redis half of the suite.
func ForTest(t testing.TB) *Server {
	t.Helper()
	return forTest(t, func() (*Server, error) { return Start(Options{}) }, "redis-server")
}

// ClusterForTest starts a Redis Cluster of masters nodes for t and stops it when t ends,
// skipping or failing as ForTest does when redis-server or redis-cli is missing.
func ClusterForTest(t testing.TB, masters int) *Cluster {
	t.Helper()
	return forTest(t, func() (*Cluster, error) { return StartCluster(Options{}, masters) }, "redis-server", "redis-cli")
}

// SentinelForTest starts a Sentinel deployment (a master, a replica, three sentinels) for t
// and stops it when t ends, skipping or failing as ForTest does when redis-server is missing.
func SentinelForTest(t testing.TB) *Sentinel {
	t.Helper()
	return forTest(t, func() (*Sentinel, error) { return StartSentinel(Options{}) }, "redis-server")
}

// forTest checks for the binaries, starts what start starts and stops it when t ends.
func forTest[D interface{ Stop() error }](t testing.TB, start func() (D, error), binaries ...string) D {
	t.Helper()
	requireBinaries(t, binaries...)
	d, err := start()
	if err != nil {
		t.Fatalf("redisproc: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("redisproc: %v", err)
		}
	})
	return d
}

func requireBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			msg := fmt.Sprintf("%s not found on PATH (%v); install Redis to run this test", name, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}
