package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a store's Watch, a Redis
// client or a subscription left running is a leak the gateway would have too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
