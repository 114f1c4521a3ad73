package loadtest

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// checkReport asserts what every healthy run must show.
func checkReport(t *testing.T, r *Report, clients int) {
	t.Helper()
	if r.ErrorCount != 0 || len(r.Errors) != 0 {
		t.Errorf("errors against a healthy gateway: %d %v, dropped %d, close codes %v", r.ErrorCount, r.Errors, r.Dropped, r.CloseCodes)
	}
	if r.Scenario != "storm" && r.Scenario != "disconnect" && (r.Dropped != 0 || len(r.CloseCodes) != 0) {
		t.Errorf("sockets dropped against a healthy gateway: %d, close codes %v", r.Dropped, r.CloseCodes)
	}
	if r.Scenario != "auth" {
		sockets := clients
		if r.Scenario == "churn" {
			sockets = r.Ops
		}
		if r.Authed != int64(clients) || r.Connected != int64(sockets) || r.Connect.Count != uint64(sockets) || r.Auth.Count != uint64(clients) {
			t.Errorf("counts: authed %d, connected %d, connect samples %d, auth samples %d; want %d clients, %d sockets", r.Authed, r.Connected, r.Connect.Count, r.Auth.Count, clients, sockets)
		}
	}
	for name, s := range r.Latencies {
		if s.Count != r.Histograms[name].Count() {
			t.Errorf("%s: summary of %d values, histogram of %d", name, s.Count, r.Histograms[name].Count())
		}
		if !(0 <= s.Min && s.Min <= s.P50 && s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
			t.Errorf("%s percentiles not ordered: %+v", name, s)
		}
	}
	for i := 1; i < len(r.Timeline); i++ {
		if r.Timeline[i].T < r.Timeline[i-1].T || r.Timeline[i].Connected < r.Timeline[i-1].Connected {
			t.Errorf("timeline goes back at %d: %+v then %+v", i, r.Timeline[i-1], r.Timeline[i])
			break
		}
	}
	if r.RampSeconds <= 0 || r.ConnectRate <= 0 {
		t.Errorf("ramp %v s, rate %v/s", r.RampSeconds, r.ConnectRate)
	}
}

func TestHoldSmall(t *testing.T) {
	api, metrics := startGateway(t)
	const n = 200
	var lines int
	cfg := Config{
		Scenario: "hold", Targets: []string{api}, MetricsURLs: []string{metrics}, Clients: n, Rate: 2000, InFlight: 16,
		Hold: 2500 * time.Millisecond, Settle: time.Second, PingInterval: time.Second, Timeout: 5 * time.Second,
		Create: true, SourceIPs: SourceRange(4), Workers: 1, Progress: func(string) { lines++ },
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, n)
	if r.PingsSent == 0 || r.PingRTT.Count == 0 || r.PongsSeen != int64(r.PingRTT.Count) || r.PongsSeen > r.PingsSent {
		t.Errorf("hold pings: sent %d, pongs %d, rtt samples %d", r.PingsSent, r.PongsSeen, r.PingRTT.Count)
	}
	f := r.Server
	if f == nil {
		t.Fatalf("no server figures; notes %v", r.Notes)
	}
	if f.At != "settled" || f.Sockets != n {
		t.Errorf("server saw %v sockets at %s, want %d at settled", f.Sockets, f.At, n)
	}
	// The in-process gateway shares this process with the clients, so only sanity bounds.
	if f.GoroutinesPerSocket < 0.5 || f.IdleWindowSeconds <= 0 || f.RSSAfter <= 0 || f.HeartbeatsPerSecond <= 0 {
		t.Errorf("server figures: %+v", f)
	}
	if len(r.Scrapes) != 4 {
		t.Errorf("%d scrapes, want before, ramped, settled, end", len(r.Scrapes))
	}
	if lines == 0 {
		t.Error("no progress line")
	}
	var sb strings.Builder
	r.WriteTable(&sb)
	for _, want := range []string{"connect latency", "rss per socket", "goroutines per socket", "idle cpu"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
	if err := r.WriteJSON(t.TempDir() + "/r.json"); err != nil {
		t.Error(err)
	}
}

func TestConnectAndAuthSmall(t *testing.T) {
	api, metrics := startGateway(t)
	t.Run("connect", func(t *testing.T) {
		r, err := Run(context.Background(), Config{Scenario: "connect", Targets: []string{api}, MetricsURLs: []string{metrics},
			Clients: 300, InFlight: 32, Create: true, Workers: 1, Hold: time.Hour /* ignored by connect */})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, r, 300)
		if r.Server == nil || r.Server.At != "ramped" {
			t.Errorf("connect: server figures %+v", r.Server)
		}
	})
	t.Run("auth", func(t *testing.T) {
		r, err := Run(context.Background(), Config{Scenario: "auth", Targets: []string{api}, Clients: 500, Devices: 50, InFlight: 16, Create: true, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, r, 500)
		if r.Authed != 50 || r.AuthBench.Count != 500 || r.Connected != 0 {
			t.Errorf("auth: %d devices, %d requests measured, %d connected", r.Authed, r.AuthBench.Count, r.Connected)
		}
	})
}

func TestRefusesRemoteAndStopsOnDeadTarget(t *testing.T) {
	if _, err := Run(context.Background(), Config{Scenario: "hold", Targets: []string{"http://192.0.2.1:7350"}, Clients: 1, InFlight: 1}); err == nil {
		t.Fatal("remote target accepted")
	}
	// Nothing listens here: every client fails, the run still ends by itself and says so.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, Config{Scenario: "hold", Targets: []string{"http://" + addr}, Clients: 20, InFlight: 4, Hold: time.Second, Timeout: time.Second, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Authed != 0 || r.Connected != 0 || r.Errors["auth_transport"] != 20 {
		t.Errorf("dead target: authed %d, connected %d, errors %v", r.Authed, r.Connected, r.Errors)
	}
}

func TestValidateScenarios(t *testing.T) {
	base := func(scenario string) Config {
		return Config{Scenario: scenario, Targets: []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}, Clients: 10, InFlight: 2}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"churn ok", func(c *Config) { c.Scenario, c.Rate, c.Duration = "churn", 10, time.Second }, ""},
		{"churn without rate", func(c *Config) { c.Scenario, c.Duration = "churn", time.Second }, "churn needs a rate"},
		{"churn over the bound", func(c *Config) { c.Scenario, c.Rate, c.Duration = "churn", 1e6, time.Minute }, "over the bound"},
		{"storm ok", func(c *Config) { c.Scenario, c.StormPID = "storm", 42 }, ""},
		{"storm without pid", func(c *Config) { c.Scenario = "storm" }, "pid"},
		{"storm on one target", func(c *Config) { c.Scenario, c.StormPID, c.Targets = "storm", 42, c.Targets[:1] }, "at least two targets"},
		{"storm bad signal", func(c *Config) { c.Scenario, c.StormPID, c.StormSignal = "storm", 42, "hup" }, "want kill or term"},
		{"storm backoff", func(c *Config) {
			c.Scenario, c.StormPID, c.BackoffMin, c.BackoffMax = "storm", 42, time.Second, time.Millisecond
		}, "backoff max"},
		{"disconnect ok", func(c *Config) { c.Scenario = "disconnect" }, ""},
		{"disconnect remote api", func(c *Config) { c.Scenario, c.APITarget = "disconnect", "http://192.0.2.1:7350" }, "not on loopback"},
		{"disconnect bad by", func(c *Config) { c.Scenario, c.DisconnectBy = "disconnect", "node" }, "want session, user, both or user-wide"},
		{"user-wide without users", func(c *Config) { c.Scenario, c.DisconnectBy = "disconnect", "user-wide" }, "goes with --users"},
		{"users without user-wide", func(c *Config) { c.Scenario, c.Users = "disconnect", 2 }, "goes with --users"},
		{"users on auth", func(c *Config) { c.Scenario, c.Users = "auth", 2 }, "auth scenario"},
		{"negative follow", func(c *Config) { c.Scenario, c.Follow = "hold", -1 }, "must not be negative"},
		{"unknown", func(c *Config) { c.Scenario = "stampede" }, "unknown scenario"},
	} {
		c := base("hold")
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	c := base("storm")
	c.StormPID = 42
	if err := c.Validate(); err != nil || c.StormSignal != "kill" || c.BackoffMin != 100*time.Millisecond || c.BackoffMax != 5*time.Second || c.ReconnectFor != 30*time.Second {
		t.Errorf("storm defaults: %v %+v", err, c)
	}
	c = base("disconnect")
	if err := c.Validate(); err != nil || c.APITarget != "http://127.0.0.1:2" || c.HTTPKey != "defaulthttpkey" || c.DisconnectBy != "both" || c.ActInFlight != 2 {
		t.Errorf("disconnect defaults: %v %+v", err, c)
	}
}
