package loadtest

import (
	"encoding/json"
	"math"
	"math/bits"
	"time"
)

// Histogram records non-negative int64 values (nanoseconds, for latencies) in log-linear
// buckets, HDR-style: values below 256 each get a bucket of their own, and every power-of-two
// range above that is split into 128 equal buckets, so a recorded value is known to within
// 1/128 (< 0.8 %) of itself. Histograms of the same kind merge exactly, which is how worker
// processes' latencies are combined: percentiles are never averaged.
//
// The zero value is ready to use. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts []uint64 // by bucket index; grown on demand
	total  uint64
	min    int64
	max    int64
	sum    float64
}

const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits // buckets per power of two
)

// bucketOf is the index of the bucket holding v (v >= 0).
func bucketOf(v int64) int {
	u := uint64(v)
	if u < 2*histSubCount {
		return int(u)
	}
	shift := bits.Len64(u) - histSubBits - 1
	return shift*histSubCount + int(u>>shift)
}

// bucketLow is the smallest value of bucket i.
func bucketLow(i int) int64 {
	if i < 2*histSubCount {
		return int64(i)
	}
	shift := i/histSubCount - 1
	m := i - shift*histSubCount
	return int64(m) << shift
}

// bucketHigh is the largest value of bucket i.
func bucketHigh(i int) int64 {
	if i >= bucketOf(math.MaxInt64) {
		return math.MaxInt64
	}
	return bucketLow(i+1) - 1
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		n := make([]uint64, i+1, max(i+1, 2*len(h.counts)))
		copy(n, h.counts)
		h.counts = n
	}
	h.counts[i]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		n := make([]uint64, len(o.counts))
		copy(n, h.counts)
		h.counts = n
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Clone returns an independent copy of h.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extremes recorded (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest value recorded.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean of the recorded values.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Percentile returns the value at or below which q percent (0 < q <= 100) of the recorded
// values lie: the highest value of the bucket holding that rank, clamped to the recorded
// extremes. It is 0 when nothing was recorded.
func (h *Histogram) Percentile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q / 100 * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketHigh(i), h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram's usual figures, in the histogram's unit converted to milliseconds
// when it records durations.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// DurationSummary reads h as nanoseconds and summarises it in milliseconds.
func (h *Histogram) DurationSummary() Summary {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return Summary{
		Count: h.total, Min: ms(h.min), Mean: h.Mean() / 1e6,
		P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)),
		P999: ms(h.Percentile(99.9)), Max: ms(h.max),
	}
}

// histJSON is the wire form: non-empty buckets only, as [index, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	Total   uint64      `json:"total"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Sum     float64     `json:"sum"`
}

// MarshalJSON encodes the histogram losslessly (sparse buckets plus exact extremes and sum).
func (h *Histogram) MarshalJSON() ([]byte, error) {
	j := histJSON{Buckets: [][2]uint64{}, Total: h.total, Min: h.min, Max: h.max, Sum: h.sum}
	for i, c := range h.counts {
		if c != 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Histogram{total: j.Total, min: j.Min, max: j.Max, sum: j.Sum}
	maxIdx := bucketOf(math.MaxInt64)
	for _, bc := range j.Buckets {
		i := int(min(bc[0], uint64(maxIdx)))
		if i >= len(h.counts) {
			n := make([]uint64, i+1)
			copy(n, h.counts)
			h.counts = n
		}
		h.counts[i] += bc[1]
	}
	return nil
}
