package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/hub"
)

// clusterMetrics are the cluster's Prometheus series.
type clusterMetrics struct {
	calls     *prometheus.CounterVec // sessiongate_cluster_calls_total{op,outcome}
	deadNodes prometheus.Counter
}

func newClusterMetrics(reg *prometheus.Registry, c *cluster) *clusterMetrics {
	m := &clusterMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_cluster_calls_total",
			Help: "Cross-node requests this node made, per target node answer: ok, timeout, unreachable, error.",
		}, []string{"op", "outcome"}),
		deadNodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_cluster_dead_nodes_total",
			Help: "Nodes this node expired from the registry after they stopped heartbeating.",
		}),
	}
	reg.MustRegister(m.calls, m.deadNodes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_cluster_bus_up",
			Help: "1 while this node's cluster bus subscription is live, else 0.",
		}, func() float64 {
			if c.ready() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_presence_pending_writes",
			Help: "This node's presence changes that Redis has not taken yet (it was unreachable); written once it is back.",
		}, func() float64 {
			if c.cleaner == nil {
				return 0
			}
			return float64(c.cleaner.Pending())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sessiongate_cluster_nodes",
			Help: "Other live nodes this node knows of.",
		}, func() float64 { return float64(len(c.others())) }),
	)
	return m
}

// observe counts one node's answer to op.
func (m *clusterMetrics) observe(op string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, hub.ErrTimeout):
		outcome = "timeout"
	case errors.Is(err, hub.ErrUnreachable):
		outcome = "unreachable"
	default:
		outcome = "error"
	}
	m.calls.WithLabelValues(op, outcome).Inc()
}
