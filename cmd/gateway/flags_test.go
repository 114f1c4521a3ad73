package main

import (
	"errors"
	"flag"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"addr", c.Addr, ":7350"},
		{"metrics-addr", o.metricsAddr, ":9100"},
		{"cfg.MetricsAddr", c.MetricsAddr, ":9100"},
		{"node-id", c.NodeID, ""},
		{"server-key", c.ServerKey, "defaultkey"},
		{"http-key", c.HTTPKey, "defaulthttpkey"},
		{"encryption-key", c.Auth.EncryptionKey, "defaultencryptionkey"},
		{"refresh-encryption-key", c.Auth.RefreshEncryptionKey, "defaultrefreshencryptionkey"},
		{"token-expiry", c.Auth.TokenExpiry, 60 * time.Second},
		{"refresh-token-expiry", c.Auth.RefreshTokenExpiry, time.Hour},
		{"redis-url", c.RedisURL, ""},
		{"redis-prefix", o.redisPrefix, "sessiongate:"},
		{"log-level", o.logLevel, "info"},
		{"log-format", o.logFormat, "json"},
		{"tls-cert", c.TLSCert, ""},
		{"tls-key", c.TLSKey, ""},
		{"cors-origins", strings.Join(c.CORSOrigins, "|"), "*"},
		{"max-request-bytes", c.MaxRequestBytes, int64(262144)},
		{"trust-forwarded-for", c.TrustForwardedFor, false},
		{"before-auth-url", c.Auth.BeforeAuthURL, ""},
		{"before-auth-timeout", c.Auth.BeforeAuthTimeout, 2 * time.Second},
		{"login-window", c.Auth.LoginWindow, time.Minute},
		{"login-failures-per-account", c.Auth.LoginFailuresPerAccount, 5},
		{"login-failures-per-ip", c.Auth.LoginFailuresPerIP, 20},
		{"bcrypt-cost", c.Auth.BcryptCost, 10},
		{"shutdown-timeout", c.ShutdownTimeout, 10 * time.Second},
		{"request-read-timeout", c.RequestReadTimeout, 30 * time.Second},
		{"drain-period", c.DrainPeriod, 10 * time.Second},
		{"hub-shards", c.HubShards, 0},
		{"max-message-size", c.MaxMessageSize, int64(4096)},
		{"outgoing-queue-size", c.OutgoingQueueSize, 64},
		{"write-wait", c.WriteWait, 5 * time.Second},
		{"ping-period", c.PingPeriod, 15 * time.Second},
		{"pong-wait", c.PongWait, 25 * time.Second},
		{"single-socket", c.SingleSocket, false},
		{"game-session-ttl", c.GameSessionTTL, 4 * time.Hour},
		{"game-session-data-max-bytes", c.GameSessionDataMaxBytes, 65536},
		{"game-sessions-per-user", c.GameSessionsPerUser, 100},
		{"play-session-timeout", c.PlaySessionTimeout, 10 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := o.defaultSecrets(); strings.Join(got, ",") != "server-key,http-key,encryption-key,refresh-encryption-key" {
		t.Errorf("defaultSecrets %v", got)
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"addr":                       "SESSIONGATE_ADDR",
		"metrics-addr":               "SESSIONGATE_METRICS_ADDR",
		"refresh-encryption-key":     "SESSIONGATE_REFRESH_ENCRYPTION_KEY",
		"login-failures-per-ip":      "SESSIONGATE_LOGIN_FAILURES_PER_IP",
		"trust-forwarded-for":        "SESSIONGATE_TRUST_FORWARDED_FOR",
		"login-failures-per-account": "SESSIONGATE_LOGIN_FAILURES_PER_ACCOUNT",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

// flagCase is one flag with an environment value, a flag value and how to read the result.
type flagCase struct {
	envValue, flagValue string
	envWant, flagWant   string
	read                func(*options) string
}

func dur(d time.Duration) string { return d.String() }

// flagCases covers every flag the command defines (TestEveryFlagHasEnv checks that).
var flagCases = map[string]flagCase{
	"addr":                        {":1111", ":2222", ":1111", ":2222", func(o *options) string { return o.cfg.Addr }},
	"metrics-addr":                {":3333", "", ":3333", "", func(o *options) string { return o.metricsAddr + "|" + o.cfg.MetricsAddr }},
	"node-id":                     {"env-node", "flag-node", "env-node", "flag-node", func(o *options) string { return o.cfg.NodeID }},
	"server-key":                  {"env-sk", "flag-sk", "env-sk", "flag-sk", func(o *options) string { return o.cfg.ServerKey }},
	"http-key":                    {"env-hk", "flag-hk", "env-hk", "flag-hk", func(o *options) string { return o.cfg.HTTPKey }},
	"encryption-key":              {"env-ek", "flag-ek", "env-ek", "flag-ek", func(o *options) string { return o.cfg.Auth.EncryptionKey }},
	"refresh-encryption-key":      {"env-rk", "flag-rk", "env-rk", "flag-rk", func(o *options) string { return o.cfg.Auth.RefreshEncryptionKey }},
	"token-expiry":                {"5m", "90s", "5m0s", "1m30s", func(o *options) string { return dur(o.cfg.Auth.TokenExpiry) }},
	"refresh-token-expiry":        {"2h", "3h", "2h0m0s", "3h0m0s", func(o *options) string { return dur(o.cfg.Auth.RefreshTokenExpiry) }},
	"redis-url":                   {"redis://env:6379", "redis://flag:6379", "redis://env:6379", "redis://flag:6379", func(o *options) string { return o.cfg.RedisURL }},
	"redis-prefix":                {"env:", "flag:", "env:", "flag:", func(o *options) string { return o.redisPrefix }},
	"log-level":                   {"debug", "warn", "debug", "warn", func(o *options) string { return o.logLevel }},
	"log-format":                  {"console", "json", "console", "json", func(o *options) string { return o.logFormat }},
	"tls-cert":                    {"env.crt", "flag.crt", "env.crt", "flag.crt", func(o *options) string { return o.cfg.TLSCert }},
	"tls-key":                     {"env.key", "flag.key", "env.key", "flag.key", func(o *options) string { return o.cfg.TLSKey }},
	"cors-origins":                {"https://a.example, https://b.example,,", "https://c.example", "https://a.example|https://b.example", "https://c.example", func(o *options) string { return strings.Join(o.cfg.CORSOrigins, "|") }},
	"max-request-bytes":           {"1024", "2048", "1024", "2048", func(o *options) string { return strconv.FormatInt(o.cfg.MaxRequestBytes, 10) }},
	"trust-forwarded-for":         {"true", "false", "true", "false", func(o *options) string { return strconv.FormatBool(o.cfg.TrustForwardedFor) }},
	"before-auth-url":             {"http://env/hook", "http://flag/hook", "http://env/hook", "http://flag/hook", func(o *options) string { return o.cfg.Auth.BeforeAuthURL }},
	"before-auth-timeout":         {"3s", "4s", "3s", "4s", func(o *options) string { return dur(o.cfg.Auth.BeforeAuthTimeout) }},
	"login-window":                {"2m", "3m", "2m0s", "3m0s", func(o *options) string { return dur(o.cfg.Auth.LoginWindow) }},
	"login-failures-per-account":  {"7", "-1", "7", "-1", func(o *options) string { return strconv.Itoa(o.cfg.Auth.LoginFailuresPerAccount) }},
	"login-failures-per-ip":       {"30", "40", "30", "40", func(o *options) string { return strconv.Itoa(o.cfg.Auth.LoginFailuresPerIP) }},
	"bcrypt-cost":                 {"12", "4", "12", "4", func(o *options) string { return strconv.Itoa(o.cfg.Auth.BcryptCost) }},
	"shutdown-timeout":            {"20s", "1s", "20s", "1s", func(o *options) string { return dur(o.cfg.ShutdownTimeout) }},
	"request-read-timeout":        {"20s", "1s", "20s", "1s", func(o *options) string { return dur(o.cfg.RequestReadTimeout) }},
	"drain-period":                {"30s", "2s", "30s", "2s", func(o *options) string { return dur(o.cfg.DrainPeriod) }},
	"hub-shards":                  {"64", "128", "64", "128", func(o *options) string { return strconv.Itoa(o.cfg.HubShards) }},
	"max-message-size":            {"8192", "1024", "8192", "1024", func(o *options) string { return strconv.FormatInt(o.cfg.MaxMessageSize, 10) }},
	"outgoing-queue-size":         {"32", "128", "32", "128", func(o *options) string { return strconv.Itoa(o.cfg.OutgoingQueueSize) }},
	"write-wait":                  {"2s", "3s", "2s", "3s", func(o *options) string { return dur(o.cfg.WriteWait) }},
	"ping-period":                 {"10s", "20s", "10s", "20s", func(o *options) string { return dur(o.cfg.PingPeriod) }},
	"pong-wait":                   {"30s", "40s", "30s", "40s", func(o *options) string { return dur(o.cfg.PongWait) }},
	"single-socket":               {"true", "false", "true", "false", func(o *options) string { return strconv.FormatBool(o.cfg.SingleSocket) }},
	"game-session-ttl":            {"1h", "2h", "1h0m0s", "2h0m0s", func(o *options) string { return dur(o.cfg.GameSessionTTL) }},
	"game-session-data-max-bytes": {"1000", "2000", "1000", "2000", func(o *options) string { return strconv.Itoa(o.cfg.GameSessionDataMaxBytes) }},
	"game-sessions-per-user":      {"5", "7", "5", "7", func(o *options) string { return strconv.Itoa(o.cfg.GameSessionsPerUser) }},
	"play-session-timeout":        {"5s", "20s", "5s", "20s", func(o *options) string { return dur(o.cfg.PlaySessionTimeout) }},
	"node-ttl":                    {"20s", "8s", "20s", "8s", func(o *options) string { return dur(o.cfg.NodeTTL) }},
	"cluster-timeout":             {"3s", "500ms", "3s", "500ms", func(o *options) string { return dur(o.cfg.ClusterTimeout) }},
	"console":                     {"false", "true", "false", "true", func(o *options) string { return strconv.FormatBool(o.console) }},
	"console-username":            {"env-op", "flag-op", "env-op", "flag-op", func(o *options) string { return o.cfg.ConsoleUsername }},
	"console-password":            {"env-pw", "flag-pw", "env-pw", "flag-pw", func(o *options) string { return o.cfg.ConsolePassword }},
}

// TestParseOptionsPrecedence: for every flag, the environment beats the default and the
// command line beats the environment.
func TestParseOptionsPrecedence(t *testing.T) {
	for name, tc := range flagCases {
		e := env(map[string]string{envName(name): tc.envValue})
		o, err := parseOptions(nil, e, io.Discard)
		if err != nil {
			t.Errorf("%s from env: %v", name, err)
			continue
		}
		want := tc.envWant
		if name == "metrics-addr" {
			want += "|" + tc.envWant
		}
		if got := tc.read(o); got != want {
			t.Errorf("%s from env %s=%q: %q, want %q", name, envName(name), tc.envValue, got, want)
		}
		forms := [][]string{{"--" + name + "=" + tc.flagValue}, {"-" + name, tc.flagValue}}
		if name == "trust-forwarded-for" || name == "single-socket" || name == "console" {
			forms = forms[:1] // a boolean flag takes its value only after "="
		}
		for _, args := range forms {
			o, err = parseOptions(args, e, io.Discard)
			if err != nil {
				t.Errorf("%s from flag: %v", name, err)
				continue
			}
			want := tc.flagWant
			if name == "metrics-addr" {
				want += "|" + tc.flagWant
			}
			if got := tc.read(o); got != want {
				t.Errorf("%s with flag %v over env %q: %q, want %q", name, args, tc.envValue, got, want)
			}
		}
	}
	// Unrelated variables, and variables without the prefix, are ignored.
	o, err := parseOptions(nil, env(map[string]string{"ADDR": ":1", "SESSIONGATE_ADDRESS": ":2", "sessiongate_addr": ":3"}), io.Discard)
	if err != nil || o.cfg.Addr != ":7350" {
		t.Errorf("addr %q (%v), want the default", o.cfg.Addr, err)
	}
}

var usageFlag = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)

// TestEveryFlagHasEnv lists the flags from -h: each must be in flagCases, so each has its
// environment variable tested, and the required ones must exist.
func TestEveryFlagHasEnv(t *testing.T) {
	var usage syncBuffer
	if _, err := parseOptions([]string{"-h"}, env(nil), &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	var names []string
	for _, m := range usageFlag.FindAllStringSubmatch(usage.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("no flags found in usage:\n%s", usage.String())
	}
	for _, n := range names {
		if _, ok := flagCases[n]; !ok {
			t.Errorf("flag --%s has no precedence test", n)
		}
	}
	for n := range flagCases {
		if !slices.Contains(names, n) {
			t.Errorf("flag --%s is tested but not defined", n)
		}
	}
	for _, required := range []string{"addr", "metrics-addr", "node-id", "server-key", "http-key", "encryption-key",
		"refresh-encryption-key", "token-expiry", "refresh-token-expiry", "redis-url", "log-level", "log-format", "tls-cert", "tls-key"} {
		if !slices.Contains(names, required) {
			t.Errorf("required flag --%s missing", required)
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad env duration":  {nil, map[string]string{"SESSIONGATE_TOKEN_EXPIRY": "abc"}, `invalid SESSIONGATE_TOKEN_EXPIRY="abc"`},
		"bad env int":       {nil, map[string]string{"SESSIONGATE_BCRYPT_COST": "ten"}, `invalid SESSIONGATE_BCRYPT_COST="ten"`},
		"bad env int64":     {nil, map[string]string{"SESSIONGATE_MAX_REQUEST_BYTES": "1e9"}, `invalid SESSIONGATE_MAX_REQUEST_BYTES="1e9"`},
		"bad env bool":      {nil, map[string]string{"SESSIONGATE_TRUST_FORWARDED_FOR": "maybe"}, `invalid SESSIONGATE_TRUST_FORWARDED_FOR="maybe"`},
		"bad flag duration": {[]string{"--login-window", "1 minute"}, nil, "invalid value"},
		"unknown flag":      {[]string{"--nope"}, nil, "flag provided but not defined"},
		"positional":        {[]string{"--addr", ":1", "extra"}, nil, `unexpected argument "extra"`},
	} {
		_, err := parseOptions(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	// A bad environment value for a flag given on the command line does not matter.
	o, err := parseOptions([]string{"--token-expiry", "5s"}, env(map[string]string{"SESSIONGATE_TOKEN_EXPIRY": "abc"}), io.Discard)
	if err != nil || o.cfg.Auth.TokenExpiry != 5*time.Second {
		t.Errorf("flag over bad env: %v, %v", o, err)
	}
}

func TestDefaultSecrets(t *testing.T) {
	o, err := parseOptions([]string{"--server-key", "a", "--encryption-key", "b"}, env(map[string]string{"SESSIONGATE_REFRESH_ENCRYPTION_KEY": "c"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.defaultSecrets(); strings.Join(got, ",") != "http-key" {
		t.Errorf("defaultSecrets %v, want [http-key]", got)
	}
	o, _ = parseOptions([]string{"--http-key", "d"}, env(map[string]string{"SESSIONGATE_SERVER_KEY": "a", "SESSIONGATE_ENCRYPTION_KEY": "b", "SESSIONGATE_REFRESH_ENCRYPTION_KEY": "c"}), io.Discard)
	if got := o.defaultSecrets(); len(got) != 0 {
		t.Errorf("defaultSecrets %v, want none", got)
	}
}

// An environment variable set to the empty string counts: it is how a container turns off an
// optional listener that defaults to on.
func TestEmptyEnvValueCounts(t *testing.T) {
	o, err := parseOptions(nil, env(map[string]string{"SESSIONGATE_METRICS_ADDR": ""}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.metricsAddr != "" || o.cfg.MetricsAddr != "" {
		t.Fatalf("metrics addr %q, want empty", o.metricsAddr)
	}
	o, err = parseOptions(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.metricsAddr != ":9100" {
		t.Fatalf("unset env: metrics addr %q, want :9100", o.metricsAddr)
	}
}
