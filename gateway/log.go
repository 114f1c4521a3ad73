package gateway

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// newStdLogger routes net/http's own error lines (TLS handshake failures, panics recovered by
// the server) into the structured log at warn level.
func newStdLogger(l zerolog.Logger, addr string) *log.Logger {
	return log.New(stdWriter{l.With().Str("listener", addr).Logger()}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
