package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// playMetrics are the play and game session collectors.
type playMetrics struct {
	playOps      *prometheus.CounterVec   // op, outcome
	expired      *prometheus.CounterVec   // kind
	lateness     *prometheus.HistogramVec // kind
	gameCreates  *prometheus.CounterVec   // outcome
	gameCloses   *prometheus.CounterVec   // reason
	gameWrites   *prometheus.CounterVec   // outcome
	touched      *prometheus.CounterVec   // kind
	notified     prometheus.Counter
	sweepErrors  prometheus.Counter
	playOutcomes map[playOp]map[string]prometheus.Counter
}

// Session kinds, the label of the expiry metrics.
const (
	kindPlay = "play"
	kindGame = "game"
)

func newPlayMetrics(reg *prometheus.Registry) *playMetrics {
	m := &playMetrics{
		playOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_play_session_requests_total",
			Help: "Play session calls by op (initiate, heartbeat, end) and outcome (ok or the error code).",
		}, []string{"op", "outcome"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_play_expired_total",
			Help: "Sessions this node expired, by kind (play, game).",
		}, []string{"kind"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiongate_play_expiry_lateness_seconds",
			Help:    "Time from a session's deadline to its expiry by this node, by kind (play, game).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5, 5},
		}, []string{"kind"}),
		gameCreates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_game_session_creates_total",
			Help: "Game session creates by outcome (created, existing, conflict, limited, invalid).",
		}, []string{"outcome"}),
		gameCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_game_session_closes_total",
			Help: "Game sessions closed by this node, by reason (closed, closed_by_server, expired).",
		}, []string{"reason"}),
		gameWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_game_session_data_writes_total",
			Help: "Game session data writes by outcome (ok, version_conflict, not_found, invalid).",
		}, []string{"outcome"}),
		touched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_play_socket_extensions_total",
			Help: "Sessions extended because their user holds a live socket on this node, by kind (play, game).",
		}, []string{"kind"}),
		notified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_game_session_close_notifications_total",
			Help: "Close notifications queued on sockets of this node.",
		}),
		sweepErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_play_sweep_errors_total",
			Help: "Failed store calls of the expiry and socket liveness passes.",
		}),
		playOutcomes: make(map[playOp]map[string]prometheus.Counter),
	}
	for _, op := range []playOp{opInitiate, opHeartbeat, opEnd} {
		m.playOutcomes[op] = make(map[string]prometheus.Counter)
		refusal := playNoActiveSession // the outcomes each op can have
		if op == opInitiate {
			refusal = playAlreadyInGame
		}
		for _, o := range []string{"ok", refusal, playUnauthorized, playInternal} {
			m.playOutcomes[op][o] = m.playOps.WithLabelValues(op.String(), o)
		}
	}
	reg.MustRegister(m.playOps, m.expired, m.lateness, m.gameCreates, m.gameCloses, m.gameWrites, m.touched, m.notified, m.sweepErrors)
	return m
}

// playOutcome counts one play session call.
func (m *playMetrics) playOutcome(op playOp, outcome string) { m.playOutcomes[op][outcome].Inc() }

// expiredAt counts one expiry of kind whose deadline was at deadline.
func (m *playMetrics) expiredAt(kind string, deadline, now time.Time) {
	m.expired.WithLabelValues(kind).Inc()
	m.lateness.WithLabelValues(kind).Observe(max(now.Sub(deadline), 0).Seconds())
}
