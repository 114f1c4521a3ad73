package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// LabeledScrape is the targets' metrics at one moment of the run: "before" (after the
// pre-phase, before the ramp), "ramped", "settled" (Settle after the ramp) and "end" (the end
// of the hold).
type LabeledScrape struct {
	Label string    `json:"label"`
	Nodes []*Scrape `json:"nodes"`
	Sum   *Scrape   `json:"sum"`
}

// ServerFigures are derived from the scrapes, summed over the nodes.
type ServerFigures struct {
	At                    string  `json:"at"` // which scrape the memory figures come from
	Sockets               float64 `json:"sockets"`
	RSSBefore             float64 `json:"rss_before_bytes"`
	RSSAfter              float64 `json:"rss_after_bytes"`
	RSSPerSocket          float64 `json:"rss_bytes_per_socket"`
	RSSPerSocketRamped    float64 `json:"rss_bytes_per_socket_at_ramp"`
	HeapPerSocket         float64 `json:"heap_inuse_bytes_per_socket"`
	StackPerSocket        float64 `json:"stack_inuse_bytes_per_socket"`
	HeapStackPerSocket    float64 `json:"heap_plus_stack_bytes_per_socket"`
	GoroutinesPerSocket   float64 `json:"goroutines_per_socket"`
	RampCPUPerConnect     float64 `json:"ramp_cpu_seconds_per_connect"`
	IdleCPUSeconds        float64 `json:"idle_cpu_seconds"`
	IdleWindowSeconds     float64 `json:"idle_window_seconds"`
	IdleCPUPercentOfCore  float64 `json:"idle_cpu_percent_of_core"`
	IdleCPUPerSocketMicro float64 `json:"idle_cpu_microseconds_per_socket_second"`
	// Heartbeats are the server's WebSocket pings plus the envelopes it received (the clients'
	// envelope pings, while idle) over the idle window; the idle CPU divided by them is the
	// CPU per heartbeat.
	HeartbeatsPerSecond  float64 `json:"heartbeats_per_second"`
	CPUPerHeartbeatMicro float64 `json:"cpu_microseconds_per_heartbeat"`
}

// Report is every figure of a run.
type Report struct {
	Scenario     string    `json:"scenario"`
	Protocol     string    `json:"protocol"`
	RunID        string    `json:"run_id"`
	Started      time.Time `json:"started"`
	Targets      []string  `json:"targets"`
	Clients      int       `json:"clients"`
	Rate         float64   `json:"rate_limit"`
	InFlight     int       `json:"in_flight"`
	Workers      int       `json:"workers"`
	PingInterval string    `json:"ping_interval"`
	Hold         string    `json:"hold"`
	Settle       string    `json:"settle"`
	Ops          int       `json:"churn_sockets,omitempty"`
	Lifetime     string    `json:"churn_lifetime,omitempty"`
	Status       string    `json:"status,omitempty"`
	Follow       int       `json:"follow,omitempty"`
	StormSignal  string    `json:"storm_signal,omitempty"`

	Authed      int64   `json:"authed"`
	Connected   int64   `json:"connected"`
	Dropped     int64   `json:"dropped"`
	ErrorCount  int64   `json:"error_count"`
	RampSeconds float64 `json:"ramp_seconds"`
	// ConnectRate is sockets connected (hold, connect) or requests answered (auth) per second
	// of the measured phase.
	ConnectRate float64 `json:"rate_per_second"`
	PingsSent   int64   `json:"pings_sent"`
	PongsSeen   int64   `json:"pongs_seen"`
	ClientCPU   float64 `json:"client_cpu_seconds"`
	// ClientRampCPU is the clients' CPU during the measured phase (the gateway shares the cores).
	ClientRampCPU float64 `json:"client_ramp_cpu_seconds"`
	// ActSeconds is how long the logout or disconnect action took over all workers.
	ActSeconds float64 `json:"act_seconds,omitempty"`
	// StormAt is when the storm node was signalled; RecoverySeconds is from then to the last
	// reconnect.
	StormAt         time.Time `json:"storm_at,omitzero"`
	RecoverySeconds float64   `json:"recovery_seconds,omitempty"`

	Errors     map[string]int64 `json:"errors"`
	CloseCodes map[string]int64 `json:"close_codes"` // of sockets closed by anything but the client
	Counts     map[string]int64 `json:"counts"`      // the Count* names

	Connect   Summary `json:"connect"`
	PingRTT   Summary `json:"ping_rtt"`
	Auth      Summary `json:"auth_prephase"`
	AuthBench Summary `json:"auth"`
	// Latencies and Histograms hold every latency measured, by the Hist* names.
	Latencies  map[string]Summary    `json:"latencies"`
	Histograms map[string]*Histogram `json:"histograms"`

	// TimelineStart is the moment the timelines' t counts from.
	TimelineStart  time.Time      `json:"timeline_start,omitzero"`
	Timeline       []Sample       `json:"timeline,omitempty"`
	ServerTimeline []ServerSample `json:"server_timeline,omitempty"`

	// Users is the number of accounts the clients share (0: one each).
	Users int `json:"users,omitempty"`
	// coordinator holds what the coordinator itself measured (the user-wide disconnect calls);
	// finish merges it with the workers' results.
	coordinator *WorkerResult

	Server  *ServerFigures  `json:"server,omitempty"`
	Scrapes []LabeledScrape `json:"scrapes,omitempty"`
	Notes   []string        `json:"notes,omitempty"`
}

// finish merges the workers' results (and the coordinator's, when it measured anything) and
// derives the figures.
func (r *Report) finish(results []*WorkerResult) {
	hists := map[string]*Histogram{}
	r.Counts = map[string]int64{}
	var first, last, recovered time.Time
	for i, w := range results {
		if w == nil {
			r.Notes = append(r.Notes, fmt.Sprintf("worker %d reported no result", i))
			continue
		}
		r.Authed += w.Authed
		r.Connected += w.Connected
		r.Dropped += w.Dropped
		r.PingsSent += w.PingsSent
		r.PongsSeen += w.PongsSeen
		r.ClientCPU += w.CPUSeconds
		r.ClientRampCPU += w.RampCPU
		for k, v := range w.Errors {
			r.Errors[k] += v
			r.ErrorCount += v
		}
		for k, v := range w.CloseCodes {
			r.CloseCodes[k] += v
		}
		for k, v := range w.Counts {
			r.Counts[k] += v
		}
		for k, h := range w.Hists {
			if hists[k] == nil {
				hists[k] = &Histogram{}
			}
			hists[k].Merge(h)
		}
		if w.RecoveredAt.After(recovered) {
			recovered = w.RecoveredAt
		}
		if !w.StartAt.IsZero() && (first.IsZero() || w.StartAt.Before(first)) {
			first = w.StartAt
		}
		if w.RampedAt.After(last) {
			last = w.RampedAt
		}
	}
	if !first.IsZero() && last.After(first) {
		r.RampSeconds = last.Sub(first).Seconds()
		n := float64(r.Connected)
		if r.Scenario == "auth" && hists[HistAuth] != nil {
			n = float64(hists[HistAuth].Count())
		}
		r.ConnectRate = n / r.RampSeconds
	}
	if !r.StormAt.IsZero() && recovered.After(r.StormAt) {
		r.RecoverySeconds = recovered.Sub(r.StormAt).Seconds()
	}
	r.Histograms = hists
	r.Latencies = make(map[string]Summary, len(hists))
	for k, h := range hists {
		r.Latencies[k] = h.DurationSummary()
	}
	r.Connect, r.PingRTT, r.Auth, r.AuthBench = r.Latencies[HistConnect], r.Latencies[HistPingRTT], r.Latencies[HistAuthPrephase], r.Latencies[HistAuth]
	r.Server = r.serverFigures()
}

func (r *Report) scrape(label string) *Scrape {
	for _, s := range r.Scrapes {
		if s.Label == label {
			return s.Sum
		}
	}
	return nil
}

// serverFigures derives per-socket memory from before → settled (or ramped, without a
// settle) and idle CPU from settled → end.
func (r *Report) serverFigures() *ServerFigures {
	before, ramped := r.scrape("before"), r.scrape("ramped")
	if before == nil || ramped == nil || r.Scenario == "auth" || r.Scenario == "churn" {
		return nil
	}
	after, at := r.scrape("settled"), "settled"
	if after == nil {
		after, at = ramped, "ramped"
	}
	n := float64(r.Connected)
	if n == 0 {
		return nil
	}
	v := func(s *Scrape, k string) float64 { return s.Values[k] }
	f := &ServerFigures{At: at, Sockets: v(after, mSockets), RSSBefore: v(before, mRSS), RSSAfter: v(after, mRSS)}
	f.RSSPerSocket = (f.RSSAfter - f.RSSBefore) / n
	f.RSSPerSocketRamped = (v(ramped, mRSS) - f.RSSBefore) / n
	f.HeapPerSocket = (v(after, mHeapInuse) - v(before, mHeapInuse)) / n
	f.StackPerSocket = (v(after, mStackInuse) - v(before, mStackInuse)) / n
	f.HeapStackPerSocket = f.HeapPerSocket + f.StackPerSocket
	f.GoroutinesPerSocket = (v(after, mGoroutines) - v(before, mGoroutines)) / n
	f.RampCPUPerConnect = (v(ramped, mCPU) - v(before, mCPU)) / n
	idleFrom, idleTo := r.scrape("settled"), r.scrape("end")
	if idleFrom != nil && idleTo != nil {
		f.IdleWindowSeconds = idleTo.At.Sub(idleFrom.At).Seconds()
		f.IdleCPUSeconds = v(idleTo, mCPU) - v(idleFrom, mCPU)
		if f.IdleWindowSeconds > 0 {
			f.IdleCPUPercentOfCore = 100 * f.IdleCPUSeconds / f.IdleWindowSeconds
			f.IdleCPUPerSocketMicro = 1e6 * f.IdleCPUSeconds / f.IdleWindowSeconds / n
			beats := v(idleTo, mPings) - v(idleFrom, mPings) + v(idleTo, mMessagesIn) - v(idleFrom, mMessagesIn)
			f.HeartbeatsPerSecond = beats / f.IdleWindowSeconds
			if beats > 0 {
				f.CPUPerHeartbeatMicro = 1e6 * f.IdleCPUSeconds / beats
			}
		}
	}
	return f
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable writes the summary table.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s (run %s, %d worker(s), targets %s)", r.Scenario, r.RunID, r.Workers, strings.Join(r.Targets, " "))
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.Rate)
	}
	plan := fmt.Sprintf("%d clients, %d in flight, rate %s", r.Clients, r.InFlight, rate)
	switch r.Scenario {
	case "hold":
		plan += fmt.Sprintf(", hold %s, settle %s, ping every %s", r.Hold, r.Settle, r.PingInterval)
	case "logout", "storm":
		plan += fmt.Sprintf(", hold %s, ping every %s", r.Hold, r.PingInterval)
	case "disconnect":
		plan += fmt.Sprintf(", ping every %s", r.PingInterval)
	}
	row("plan", "%s", plan)
	if r.Users > 0 {
		row("accounts", "%d, shared by the clients", r.Users)
	}
	lat := func(s Summary) string {
		return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms (n=%d)", s.P50, s.P90, s.P99, s.P999, s.Max, s.Count)
	}
	if r.Scenario == "churn" {
		row("plan", "churn: %d sockets opened at %.0f/s, each closed after %s", r.Ops, r.Rate, r.Lifetime)
	}
	if r.Scenario == "auth" {
		row("devices authed", "%d", r.Authed)
		row("auth rate", "%.0f req/s over %.2f s", r.ConnectRate, r.RampSeconds)
		row("auth latency", "%s", lat(r.AuthBench))
	} else {
		row("authed (pre-phase)", "%d  (%s)", r.Authed, lat(r.Auth))
		if r.Scenario == "churn" {
			row("connected", "%d of %d sockets, dropped %d", r.Connected, r.Ops, r.Dropped)
		} else {
			row("connected", "%d of %d, dropped %d", r.Connected, r.Clients, r.Dropped)
		}
		row("connect rate", "%.0f /s over %.2f s", r.ConnectRate, r.RampSeconds)
		row("connect latency", "%s", lat(r.Connect))
		if r.PingRTT.Count > 0 || r.PingsSent > 0 {
			row("ping rtt", "%s; sent %d", lat(r.PingRTT), r.PingsSent)
		}
	}
	for _, k := range []string{HistStatusUpdate, HistStatusFollow, HistClose, HistLogout, HistRefused, HistReconnect, HistDisconnectAPI, HistDisconnect} {
		if s, ok := r.Latencies[k]; ok && s.Count > 0 {
			row(strings.ReplaceAll(k, "_", " ")+" latency", "%s", lat(s))
		}
	}
	if len(r.Counts) > 0 {
		row("counts", "%s", fmtCounts(r.Counts))
	}
	if r.ActSeconds > 0 {
		row(r.Scenario+" phase", "%.2f s", r.ActSeconds)
	}
	if !r.StormAt.IsZero() {
		row("storm", "%s at +%.1f s; last reconnect %.2f s later", r.StormSignal, r.StormAt.Sub(r.Started).Seconds(), r.RecoverySeconds)
	}
	row("errors", "%d %s", r.ErrorCount, fmtCounts(r.Errors))
	if len(r.CloseCodes) > 0 {
		row("close codes", "%s", fmtCounts(r.CloseCodes))
	}
	row("client cpu", "%.1f s in all, %.2f s in the measured phase", r.ClientCPU, r.ClientRampCPU)
	if f := r.Server; f != nil {
		row("server sockets", "%.0f (at %s)", f.Sockets, f.At)
		row("server rss", "%.1f MiB → %.1f MiB", f.RSSBefore/(1<<20), f.RSSAfter/(1<<20))
		row("rss per socket", "%.2f KiB (at ramp end: %.2f KiB)", f.RSSPerSocket/1024, f.RSSPerSocketRamped/1024)
		row("heap+stack per socket", "%.2f KiB (heap %.2f, stack %.2f)", f.HeapStackPerSocket/1024, f.HeapPerSocket/1024, f.StackPerSocket/1024)
		row("goroutines per socket", "%.3f", f.GoroutinesPerSocket)
		row("server cpu per connect", "%.1f µs", f.RampCPUPerConnect*1e6)
		if f.IdleWindowSeconds > 0 {
			row("idle cpu", "%.3f %% of a core (%.2f s over %.0f s; %.3f µs per socket-second)", f.IdleCPUPercentOfCore, f.IdleCPUSeconds, f.IdleWindowSeconds, f.IdleCPUPerSocketMicro)
			if f.HeartbeatsPerSecond > 0 {
				row("cpu per heartbeat", "%.1f µs (%.0f heartbeats/s: server pings + envelopes in)", f.CPUPerHeartbeatMicro, f.HeartbeatsPerSecond)
			}
		}
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, " ") + ")"
}
