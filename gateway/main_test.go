package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (a server, the auth service's watcher, an HTTP
// connection, a Redis client) outlives the tests that started it. One exception: go-redis
// redials a pool whose dials kept failing (Redis stopped by a test) on a goroutine that
// sleeps a second between tries and sees the pool closed only after its sleep.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
