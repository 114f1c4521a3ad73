package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Chart colours. Each chart draws its data in a colour of its own, so that a screenshot shows
// which charts rendered (the HTML test counts their pixels).
const (
	ColorConnect    = "#2563eb" // connect latency histogram
	ColorPing       = "#16a34a" // ping RTT histogram
	ColorOther      = "#64748b" // other latency histograms
	ColorSockets    = "#7c3aed" // sockets over time (clients)
	ColorServerSock = "#db2777" // sockets over time (server)
	ColorRSS        = "#ea580c" // server RSS over time
	ColorDisconnect = "#0d9488" // disconnect-latency percentiles
	ColorErrors     = "#dc2626" // errors and close codes
)

// Per-node series tell the nodes apart with these: RSS, and sockets per node.
var (
	rssColors    = []string{ColorRSS, "#ca8a04", "#a16207", "#b45309", "#92400e"}
	socketColors = []string{"#4338ca", "#0e7490", "#be185d", "#15803d", "#6d28d9"}
)

// WriteHTML writes the report as one self-contained HTML page: every chart is inline SVG and
// nothing is fetched from the network to view it.
func (r *Report) WriteHTML(path string) error {
	b, err := r.HTML()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// HTML renders the report page.
func (r *Report) HTML() ([]byte, error) {
	var table bytes.Buffer
	r.WriteTable(&table)
	d := htmlData{R: r, Table: table.String(), Generated: time.Now().UTC().Format(time.RFC3339)}
	if h := r.Histograms[HistConnect]; h != nil && h.Count() > 0 {
		d.Charts = append(d.Charts, histChart("Connect latency (dial, upgrade, token check, first pong)", h, ColorConnect))
	}
	if h := r.Histograms[HistPingRTT]; h != nil && h.Count() > 0 {
		d.Charts = append(d.Charts, histChart("Envelope ping round trip while holding", h, ColorPing))
	}
	for _, k := range sortedKeys(r.Histograms) {
		if k == HistConnect || k == HistPingRTT || r.Histograms[k].Count() == 0 {
			continue
		}
		d.Charts = append(d.Charts, histChart(strings.ReplaceAll(k, "_", " ")+" latency", r.Histograms[k], ColorOther))
	}
	if len(r.Timeline) > 1 {
		open := series{name: "open (clients)", color: ColorSockets}
		for _, s := range r.Timeline {
			open.pts = append(open.pts, [2]float64{s.T, float64(s.Open)})
		}
		ss := []series{open}
		if sv := r.serverSeries(func(s ServerSample) float64 { return s.Sockets }, true, nil); len(sv) > 0 {
			sv[0].name, sv[0].color = "sessiongate_sockets (all nodes)", ColorServerSock
			ss = append(ss, sv[0])
		}
		d.Series = append(d.Series, lineChart("Sockets over time", ss, "s", "", r.timeMarks()))
	}
	if len(r.Targets) > 1 {
		if per := r.serverSeries(func(s ServerSample) float64 { return s.Sockets }, false, socketColors); len(per) > 1 {
			d.Series = append(d.Series, lineChart("Sockets per node (sessiongate_sockets)", per, "s", "", r.timeMarks()))
		}
	}
	if rss := r.serverSeries(func(s ServerSample) float64 { return s.RSS / (1 << 20) }, false, rssColors); len(rss) > 0 {
		d.Series = append(d.Series, lineChart("Server RSS over time (per node)", rss, "s", " MiB", r.timeMarks()))
	}
	for _, k := range []string{HistDisconnect, HistDisconnectAPI, HistReconnect} {
		if s, ok := r.Latencies[k]; ok && s.Count > 0 {
			d.Percentiles = append(d.Percentiles, percentileChart(strings.ReplaceAll(k, "_", " ")+" percentiles", s, ColorDisconnect))
		}
	}
	kinds := map[string]int64{}
	for k, v := range r.Errors {
		kinds["error: "+k] = v
	}
	for k, v := range r.CloseCodes {
		kinds["close code "+k] = v
	}
	if len(kinds) > 0 {
		d.Kinds = barList("Errors and close codes by kind", kinds, ColorErrors)
	}
	for _, k := range sortedKeys(r.Latencies) {
		d.Latencies = append(d.Latencies, namedSummary{Name: k, S: r.Latencies[k]})
	}
	var out bytes.Buffer
	if err := htmlPage.Execute(&out, d); err != nil {
		return nil, fmt.Errorf("render html report: %w", err)
	}
	return out.Bytes(), nil
}

type htmlData struct {
	R           *Report
	Table       string
	Generated   string
	Charts      []template.HTML
	Series      []template.HTML
	Percentiles []template.HTML
	Kinds       template.HTML
	Latencies   []namedSummary
}

type namedSummary struct {
	Name string
	S    Summary
}

// serverSeries is one series per node of f over the server timeline (or, with sum, one series
// of the nodes' sum at each scrape round).
func (r *Report) serverSeries(f func(ServerSample) float64, sum bool, colors []string) []series {
	if len(r.ServerTimeline) < 2 {
		return nil
	}
	if sum {
		s := series{}
		nodes := len(r.Targets)
		var round []ServerSample
		flush := func() {
			if len(round) == 0 {
				return
			}
			v := 0.0
			for _, x := range round {
				v += f(x)
			}
			s.pts = append(s.pts, [2]float64{round[0].T, v})
			round = round[:0]
		}
		for _, x := range r.ServerTimeline {
			if len(round) > 0 && (x.Node <= round[len(round)-1].Node || len(round) >= nodes) {
				flush()
			}
			round = append(round, x)
		}
		flush()
		return []series{s}
	}
	byNode := map[int]*series{}
	var order []int
	for _, x := range r.ServerTimeline {
		s := byNode[x.Node]
		if s == nil {
			s = &series{name: fmt.Sprintf("node %d", x.Node), color: colors[x.Node%len(colors)]}
			byNode[x.Node] = s
			order = append(order, x.Node)
		}
		s.pts = append(s.pts, [2]float64{x.T, f(x)})
	}
	sort.Ints(order)
	out := make([]series, 0, len(order))
	for _, n := range order {
		out = append(out, *byNode[n])
	}
	return out
}

// series is one line of a chart: points (x, y).
type series struct {
	name, color string
	pts         [][2]float64
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Chart geometry (SVG user units).
const (
	chartW, chartH = 560, 220
	padL, padR     = 56, 12
	padT, padB     = 28, 34
)

func svgOpen(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff" stroke="#d1d5db"/>`, chartW, chartH)
	fmt.Fprintf(b, `<text x="%d" y="18" class="title">%s</text>`, padL, template.HTMLEscapeString(title))
}

func fmtMS(ns float64) string {
	ms := ns / 1e6
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 0.1:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}

// histChart draws h as bars over log-spaced latency bins, with p50 and p99 marked.
func histChart(title string, h *Histogram, color string) template.HTML {
	const nBins = 48
	lo, hi := math.Max(float64(h.Min()), 1000), math.Max(float64(h.Max()), 1000) // from 1 µs
	if hi <= lo*1.01 {
		hi = lo * 1.5
	}
	llo, lhi := math.Log(lo), math.Log(hi)
	counts := make([]uint64, nBins)
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		v := float64(bucketLow(i)+bucketHigh(i)) / 2
		j := int((math.Log(math.Max(v, lo)) - llo) / (lhi - llo) * nBins)
		counts[min(max(j, 0), nBins-1)] += c
	}
	var top uint64
	for _, c := range counts {
		top = max(top, c)
	}
	var b strings.Builder
	svgOpen(&b, title)
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	bw := plotW / nBins
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := math.Max(plotH*float64(c)/float64(top), 1.5)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, float64(padL)+float64(i)*bw+0.5, float64(padT)+plotH-bh, bw-1, bh, color)
	}
	x := func(ns float64) float64 {
		return float64(padL) + (math.Log(math.Max(ns, lo))-llo)/(lhi-llo)*plotW
	}
	for k, m := range []struct {
		q    float64
		name string
	}{{50, "p50"}, {99, "p99"}} {
		v := float64(h.Percentile(m.q))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#111827" stroke-dasharray="3 3"/>`, x(v), x(v), padT, float64(padT)+plotH)
		anchor, dx := "start", 3.0
		if x(v) > float64(chartW-padR-90) {
			anchor, dx = "end", -3 // keep the label inside the chart
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="mark" text-anchor="%s">%s %s ms</text>`, x(v)+dx, padT+10+12*k, anchor, m.name, fmtMS(v))
	}
	axisY := float64(padT) + plotH
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#6b7280"/>`, padL, chartW-padR, axisY, axisY)
	for i := 0; i <= 4; i++ {
		v := math.Exp(llo + (lhi-llo)*float64(i)/4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, x(v), axisY+14, fmtMS(v))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="tick" text-anchor="end">ms (log scale), n=%d, peak bin %d</text>`, chartW-padR, chartH-4, h.Count(), top)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// lineChart draws series over time.
// timeMark is a labelled moment on the timeline charts (seconds since the timeline began).
type timeMark struct {
	t     float64
	label string
}

// timeMarks are the run's moments worth marking on the charts: the storm's signal.
func (r *Report) timeMarks() []timeMark {
	if r.StormAt.IsZero() || r.TimelineStart.IsZero() {
		return nil
	}
	return []timeMark{{r.StormAt.Sub(r.TimelineStart).Seconds(), r.StormSignal}}
}

func lineChart(title string, ss []series, xUnit, yUnit string, marks []timeMark) template.HTML {
	var xmax, ymax float64
	for _, s := range ss {
		for _, p := range s.pts {
			xmax, ymax = math.Max(xmax, p[0]), math.Max(ymax, p[1])
		}
	}
	for _, m := range marks {
		xmax = math.Max(xmax, m.t)
	}
	if xmax <= 0 {
		xmax = 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax *= 1.08
	var b strings.Builder
	svgOpen(&b, title)
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	px := func(p [2]float64) (float64, float64) {
		return float64(padL) + p[0]/xmax*plotW, float64(padT) + plotH - p[1]/ymax*plotH
	}
	for i := 0; i <= 4; i++ {
		y := float64(padT) + plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s%s</text>`, padL-4, y+4, fmtNum(ymax*float64(4-i)/4), yUnit)
	}
	for i := 0; i <= 4; i++ {
		x := float64(padL) + plotW*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s%s</text>`, x, float64(padT)+plotH+14, fmtNum(xmax*float64(i)/4), xUnit)
	}
	for _, m := range marks {
		x, _ := px([2]float64{m.t, 0})
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#111827" stroke-dasharray="2 3"/>`, x, x, padT, float64(padT)+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="mark">%s</text>`, x+3, padT+10, template.HTMLEscapeString(m.label))
	}
	for i, s := range ss {
		var pts strings.Builder
		for _, p := range s.pts {
			x, y := px(p)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		// Later series are drawn thinner and dashed on top, so that equal series both show.
		width, dash := 5.0-1.5*float64(min(i, 2)), ""
		if i > 0 {
			dash = ` stroke-dasharray="8 5"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%.1f"%s points="%s"/>`, s.color, width, dash, strings.TrimSpace(pts.String()))
		if len(s.pts) == 1 { // a line of one point does not show: a dot instead
			x, y := px(s.pts[0])
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, x, y, s.color)
		}
		lx := float64(padL) + 8 + float64(i)*180
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="10" height="10" fill="%s"/><text x="%.1f" y="%d" class="tick">%s</text>`, lx, chartH-14, s.color, lx+14, chartH-5, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func fmtNum(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// percentileChart draws p50, p90, p99, p99.9 and max of s as horizontal bars.
func percentileChart(title string, s Summary, color string) template.HTML {
	rows := []struct {
		name string
		v    float64
	}{{"p50", s.P50}, {"p90", s.P90}, {"p99", s.P99}, {"p99.9", s.P999}, {"max", s.Max}}
	var b strings.Builder
	svgOpen(&b, fmt.Sprintf("%s (n=%d)", title, s.Count))
	plotW := float64(chartW - padL - padR - 70)
	for i, r := range rows {
		y := float64(padT) + 6 + float64(i)*34
		w := 1.5
		if s.Max > 0 {
			w = math.Max(plotW*r.v/s.Max, 1.5)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padL-6, y+16, r.name)
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="24" fill="%s"/>`, padL, y, w, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick">%.2f ms</text>`, float64(padL)+w+6, y+16, r.v)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barList draws counts by kind as horizontal bars, largest first.
func barList(title string, m map[string]int64, color string) template.HTML {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var top int64
	for _, v := range m {
		top = max(top, v)
	}
	var b strings.Builder
	h := padT + 10 + 26*len(keys)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, chartW, h, chartW, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff" stroke="#d1d5db"/>`, chartW, h)
	fmt.Fprintf(&b, `<text x="12" y="18" class="title">%s</text>`, template.HTMLEscapeString(title))
	const labelW = 220
	plotW := float64(chartW - labelW - 80)
	for i, k := range keys {
		y := float64(padT + 4 + 26*i)
		w := math.Max(plotW*float64(m[k])/float64(max(top, 1)), 1.5)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, labelW-6, y+14, template.HTMLEscapeString(k))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="18" fill="%s"/>`, labelW, y, w, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick">%d</text>`, float64(labelW)+w+6, y+14, m[k])
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var htmlPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>sessiongate load test: {{.R.Scenario}} {{.R.RunID}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #111827; background: #f9fafb; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; }
.chart .title { font-size: 13px; font-weight: 600; fill: #111827; }
.chart .tick, .chart .mark { font-size: 11px; fill: #374151; }
pre { background: #ffffff; border: 1px solid #d1d5db; padding: 12px; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; background: #ffffff; }
td, th { border: 1px solid #d1d5db; padding: 3px 8px; text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
.none { color: #6b7280; }
</style></head><body>
<h1>{{.R.Scenario}} · {{.R.Clients}} clients · run {{.R.RunID}}</h1>
<div>started {{.R.Started.Format "2006-01-02 15:04:05 MST"}} · targets {{range .R.Targets}}{{.}} {{end}}· {{.R.Workers}} worker(s) · report written {{.Generated}}</div>
<h2>Latency</h2>
<div class="grid">{{range .Charts}}{{.}}{{else}}<p class="none">No latency was recorded.</p>{{end}}</div>
<table><tr><th>latency (ms)</th><th>n</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>
{{range .Latencies}}<tr><td>{{.Name}}</td><td>{{.S.Count}}</td><td>{{printf "%.2f" .S.Min}}</td><td>{{printf "%.2f" .S.P50}}</td><td>{{printf "%.2f" .S.P90}}</td><td>{{printf "%.2f" .S.P99}}</td><td>{{printf "%.2f" .S.P999}}</td><td>{{printf "%.2f" .S.Max}}</td><td>{{printf "%.2f" .S.Mean}}</td></tr>
{{end}}</table>
<h2>Over time</h2>
<div class="grid">{{range .Series}}{{.}}{{else}}<p class="none">No timeline (the run was shorter than two samples, or metrics were not read).</p>{{end}}</div>
<h2>Disconnects and reconnects</h2>
<div class="grid">{{range .Percentiles}}{{.}}{{else}}<p class="none">This scenario measured no disconnect or reconnect.</p>{{end}}</div>
<h2>Errors and close codes</h2>
<div class="grid">{{if .Kinds}}{{.Kinds}}{{else}}<p class="none">No errors, and no socket closed by anything but the client.</p>{{end}}</div>
<h2>Summary</h2>
<pre>{{.Table}}</pre>
</body></html>
`))
