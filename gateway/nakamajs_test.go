package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
)

// The nakama-js compatibility test runs the official npm client, @heroiclabs/nakama-js 2.8.0
// pinned in testdata/nakamajs/package-lock.json, against an in-process gateway with the
// production defaults (server key "defaultkey", 60s session and 1h refresh tokens). The
// checks themselves are in testdata/nakamajs/session_test.mjs (HTTP session API) and
// socket_test.mjs (realtime socket, with 2h tokens).
const (
	nakamaJSDir    = "testdata/nakamajs"
	nakamaJSScript = "session_test.mjs"
	// nakamaJSSocketScript checks the realtime socket (TestNakamaJSSocket).
	nakamaJSSocketScript = "socket_test.mjs"
	// nakamaJSStamp, inside node_modules, records the hash of the lock file it was installed from.
	nakamaJSStamp      = ".sessiongate-install-stamp"
	nakamaJSRunTimeout = 60 * time.Second
	nakamaJSNPMTimeout = 5 * time.Minute
	// nakamaJSStaleLock is when a lock left by a crashed install may be taken over.
	nakamaJSStaleLock = 10 * time.Minute
)

func TestNakamaJSSession(t *testing.T) {
	nakamaJSRun(t, nakamaJSScript, gateway.Config{
		ServerKey: "defaultkey",
		Auth: auth.Config{
			EncryptionKey:        "nakamajs-test-session-key",
			RefreshEncryptionKey: "nakamajs-test-refresh-key",
			BcryptCost:           4,
		},
	})
}

// TestNakamaJSSocket runs testdata/nakamajs/socket_test.mjs: nakama-js's realtime socket
// (connect with status, its ping/pong heartbeat, followUsers, updateStatus reaching
// onstatuspresence, a game session close reaching onnotification, its heartbeats keeping a
// play session alive, logout keeping the open socket while refusing a new one). Tokens live 2h so
// that nakama-js does not refresh the session (it does when it expires within 5 minutes) and
// the logout revokes the very token the socket connected with.
func TestNakamaJSSocket(t *testing.T) {
	nakamaJSRun(t, nakamaJSSocketScript, nakamaJSSocketConfig())
}

// TestNakamaJSSocketProtobuf runs the same socket checks with both sockets on nakama-js's
// protobuf adapter, @heroiclabs/nakama-js-protobuf (pinned in testdata/nakamajs): binary
// envelopes on GET /ws?format=protobuf.
func TestNakamaJSSocketProtobuf(t *testing.T) {
	nakamaJSRun(t, nakamaJSSocketScript, nakamaJSSocketConfig(), "NAKAMA_SOCKET_FORMAT=protobuf")
}

func nakamaJSSocketConfig() gateway.Config {
	return gateway.Config{
		ServerKey: "defaultkey",
		Auth: auth.Config{
			EncryptionKey:        "nakamajs-test-session-key",
			RefreshEncryptionKey: "nakamajs-test-refresh-key",
			TokenExpiry:          2 * time.Hour,
			RefreshTokenExpiry:   4 * time.Hour,
			BcryptCost:           4,
		},
		PlaySessionTimeout: time.Second,
	}
}

// nakamaJSRun runs a script of testdata/nakamajs with node, with env added to its environment,
// against an in-process gateway configured by cfg over memory stores.
func nakamaJSRun(t *testing.T, script string, cfg gateway.Config, env ...string) {
	node := nakamaJSTool(t, "node")
	npm := nakamaJSTool(t, "npm")
	nakamaJSCheckNodeVersion(t, node)
	dir, err := filepath.Abs(nakamaJSDir)
	if err != nil {
		t.Fatal(err)
	}
	nakamaJSInstall(t, npm, dir)

	s := startServer(t, cfg, gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	runCtx, stop := context.WithTimeout(context.Background(), nakamaJSRunTimeout)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NAKAMA_HOST="+host, "NAKAMA_PORT="+port, "NAKAMA_SERVER_KEY="+cfg.ServerKey)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	switch {
	case runCtx.Err() != nil:
		t.Errorf("node %s did not finish within %v; its output:\n%s", script, nakamaJSRunTimeout, out.String())
	case err != nil:
		t.Errorf("node %s failed (%v) after %v; its output:\n%s", script, err, elapsed, out.String())
	default:
		t.Logf("node %s passed in %v:\n%s", script, elapsed, out.String())
	}
}

// nakamaJSTool returns the path of a tool the test needs. Without it the test is skipped,
// except on CI (CI=true), where a missing tool is a failure.
func nakamaJSTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		nakamaJSSkip(t, "%s not found in PATH: the nakama-js compatibility test needs Node.js 20+ and npm", name)
	}
	return p
}

func nakamaJSSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// nakamaJSCheckNodeVersion requires Node 20 or later (global fetch and Response, which
// nakama-js relies on, and the ES module syntax of the script).
func nakamaJSCheckNodeVersion(t *testing.T, node string) {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		nakamaJSSkip(t, "node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		nakamaJSSkip(t, "node %s is too old: the nakama-js compatibility test needs Node.js 20+", v)
	}
}

// nakamaJSInstall runs "npm ci" in dir unless node_modules was already installed from the
// current package.json and package-lock.json. A lock file serialises concurrent test
// processes; the stamp is written only after a successful install.
func nakamaJSInstall(t *testing.T, npm, dir string) {
	t.Helper()
	want, err := nakamaJSLockHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	stamp := filepath.Join(dir, "node_modules", nakamaJSStamp)
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return
	}

	unlock := nakamaJSLock(t, dir)
	defer unlock()
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return // another process installed it while we waited
	}
	ctx, cancel := context.WithTimeout(context.Background(), nakamaJSNPMTimeout)
	defer cancel()
	// --ignore-scripts: nothing needs building, and it keeps dependencies' install hooks
	// (telemetry) from running. --prefer-offline: use the npm cache when it has the tarballs.
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCARF_ANALYTICS=false")
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("npm ci in %s took %v", dir, time.Since(start).Round(time.Millisecond))
}

// nakamaJSLockHash identifies an install by the content of package.json and package-lock.json.
func nakamaJSLockHash(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// nakamaJSLock takes an exclusive lock for installing into dir, shared by every process on the
// machine, and returns its release. The lock is a file created with O_EXCL in the temp dir; one
// older than nakamaJSStaleLock was left by a crashed process and is taken over.
func nakamaJSLock(t *testing.T, dir string) func() {
	t.Helper()
	sum := sha256.Sum256([]byte(dir))
	path := filepath.Join(os.TempDir(), "sessiongate-nakamajs-"+hex.EncodeToString(sum[:6])+".lock")
	deadline := time.Now().Add(nakamaJSNPMTimeout + time.Minute)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "pid %d\n", os.Getpid())
			_ = f.Close()
			return func() { _ = os.Remove(path) }
		}
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("install lock %s: %v", path, err)
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > nakamaJSStaleLock {
			t.Logf("taking over stale install lock %s", path)
			_ = os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("install lock %s still held after %v; remove it if no test is running", path, nakamaJSNPMTimeout+time.Minute)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
