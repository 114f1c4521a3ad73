package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/hub"
)

// socketMetrics are the realtime socket's collectors, pre-resolved for the hot paths.
type socketMetrics struct {
	connects     prometheus.Counter
	disconnects  map[string]prometheus.Counter // by cause
	messagesIn   prometheus.Counter
	messagesOut  prometheus.Counter
	pings        prometheus.Counter
	pingsSkipped prometheus.Counter
	pongs        prometheus.Counter
}

func newSocketMetrics(reg *prometheus.Registry, h *hub.Hub) *socketMetrics {
	disconnects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_socket_disconnects_total",
		Help: "Sockets closed, by cause: client, shutdown, message_too_big, heartbeat_timeout, protocol_error, slow_consumer (queue overflow), write_error, server, replaced (single socket).",
	}, []string{"cause"})
	m := &socketMetrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_connects_total",
			Help: "Sockets upgraded and registered.",
		}),
		disconnects: make(map[string]prometheus.Counter, len(allCauses)),
		messagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_messages_in_total",
			Help: "Messages received from clients.",
		}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_messages_out_total",
			Help: "Messages written to clients.",
		}),
		pings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_pings_total",
			Help: "WebSocket pings sent by the heartbeat sweeper to silent sockets.",
		}),
		pingsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_pings_skipped_total",
			Help: "Heartbeat pings deferred to the next sweep: the socket was busy writing, its send buffer was full, or (TLS) too many pings were in flight.",
		}),
		pongs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_socket_pongs_total",
			Help: "WebSocket pongs received from clients.",
		}),
	}
	for _, c := range allCauses {
		m.disconnects[c] = disconnects.WithLabelValues(c)
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sessiongate_sockets",
		Help: "Live sockets on this node.",
	}, func() float64 { return float64(h.Len()) })
	reg.MustRegister(m.connects, disconnects, m.messagesIn, m.messagesOut, m.pings, m.pingsSkipped, m.pongs, live)
	return m
}

func (m *socketMetrics) disconnect(cause string) {
	if c, ok := m.disconnects[cause]; ok {
		c.Inc()
	}
}
