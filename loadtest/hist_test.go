package loadtest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsContiguous(t *testing.T) {
	for i := 0; i < bucketOf(math.MaxInt64); i++ {
		lo, hi := bucketLow(i), bucketHigh(i)
		if lo > hi || bucketOf(lo) != i || bucketOf(hi) != i || bucketLow(i+1) != hi+1 {
			t.Fatalf("bucket %d: [%d, %d], next low %d", i, lo, hi, bucketLow(i+1))
		}
		if lo >= 256 && float64(hi-lo+1)/float64(lo) > 1.0/128+1e-12 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/128 of its values", i, lo, hi)
		}
	}
	if got := bucketHigh(bucketOf(math.MaxInt64)); got != math.MaxInt64 {
		t.Fatalf("last bucket ends at %d", got)
	}
}

func TestPercentilesAgainstExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * 5e6) // ~5 ms mean, in ns
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{1, 50, 90, 99, 99.9, 100} {
		exact := vals[int(math.Ceil(q/100*float64(len(vals))))-1]
		got := h.Percentile(q)
		if got < exact || float64(got-exact) > float64(exact)/128+1 {
			t.Errorf("p%v = %d, exact %d", q, got, exact)
		}
	}
	if h.Percentile(100) != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != uint64(len(vals)) {
		t.Errorf("extremes: max %d min %d count %d", h.Max(), h.Min(), h.Count())
	}
	s := h.DurationSummary()
	if !(s.Min <= s.P50 && s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Errorf("summary not ordered: %+v", s)
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all, a, b, c Histogram
	for i := 0; i < 30000; i++ {
		v := r.Int64N(1 << uint(r.IntN(40)+1))
		all.Record(v)
		switch i % 3 {
		case 0:
			a.Record(v)
		case 1:
			b.Record(v)
		default:
			c.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // empty merges are no-ops
	m.Merge(&c)
	for _, q := range []float64{0.1, 25, 50, 75, 99, 99.99, 100} {
		if m.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%v: merged %d, all %d", q, m.Percentile(q), all.Percentile(q))
		}
	}
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || m.Mean() != all.Mean() {
		t.Errorf("merged %d/%d/%d/%v, all %d/%d/%d/%v", m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
}

func TestHistogramJSONRoundTrip(t *testing.T) {
	var h Histogram
	for _, v := range []int64{0, 1, 255, 256, 1e6, 1e6 + 3, 5e9, math.MaxInt64} {
		h.Record(v)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var g Histogram
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{10, 50, 90, 100} {
		if g.Percentile(q) != h.Percentile(q) {
			t.Errorf("p%v: %d after round trip, %d before", q, g.Percentile(q), h.Percentile(q))
		}
	}
	if g.Count() != h.Count() || g.Max() != h.Max() || g.Min() != h.Min() {
		t.Errorf("round trip changed extremes")
	}
}

func TestEmptyAndNegative(t *testing.T) {
	var h Histogram
	if h.Percentile(99) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram not zero")
	}
	h.Record(-5)
	if h.Min() != 0 || h.Percentile(50) != 0 {
		t.Fatal("negative not clamped to 0")
	}
}

func TestParseMetrics(t *testing.T) {
	const text = `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
process_resident_memory_bytes 2.1e+07
sessiongate_socket_connects_total{result="ok"} 5
sessiongate_socket_connects_total{result="refused",x="a}b"} 2
http_duration_seconds_bucket{le="+Inf"} 3 1700000000000
rpc_duration_seconds{quantile="0.5"} NaN
rpc_duration_seconds{quantile="0.99"} 0.25
`
	m, err := parseMetrics(stringsReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"go_goroutines": 12, "process_resident_memory_bytes": 2.1e7, "sessiongate_socket_connects_total": 7, "http_duration_seconds_bucket": 3, "rpc_duration_seconds": 0.25}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := parseMetrics(stringsReader("broken_line\n")); err == nil {
		t.Error("a line without a value parsed")
	}
}

func TestCheckTarget(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:7350", "http://127.3.4.5:1", "http://localhost:7350", "http://[::1]:7350"} {
		if err := checkTarget(ok, false); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:7350", "http://8.8.8.8", "ftp://127.0.0.1", "127.0.0.1:7350"} {
		if err := checkTarget(bad, false); err == nil {
			t.Errorf("%s allowed", bad)
		}
	}
	if err := checkTarget("http://10.0.0.1:7350", true); err != nil {
		t.Errorf("--allow-remote: %v", err)
	}
}
