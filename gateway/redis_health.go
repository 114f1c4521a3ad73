package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// redisHealth checks the Redis a cluster node runs on, for /metrics (sessiongate_redis_up,
// sessiongate_redis_ping_duration_seconds, measured at each scrape) and the console's
// overview. An embedded node has none.
type redisHealth struct {
	ping    func(ctx context.Context) error
	up      *prometheus.Desc
	latency *prometheus.Desc
}

// redisPingTimeout bounds one health ping, so that a scrape or a console poll never hangs on
// an unreachable Redis.
const redisPingTimeout = time.Second

func newRedisHealth(ping func(ctx context.Context) error) *redisHealth {
	return &redisHealth{
		ping: ping,
		up: prometheus.NewDesc("sessiongate_redis_up",
			"1 when this node's Redis answered a PING within 1s at this scrape, else 0 (cluster mode only).", nil, nil),
		latency: prometheus.NewDesc("sessiongate_redis_ping_duration_seconds",
			"Round trip of this scrape's Redis PING, in seconds (the timeout when it failed).", nil, nil),
	}
}

// check pings Redis once, returning the round trip and the failure, if any.
func (h *redisHealth) check(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	start := time.Now()
	err := h.ping(ctx)
	return time.Since(start), err
}

// Describe implements prometheus.Collector.
func (h *redisHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.up
	ch <- h.latency
}

// Collect implements prometheus.Collector: one PING per scrape.
func (h *redisHealth) Collect(ch chan<- prometheus.Metric) {
	d, err := h.check(context.Background())
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(h.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(h.latency, prometheus.GaugeValue, d.Seconds())
}
