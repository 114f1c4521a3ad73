package gateway

import (
	"testing"
	"time"
)

func TestReleaseStep(t *testing.T) {
	for _, tc := range []struct {
		name     string
		churns   []int
		releases []bool
	}{
		{"ramp then quiet", []int{5000, 5000, 10, 0}, []bool{false, false, true, false}},
		{"small burst", []int{500, 400, 0}, []bool{false, false, false}},
		{"steady low churn", []int{90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90, 90}, make([]bool, 12)},
		{"steady high churn", []int{2000, 2000, 2000, 2000}, make([]bool, 4)},
		{"burst, quiet, burst", []int{1500, 0, 0, 600, 600, 50}, []bool{false, true, false, false, false, true}},
	} {
		burst := 0
		for i, churn := range tc.churns {
			var release bool
			burst, release = releaseStep(burst, churn)
			if release != tc.releases[i] {
				t.Errorf("%s: check %d (churn %d): release %v, want %v", tc.name, i, churn, release, tc.releases[i])
			}
		}
	}
}

func TestDrainBatches(t *testing.T) {
	for _, tc := range []struct {
		n        int
		period   time.Duration
		batches  int
		interval time.Duration
	}{
		{0, 10 * time.Second, 0, 0},
		{1, 10 * time.Second, 1, 10 * time.Second},
		{50, time.Second, 50, 20 * time.Millisecond},
		{19000, 10 * time.Second, 1000, 10 * time.Millisecond},
		{5, time.Millisecond, 1, time.Millisecond},
	} {
		b, iv := drainBatches(tc.n, tc.period)
		if b != tc.batches || iv != tc.interval {
			t.Errorf("drainBatches(%d, %v) = %d, %v; want %d, %v", tc.n, tc.period, b, iv, tc.batches, tc.interval)
		}
	}
}
