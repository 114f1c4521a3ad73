package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
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

// routeMetrics holds one route's series, created on first use and kept, so the hot path does
// no label lookup after a route's first request for a code. They are not pre-created: every route
// times every status code made /metrics over ten times larger (1,479 lines at rest), and a scrape
// cost the node about 8 ms of CPU, a third of what 19k idle sockets' heartbeats cost when
// scraped every 2 s.
type routeMetrics struct {
	m       *Metrics
	route   string
	latency atomic.Pointer[prometheus.Observer]
	byCode  [len(commonCodes)]atomic.Pointer[prometheus.Counter]
}

// commonCodes are the status codes whose counters a route keeps at hand; others are looked up.
var commonCodes = [...]int{101, 200, 400, 401, 403, 404, 409, 413, 426, 429, 500, 501, 503}

func (m *Metrics) forRoute(route string) *routeMetrics {
	return &routeMetrics{m: m, route: route}
}

func (rm *routeMetrics) observe(code int, d time.Duration) {
	lat := rm.latency.Load()
	if lat == nil {
		o := rm.m.latency.WithLabelValues(rm.route)
		lat = &o
		rm.latency.Store(lat) // a racing first request stores the same child
	}
	(*lat).Observe(d.Seconds())
	slot := slices.Index(commonCodes[:], code)
	if slot < 0 {
		rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(code)).Inc()
		return
	}
	c := rm.byCode[slot].Load()
	if c == nil {
		cc := rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(code))
		c = &cc
		rm.byCode[slot].Store(c)
	}
	(*c).Inc()
}
