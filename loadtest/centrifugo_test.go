package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiongate/sessiongate/internal/freeport"
)

// TestCentrifugoToken: the minted connection token is an HS256 JWT that verifies with the
// secret and names its user in sub.
func TestCentrifugoToken(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tok := centrifugoToken("s3cret", "device-7", exp)
	var claims jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if claims.Subject != "device-7" || claims.ExpiresAt.Unix() != exp.Unix() || tokenUserID(tok) != "device-7" {
		t.Errorf("claims %+v, user id %q", claims, tokenUserID(tok))
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("other"), nil }); err == nil {
		t.Error("token verifies with another secret")
	}
}

// TestCentrifugoProtocolRefusals: what the centrifugo protocol does not support is refused up front.
func TestCentrifugoProtocolRefusals(t *testing.T) {
	base := Config{Scenario: "connect", Targets: []string{"http://127.0.0.1:1"}, Clients: 1, InFlight: 1,
		Protocol: ProtocolCentrifugo, CentrifugoSecret: "x"}
	for name, edit := range map[string]func(*Config){
		"auth scenario":   func(c *Config) { c.Scenario = "auth" },
		"no secret":       func(c *Config) { c.CentrifugoSecret = "" },
		"hold with pings": func(c *Config) { c.Scenario, c.PingInterval = "hold", time.Second },
		"status":          func(c *Config) { c.Status = "playing" },
		"unknown":         func(c *Config) { c.Protocol = "socketio" },
	} {
		c := base
		c.Targets = append([]string(nil), base.Targets...)
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := base
	c.Targets = append([]string(nil), base.Targets...)
	if err := c.Validate(); err != nil {
		t.Errorf("connect: %v", err)
	}
}

// TestCentrifugoProtocol runs the connect and hold scenarios against a real Centrifugo server
// (the centrifugo binary on PATH; .ci/run installs it from the Go module proxy).
func TestCentrifugoProtocol(t *testing.T) {
	bin, err := exec.LookPath("centrifugo")
	if err != nil {
		msg := "centrifugo not found on PATH; install it with go install github.com/centrifugal/centrifugo/v6@v6.9.1 to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "centrifugo.json")
	const secret = "loadtest-test-secret"
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `{"http_server": {"address": "127.0.0.1", "port": %d},
  "client": {"token": {"hmac_secret_key": %q}, "ping_interval": "1s", "pong_timeout": "500ms", "allowed_origins": ["*"]},
  "prometheus": {"enabled": true}, "log": {"level": "error"}}`, port, secret), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfgPath)
	cmd.Dir = dir
	log, err := os.Create(filepath.Join(dir, "centrifugo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	target := fmt.Sprintf("http://127.0.0.1:%d", port)
	metrics := target + "/metrics"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(metrics)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("centrifugo did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("connect", func(t *testing.T) {
		r, err := Run(context.Background(), Config{Scenario: "connect", Targets: []string{target}, MetricsURLs: []string{metrics},
			Clients: 60, InFlight: 8, Protocol: ProtocolCentrifugo, CentrifugoSecret: secret, ScrapeInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, r, 60)
		if r.Protocol != ProtocolCentrifugo || r.Server == nil || r.Server.RampCPUPerConnect <= 0 {
			t.Errorf("protocol %q, server figures %+v", r.Protocol, r.Server)
		}
	})
	t.Run("hold", func(t *testing.T) {
		r, err := Run(context.Background(), Config{Scenario: "hold", Targets: []string{target}, MetricsURLs: []string{metrics},
			Clients: 20, InFlight: 8, Hold: 3 * time.Second, Protocol: ProtocolCentrifugo, CentrifugoSecret: secret, ScrapeInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, r, 20) // a ping left unanswered past pong_timeout would drop its socket
		if got := r.Counts[CountServerPingsAnswered]; got < 20 {
			t.Errorf("%d server pings answered over 3 s of 20 sockets pinged every second", got)
		}
	})
	t.Run("a wrong secret is refused", func(t *testing.T) {
		r, _ := Run(context.Background(), Config{Scenario: "connect", Targets: []string{target}, Clients: 2, InFlight: 1,
			Protocol: ProtocolCentrifugo, CentrifugoSecret: "not-the-secret", ScrapeInterval: -1})
		if r == nil || r.Connected != 0 || r.ErrorCount != 2 {
			t.Fatalf("wrong secret: %+v", r)
		}
	})
}
