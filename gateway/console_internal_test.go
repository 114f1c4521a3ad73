package gateway

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// consoleAt is a console whose clock the test moves.
func consoleAt(t *testing.T) (*console, *time.Time) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newConsole(Config{ConsoleUsername: "op", ConsolePassword: "console password"})
	c.now = func() time.Time { return now }
	return c, &now
}

func withCookie(value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/console/api/me", nil)
	r.AddCookie(&http.Cookie{Name: consoleCookie, Value: value})
	return r
}

func TestConsoleSessionExpiry(t *testing.T) {
	c, now := consoleAt(t)
	mem := c.sessions.(*memoryConsoleSessions)
	mem.m["tok"] = &ConsoleSession{User: "op", CSRF: "x", Created: *now}
	*now = now.Add(consoleSessionTTL)
	if _, cs, _ := c.session(withCookie("tok")); cs == nil {
		t.Fatal("session gone at its TTL")
	}
	*now = now.Add(time.Second)
	if _, cs, _ := c.session(withCookie("tok")); cs != nil {
		t.Fatal("session alive past its TTL")
	}
	if len(mem.m) != 0 {
		t.Error("expired session kept")
	}
	if _, cs, _ := c.session(withCookie("")); cs != nil {
		t.Error("empty cookie accepted")
	}
}

func TestConsoleSessionsBounded(t *testing.T) {
	c, now := consoleAt(t)
	mem := c.sessions.(*memoryConsoleSessions)
	for i := range consoleMaxSessions {
		mem.m[strconv.Itoa(i)] = &ConsoleSession{Created: now.Add(time.Duration(i) * time.Millisecond)}
	}
	mem.sweep()
	if len(mem.m) != consoleMaxSessions-1 || mem.m["0"] != nil {
		t.Errorf("%d sessions, oldest kept: %v", len(mem.m), mem.m["0"] != nil)
	}
	*now = now.Add(consoleSessionTTL + time.Second)
	mem.sweep()
	if len(mem.m) != 0 {
		t.Errorf("%d expired sessions kept", len(mem.m))
	}
}

// TestConsoleLoginWindow: failures older than the window stop counting.
func TestConsoleLoginWindow(t *testing.T) {
	c, now := consoleAt(t)
	for range consoleLoginFailures {
		if !c.loginAllowed("ip") {
			t.Fatal("refused before the limit")
		}
		c.loginFailed("ip")
		*now = now.Add(time.Second)
	}
	if c.loginAllowed("ip") {
		t.Fatal("allowed at the limit")
	}
	// The first failure leaves the window one minute after it happened.
	*now = now.Add(consoleLoginWindow - consoleLoginFailures*time.Second + time.Millisecond)
	if !c.loginAllowed("ip") {
		t.Fatal("still refused once the oldest failure left the window")
	}
	*now = now.Add(consoleLoginWindow)
	c.loginAllowed("ip")
	if len(c.failures) != 0 {
		t.Errorf("failures of an idle IP kept: %v", c.failures)
	}
}

// TestConsoleFailureTableBounded: a full table of recent failures refuses new IPs rather than
// grow; once they expire, new IPs are allowed again.
func TestConsoleFailureTableBounded(t *testing.T) {
	c, now := consoleAt(t)
	for i := range consoleMaxTrackedIPs {
		c.failures[strconv.Itoa(i)] = []time.Time{*now}
	}
	if c.loginAllowed("new") {
		t.Fatal("a new IP allowed with the table full of recent failures")
	}
	if !c.loginAllowed("7") {
		t.Fatal("a tracked IP below the limit refused")
	}
	*now = now.Add(consoleLoginWindow + time.Second)
	if !c.loginAllowed("new") || len(c.failures) != 0 {
		t.Fatalf("after the window: allowed=%v, %d tracked", c.loginAllowed("new"), len(c.failures))
	}
}
