// Command gateway runs one sessiongate node: the Nakama-compatible HTTP session API, and the
// Prometheus metrics endpoint. With no --redis-url it is a self-contained single node with
// in-memory stores; with one, it shares accounts, revocations, play sessions and game sessions
// with every node on that Redis.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisurl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code, so tests can drive it.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	o, err := parseOptions(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "gateway:", err)
		return 2
	}
	log, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gateway:", err)
		return 2
	}
	if err := serve(ctx, o, log, stderr); err != nil {
		log.Error().Err(err).Msg("gateway stopped with an error")
		return 1
	}
	log.Info().Msg("gateway stopped")
	return 0
}

func serve(ctx context.Context, o *options, log zerolog.Logger, stderr io.Writer) error {
	cfg := o.cfg
	if cfg.NodeID == "" {
		cfg.NodeID = newNodeID()
	}
	generatedPassword := false
	switch {
	case !o.console:
		cfg.ConsolePassword = "" // disables it
	case cfg.ConsolePassword == "":
		cfg.ConsolePassword = newConsolePassword()
		generatedPassword = true
	}
	log = log.With().Str("node", cfg.NodeID).Logger()
	if names := o.defaultSecrets(); len(names) > 0 {
		log.Warn().Strs("settings", names).Msg("INSECURE: running with default secrets, which are public; set them before exposing this node")
	}

	stores, closeStores, err := openStores(ctx, cfg.RedisURL, o.redisPrefix)
	if err != nil {
		return err
	}
	defer closeStores()

	srv, err := gateway.New(cfg, log, stores)
	if err != nil {
		return err
	}
	apiLn, err := gateway.Listen(cfg.Addr)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if o.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", o.metricsAddr); err != nil {
			apiLn.Close()
			return fmt.Errorf("failed to listen on %s: %w", o.metricsAddr, err)
		}
		log.Info().Str("addr", metricsLn.Addr().String()).Msg("metrics listening")
	}
	mode := "embedded"
	if cfg.RedisURL != "" {
		mode = "redis"
	}
	log.Info().Str("mode", mode).Bool("console", o.console).Msg("gateway starting")
	if generatedPassword {
		// Printed, not logged: the one place the generated password appears.
		fmt.Fprintf(stderr, "console: http://%s/console user %q password %s (generated for this run; set --console-password to choose one)\n",
			apiLn.Addr(), cfg.ConsoleUsername, cfg.ConsolePassword)
	}
	return srv.Run(ctx, apiLn, metricsLn)
}

// openStores returns the in-memory stores (the zero Play and Games select them), or Redis ones
// when redisURL is set, and a function that releases them.
func openStores(ctx context.Context, redisURL, prefix string) (gateway.Stores, func(), error) {
	if redisURL == "" {
		return gateway.Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()}, func() {}, nil
	}
	client, err := redisurl.NewClient(redisURL)
	if err != nil {
		return gateway.Stores{}, nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return gateway.Stores{}, nil, fmt.Errorf("failed to reach redis: %w", err)
	}
	return gateway.RedisStores(client, prefix, gateway.RedisOptions{}), func() { client.Close() }, nil
}

// newConsolePassword is a console password for a node started without one: 18 random bytes,
// base64url (24 characters).
func newConsolePassword() string {
	var b [18]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newNodeID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	return host + "-" + hex.EncodeToString(b[:])
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("invalid --log-format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
