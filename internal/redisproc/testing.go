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
	requireBinaries(t, "redis-server")
	s, err := Start(Options{})
	if err != nil {
		t.Fatalf("redisproc: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("redisproc: %v", err)
		}
	})
	return s
}

// ClusterForTest starts a Redis Cluster of masters nodes for t and stops it when t ends,
// skipping or failing as ForTest does when redis-server or redis-cli is missing.
func ClusterForTest(t testing.TB, masters int) *Cluster {
	t.Helper()
	requireBinaries(t, "redis-server", "redis-cli")
	c, err := StartCluster(Options{}, masters)
	if err != nil {
		t.Fatalf("redisproc: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("redisproc: %v", err)
		}
	})
	return c
}

// SentinelForTest starts a Sentinel deployment (a master, a replica, three sentinels) for t
// and stops it when t ends, skipping or failing as ForTest does when redis-server is missing.
func SentinelForTest(t testing.TB) *Sentinel {
	t.Helper()
	requireBinaries(t, "redis-server")
	d, err := StartSentinel(Options{})
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
