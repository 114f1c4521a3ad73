package loadtest

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Sample is the clients' merged counts at one second of the run.
type Sample struct {
	T         float64 `json:"t"` // seconds since the run started
	Phase     string  `json:"phase"`
	Open      int64   `json:"open"`
	Connected int64   `json:"connected"`
	Errors    int64   `json:"errors"`
	Dropped   int64   `json:"dropped"`
}

// ServerSample is one node's reading at one moment of the run.
type ServerSample struct {
	T       float64 `json:"t"`
	Node    int     `json:"node"` // index in the metrics URLs
	RSS     float64 `json:"rss_bytes"`
	Sockets float64 `json:"sockets"`
	CPU     float64 `json:"cpu_seconds"`
}

// timeline collects the samples of a run; its methods are safe for concurrent use.
type timeline struct {
	start   time.Time
	mu      sync.Mutex
	samples []Sample
	server  []ServerSample
}

func (tl *timeline) add(s Sample) {
	tl.mu.Lock()
	tl.samples = append(tl.samples, s)
	tl.mu.Unlock()
}

// scrapeLoop reads every node's /metrics each ScrapeInterval until ctx ends; a node that does
// not answer (a stopped storm node) is left out of that moment.
func (tl *timeline) scrapeLoop(ctx context.Context, cfg Config) {
	every := cfg.ScrapeInterval
	if every == 0 {
		every = 2 * time.Second
	}
	client := &http.Client{Timeout: every}
	defer client.CloseIdleConnections()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for i, u := range cfg.MetricsURLs {
			s, err := scrapeMetrics(ctx, client, u)
			if err != nil {
				continue
			}
			tl.mu.Lock()
			tl.server = append(tl.server, ServerSample{T: s.At.Sub(tl.start).Seconds(), Node: i, RSS: s.Values[mRSS], Sockets: s.Values[mSockets], CPU: s.Values[mCPU]})
			tl.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
