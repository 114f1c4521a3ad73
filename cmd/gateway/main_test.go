package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// TestMain fails the package if run leaves a goroutine behind: a server, a store's watcher or
// a Redis client that outlives the command would outlive main too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a stderr that the node's goroutines and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env returns a lookupEnv over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// running is a run() in progress.
type running struct {
	cancel context.CancelFunc
	code   chan int
	stderr *syncBuffer
}

// startRun calls run in a goroutine; the test's cleanup cancels it if it is still going.
func startRun(t *testing.T, args []string, lookupEnv func(string) (string, bool)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, code: make(chan int, 1), stderr: &syncBuffer{}}
	go func() { r.code <- run(ctx, args, lookupEnv, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-r.code:
			r.code <- c
		case <-time.After(10 * time.Second):
			t.Error("run did not return within 10s of cancel")
		}
	})
	return r
}

// wait returns run's exit code, failing after timeout.
func (r *running) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case c := <-r.code:
		r.code <- c
		return c
	case <-time.After(timeout):
		t.Fatalf("run did not return within %v; stderr:\n%s", timeout, r.stderr)
		return -1
	}
}

// logLine returns the first JSON log line whose message is msg, waiting up to 10s for it.
func (r *running) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(r.stderr.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
				return m
			}
		}
		select {
		case c := <-r.code:
			r.code <- c
			t.Fatalf("run returned %d before logging %q; stderr:\n%s", c, msg, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line within 10s; stderr:\n%s", msg, r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var testArgs = []string{"--addr", "127.0.0.1:0", "--metrics-addr", "", "--bcrypt-cost", "4"}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func postDevice(t *testing.T, base, serverKey, id string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/account/authenticate/device", strings.NewReader(`{"id":"`+id+`"}`))
	req.SetBasicAuth(serverKey, "")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postJSON posts body with an optional Authorization header and returns the status and body.
func postJSON(t *testing.T, url, body, authorization string) (int, []byte) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestRunServesAndStops runs the embedded node with every default secret: it serves the API
// and metrics, warns about the secrets without printing them, and exits 0 on cancel.
func TestRunServesAndStops(t *testing.T) {
	r := startRun(t, []string{"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env(nil))
	api := r.logLine(t, "api listening")["addr"].(string)
	metrics := r.logLine(t, "metrics listening")["addr"].(string)
	if code, body := get(t, "http://"+api+"/healthz"); code != 200 || body != `{"status":"ok"}` {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code := postDevice(t, "http://"+api, "defaultkey", "device-0123456789"); code != 200 {
		t.Errorf("authenticate with the default server key: %d", code)
	}
	if code, body := get(t, "http://"+metrics+"/metrics"); code != 200 || !strings.Contains(body, "sessiongate_auth_outcomes_total") {
		t.Errorf("/metrics: %d, auth outcomes present %v", code, strings.Contains(body, "sessiongate_auth_outcomes_total"))
	}
	start := r.logLine(t, "gateway starting")
	if start["mode"] != "embedded" {
		t.Errorf("mode %v, want embedded", start["mode"])
	}
	if node, _ := start["node"].(string); node == "" {
		t.Error("no generated node id in the log")
	}
	warn := r.logLine(t, "INSECURE: running with default secrets, which are public; set them before exposing this node")
	if warn["level"] != "warn" {
		t.Errorf("default-secret message at level %v, want warn", warn["level"])
	}
	settings, _ := warn["settings"].([]any)
	var names []string
	for _, s := range settings {
		names = append(names, s.(string))
	}
	if strings.Join(names, ",") != "server-key,http-key,encryption-key,refresh-encryption-key" {
		t.Errorf("warning names %v, want all four secrets", names)
	}

	r.cancel()
	if code := r.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after cancel, want 0; stderr:\n%s", code, r.stderr)
	}
	out := r.stderr.String()
	for _, secret := range []string{defaultServerKey, defaultHTTPKey, defaultEncryptionKey, defaultRefreshEncryptionKey} {
		if strings.Contains(out, secret) {
			t.Errorf("log output contains the secret %q", secret)
		}
	}
	if !strings.Contains(out, `"message":"gateway stopped"`) {
		t.Errorf("no stop message in:\n%s", out)
	}
}

// TestRunSecretsFromEnv: secrets set through the environment are used, never logged, and
// silence the warning; a single default secret left is named alone.
func TestRunSecretsFromEnv(t *testing.T) {
	secrets := map[string]string{
		"SESSIONGATE_SERVER_KEY":             "s3rv3r-k3y-value",
		"SESSIONGATE_HTTP_KEY":               "h77p-k3y-value",
		"SESSIONGATE_ENCRYPTION_KEY":         "3ncrypt10n-k3y-value",
		"SESSIONGATE_REFRESH_ENCRYPTION_KEY": "r3fr3sh-k3y-value",
		"SESSIONGATE_NODE_ID":                "node-from-env",
	}
	r := startRun(t, testArgs, env(secrets))
	api := r.logLine(t, "api listening")["addr"].(string)
	if code := postDevice(t, "http://"+api, "s3rv3r-k3y-value", "device-0123456789"); code != 200 {
		t.Errorf("authenticate with the configured server key: %d", code)
	}
	if code := postDevice(t, "http://"+api, "defaultkey", "device-0123456789"); code != 401 {
		t.Errorf("authenticate with the default server key: %d, want 401", code)
	}
	if node := r.logLine(t, "gateway starting")["node"]; node != "node-from-env" {
		t.Errorf("node %v, want node-from-env", node)
	}
	r.cancel()
	if code := r.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	out := r.stderr.String()
	if strings.Contains(out, "INSECURE") {
		t.Errorf("default-secret warning with every secret set:\n%s", out)
	}
	for k, v := range secrets {
		if k != "SESSIONGATE_NODE_ID" && strings.Contains(out, v) {
			t.Errorf("log output contains the value of %s", k)
		}
	}

	delete(secrets, "SESSIONGATE_HTTP_KEY")
	r = startRun(t, testArgs, env(secrets))
	warn := r.logLine(t, "INSECURE: running with default secrets, which are public; set them before exposing this node")
	if s, _ := warn["settings"].([]any); len(s) != 1 || s[0] != "http-key" {
		t.Errorf("warning names %v, want [http-key]", warn["settings"])
	}
	r.cancel()
	r.wait(t, 5*time.Second)
}

func TestRunRefusesEqualKeys(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"flags": {append([]string{"--encryption-key", "same-key", "--refresh-encryption-key", "same-key"}, testArgs...), nil},
		"env":   {testArgs, map[string]string{"SESSIONGATE_ENCRYPTION_KEY": "same-key", "SESSIONGATE_REFRESH_ENCRYPTION_KEY": "same-key"}},
		"mixed": {append([]string{"--encryption-key", "same-key"}, testArgs...), map[string]string{"SESSIONGATE_REFRESH_ENCRYPTION_KEY": "same-key"}},
	} {
		var stderr syncBuffer
		code := run(context.Background(), tc.args, env(tc.env), &stderr)
		if code == 0 {
			t.Errorf("%s: exit code 0 with equal keys", name)
		}
		if out := stderr.String(); !strings.Contains(out, "encryption key and refresh encryption key must differ") {
			t.Errorf("%s: stderr lacks a clear message:\n%s", name, out)
		} else if strings.Contains(out, "api listening") {
			t.Errorf("%s: started serving before refusing", name)
		}
	}
}

func TestRunBadInvocations(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		"help":            {[]string{"-h"}, nil, 0, "-refresh-encryption-key"},
		"unknown flag":    {[]string{"--no-such-flag"}, nil, 2, "flag provided but not defined"},
		"extra argument":  {[]string{"serve"}, nil, 2, `unexpected argument "serve"`},
		"bad duration":    {[]string{"--token-expiry", "soon"}, nil, 2, "invalid value"},
		"bad env":         {nil, map[string]string{"SESSIONGATE_TOKEN_EXPIRY": "soon"}, 2, `invalid SESSIONGATE_TOKEN_EXPIRY="soon"`},
		"bad log level":   {append([]string{"--log-level", "loud"}, testArgs...), nil, 2, `invalid --log-level "loud"`},
		"empty log level": {append([]string{"--log-level", ""}, testArgs...), nil, 2, `invalid --log-level ""`},
		"bad log format":  {append([]string{"--log-format", "xml"}, testArgs...), nil, 2, `invalid --log-format "xml"`},
		"bad redis url":   {append([]string{"--redis-url", "http://localhost:6379"}, testArgs...), nil, 1, "unknown scheme"},
		"no redis":        {append([]string{"--redis-url", "redis://127.0.0.1:1/0?dial_timeout=200ms&max_retries=-1"}, testArgs...), nil, 1, "failed to reach redis"},
		"tls half":        {append([]string{"--tls-cert", "cert.pem"}, testArgs...), nil, 1, "TLS needs both a certificate and a key"},
		"bad bcrypt cost": {append([]string{"--bcrypt-cost", "99"}, testArgs[:4]...), nil, 1, "bcrypt cost must be"},
		"bad addr":        {[]string{"--addr", "256.0.0.1:0", "--metrics-addr", ""}, nil, 1, "failed to listen on 256.0.0.1:0"},
	} {
		var stderr syncBuffer
		code := run(context.Background(), tc.args, env(tc.env), &stderr)
		if code != tc.code {
			t.Errorf("%s: exit code %d, want %d; stderr:\n%s", name, code, tc.code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: stderr lacks %q:\n%s", name, tc.want, stderr.String())
		}
	}
}

func TestRunConsoleLog(t *testing.T) {
	r := startRun(t, append([]string{"--log-format", "console", "--log-level", "debug"}, testArgs...), env(nil))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.stderr.String(), "api listening") {
		if time.Now().After(deadline) {
			t.Fatalf("no api listening line:\n%s", r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.cancel()
	if code := r.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if out := r.stderr.String(); strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("console format wrote JSON:\n%s", out)
	}
}

// TestRunRedis runs a node on a real Redis: it uses the Redis stores under the configured
// prefix and exits 0 on cancel.
func TestRunRedis(t *testing.T) {
	srv := redisproc.ForTest(t)
	r := startRun(t, append([]string{"--redis-url", srv.URL(), "--redis-prefix", "cmdtest:"}, testArgs...), env(nil))
	api := r.logLine(t, "api listening")["addr"].(string)
	if mode := r.logLine(t, "gateway starting")["mode"]; mode != "redis" {
		t.Errorf("mode %v, want redis", mode)
	}
	if code, _ := get(t, "http://"+api+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	if code := postDevice(t, "http://"+api, "defaultkey", "device-0123456789"); code != 200 {
		t.Fatalf("authenticate: %d", code)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	keys, err := client.Keys(context.Background(), "cmdtest:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Error("no keys under the configured prefix after an authenticate")
	}
	// Play and game sessions are on the Redis stores too.
	_, body := postJSON(t, "http://"+api+"/v2/account/authenticate/device", `{"id":"device-0123456789"}`, "Basic "+base64.StdEncoding.EncodeToString([]byte("defaultkey:")))
	var sess struct{ Token string }
	if err := json.Unmarshal(body, &sess); err != nil || sess.Token == "" {
		t.Fatalf("authenticate: %s (%v)", body, err)
	}
	if code, body := postJSON(t, "http://"+api+"/api/games/sessions/initiate", `{"auth_token":"`+sess.Token+`"}`, ""); code != 200 {
		t.Errorf("initiate: %d %s", code, body)
	}
	if code, body := postJSON(t, "http://"+api+"/v2/game-sessions", `{"game_id":"g","currency":"EUR","external_session_id":"e"}`, "Bearer "+sess.Token); code != 200 {
		t.Errorf("game session create: %d %s", code, body)
	}
	for _, key := range []string{"cmdtest:{play}:deadlines", "cmdtest:{games}:deadlines"} {
		if n, err := client.ZCard(context.Background(), key).Result(); err != nil || n != 1 {
			t.Errorf("%s holds %d sessions (%v), want 1", key, n, err)
		}
	}
	r.cancel()
	if code := r.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after cancel; stderr:\n%s", code, r.stderr)
	}
}
