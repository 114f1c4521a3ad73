package loadtest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// validateScenario checks and defaults the settings of the scenario-specific parts of c.
func (c *Config) validateScenario() error {
	if c.Lifetime < 0 || c.Duration < 0 || c.StormAfter < 0 || c.BackoffMin < 0 || c.BackoffMax < 0 || c.ReconnectFor < 0 {
		return errors.New("durations must not be negative")
	}
	if c.Users < 0 || c.Users > 0 && c.Scenario == "auth" {
		return errors.New("users must not be negative, and the auth scenario authenticates --devices")
	}
	if c.ActRate < 0 || c.ActInFlight < 0 {
		return errors.New("act rate and act in flight must not be negative")
	}
	if c.ActRate == 0 {
		c.ActRate = c.Rate
	}
	if c.ActInFlight == 0 {
		c.ActInFlight = c.InFlight
	}
	switch c.Scenario {
	case "churn":
		if c.Rate <= 0 || c.Duration <= 0 {
			return errors.New("churn needs a rate (sockets opened per second) and a duration")
		}
		if c.Lifetime == 0 {
			c.Lifetime = time.Second
		}
		if ops := c.Rate * c.Duration.Seconds(); ops > 10_000_000 {
			return fmt.Errorf("churn of %.0f sockets is over the bound of 10,000,000", ops)
		}
	case "storm":
		if c.StormPID <= 0 {
			return errors.New("storm needs the pid of the gateway process to stop")
		}
		if len(c.Targets) < 2 {
			return errors.New("storm needs at least two targets: the stopped node's clients reconnect to the others")
		}
		switch c.StormSignal {
		case "":
			c.StormSignal = "kill"
		case "kill", "term":
		default:
			return fmt.Errorf("storm signal %q: want kill or term", c.StormSignal)
		}
		if c.StormAfter == 0 {
			c.StormAfter = time.Second
		}
		if c.BackoffMin == 0 {
			c.BackoffMin = 100 * time.Millisecond
		}
		if c.BackoffMax == 0 {
			c.BackoffMax = 5 * time.Second
		}
		if c.BackoffMax < c.BackoffMin {
			return errors.New("backoff max must not be below backoff min")
		}
		if c.ReconnectFor == 0 {
			c.ReconnectFor = 30 * time.Second
		}
	case "disconnect":
		if c.HTTPKey == "" {
			c.HTTPKey = "defaulthttpkey"
		}
		switch c.DisconnectBy {
		case "":
			c.DisconnectBy = "both"
		case "session", "user", "both", "user-wide":
		default:
			return fmt.Errorf("disconnect by %q: want session, user, both or user-wide", c.DisconnectBy)
		}
		if (c.DisconnectBy == "user-wide") != (c.Users > 0) {
			return errors.New("disconnect: --disconnect-by user-wide goes with --users N (clients sharing N accounts), and --users only with it")
		}
	}
	return nil
}

// churnOps is the number of sockets a churn run opens.
func (c *Config) churnOps() int {
	return int(math.Ceil(c.Rate * c.Duration.Seconds()))
}

// keepsHold reports whether the scenario holds its sockets after the measured phase.
func (c *Config) keepsHold() bool {
	switch c.Scenario {
	case "hold", "logout", "storm", "disconnect":
		return true
	}
	return false
}

// CommandLine is the cmd/loadtest command that runs c by hand (storm's --pid as a placeholder
// when it names a process of the suite's).
func (c *Config) CommandLine() string {
	args := []string{"loadtest", c.Scenario}
	add := func(flag string, v any) { args = append(args, fmt.Sprintf("--%s=%v", flag, v)) }
	if c.Protocol == ProtocolCentrifugo {
		add("protocol", c.Protocol)
		add("centrifugo-secret", "SECRET") // a placeholder: the command line is printed in reports
	}
	for _, t := range c.Targets {
		add("target", t)
	}
	if len(c.MetricsURLs) == 0 {
		args = append(args, "--no-metrics")
	}
	for _, m := range c.MetricsURLs {
		add("metrics", m)
	}
	add("clients", c.Clients)
	if c.Rate > 0 {
		add("rate", c.Rate)
	}
	add("in-flight", c.InFlight)
	switch c.Scenario {
	case "auth":
		add("devices", c.Devices)
	case "churn":
		add("duration", c.Duration)
		add("lifetime", c.Lifetime)
	}
	if c.keepsHold() {
		if c.Scenario != "disconnect" {
			add("hold", c.Hold)
		}
		add("ping-interval", c.PingInterval)
	}
	if c.Scenario == "hold" {
		add("settle", c.Settle)
	}
	if c.Status != "" {
		add("status", fmt.Sprintf("%q", c.Status))
	}
	if c.Follow > 0 {
		add("follow", c.Follow)
	}
	if c.Users > 0 {
		add("users", c.Users)
	}
	if c.Scenario == "storm" {
		args = append(args, "--pid=<pid of the first target's gateway>")
		add("signal", c.StormSignal)
		add("storm-after", c.StormAfter)
	}
	if c.Scenario == "logout" || c.Scenario == "disconnect" {
		if c.ActRate > 0 {
			add("act-rate", c.ActRate)
		}
		if c.ActInFlight > 0 {
			add("act-in-flight", c.ActInFlight)
		}
	}
	if c.Scenario == "disconnect" {
		add("api-target", c.APITarget)
		add("disconnect-by", c.DisconnectBy)
	}
	return strings.Join(args, " ")
}

// MaxSocketsPerWorker is how many sockets one client process holds at most when the number of
// workers is automatic: below the 20,000 open files per process, with room for HTTP
// connections and the runtime.
const MaxSocketsPerWorker = 15000

// AutoWorkers is the number of client processes for c: one per MaxSocketsPerWorker sockets
// open at once (the clients, or for churn the sockets alive at once, rate × (lifetime +
// timeout), when those are more); 1 for auth.
func (c *Config) AutoWorkers() int {
	if c.Scenario == "auth" {
		return 1
	}
	open := c.Clients
	if c.Scenario == "churn" {
		open = min(open, int(c.Rate*c.Duration.Seconds())+1)
		open = max(open, int(c.Rate*(c.Lifetime+c.Timeout).Seconds()))
	}
	return max(1, (open+MaxSocketsPerWorker-1)/MaxSocketsPerWorker)
}
