package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scrape is one reading of a node's Prometheus /metrics: every sample summed over its labels,
// by metric name.
type Scrape struct {
	URL    string             `json:"url"`
	At     time.Time          `json:"at"`
	Values map[string]float64 `json:"values"`
}

// Server metrics the report derives its figures from.
const (
	mRSS        = "process_resident_memory_bytes"
	mCPU        = "process_cpu_seconds_total"
	mGoroutines = "go_goroutines"
	mHeapInuse  = "go_memstats_heap_inuse_bytes"
	mStackInuse = "go_memstats_stack_inuse_bytes"
	mSockets    = "sessiongate_sockets"
	mPings      = "sessiongate_socket_pings_total"
	mMessagesIn = "sessiongate_socket_messages_in_total"
)

// scrapeMetrics GETs url and parses the Prometheus text format.
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (*Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	vals, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &Scrape{URL: url, At: time.Now(), Values: vals}, nil
}

// parseMetrics reads the Prometheus text exposition format, summing samples of one name over
// their labels. Histogram and summary series keep their suffixed names (_bucket, _sum, ...).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	vals := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			rest = rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("malformed value in %q", line)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue // a summary's quantile with no observations yet (Centrifugo exports some); JSON has no NaN
		}
		vals[name] += v
	}
	return vals, sc.Err()
}

// sumScrapes adds several nodes' readings of one moment into one (a cluster-wide reading),
// leaving out nodes that did not answer (nil); nil when none did.
func sumScrapes(ss []*Scrape) *Scrape {
	if len(ss) == 0 {
		return nil
	}
	out := &Scrape{URL: "sum", Values: make(map[string]float64)}
	n := 0
	for _, s := range ss {
		if s == nil {
			continue // a node that did not answer
		}
		n++
		if s.At.After(out.At) {
			out.At = s.At
		}
		for k, v := range s.Values {
			out.Values[k] += v
		}
	}
	if n == 0 {
		return nil
	}
	if len(ss) == 1 {
		out.URL = ss[0].URL
	}
	return out
}
