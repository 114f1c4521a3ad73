package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiongate/sessiongate/auth"
)

// Metrics are the node's Prometheus collectors, on a registry of their own so several nodes
// can live in one test process.
type Metrics struct {
	Registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	authOutcomes *prometheus.CounterVec
}

// NewMetrics registers the gateway's collectors plus the Go runtime and process collectors
// (RSS, heap, goroutines, CPU seconds: what the load tool reads per socket).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_http_requests_total",
			Help: "HTTP API requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiongate_http_request_duration_seconds",
			Help:    "HTTP API request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		authOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_auth_outcomes_total",
			Help: "Authentication attempts by provider and outcome (created, existing, or the error).",
		}, []string{"provider", "outcome"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.authOutcomes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// AuthOutcome counts one authentication; it is the auth.Service's outcome observer.
func (m *Metrics) AuthOutcome(p auth.Provider, outcome string) {
	m.authOutcomes.WithLabelValues(string(p), outcome).Inc()
}

// routeMetrics holds one route's pre-resolved series, so the hot path does no label lookups.
type routeMetrics struct {
	latency prometheus.Observer
	byCode  map[int]prometheus.Counter
	vec     *prometheus.CounterVec
	route   string
}

func (m *Metrics) forRoute(route string) *routeMetrics {
	rm := &routeMetrics{latency: m.latency.WithLabelValues(route), byCode: make(map[int]prometheus.Counter), vec: m.requests, route: route}
	for _, c := range []int{101, 200, 400, 401, 403, 404, 409, 413, 426, 429, 500, 501, 503} {
		rm.byCode[c] = m.requests.WithLabelValues(route, strconv.Itoa(c))
	}
	return rm
}

func (rm *routeMetrics) observe(code int, d time.Duration) {
	rm.latency.Observe(d.Seconds())
	if c, ok := rm.byCode[code]; ok {
		c.Inc()
		return
	}
	rm.vec.WithLabelValues(rm.route, strconv.Itoa(code)).Inc()
}
