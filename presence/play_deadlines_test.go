package presence

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestDeadlinesAgainstAMap drives the heap with random sets, moves and removals and checks,
// after every step, its index and heap order, and that popDue returns what a plain map says is
// due, earliest first.
func TestDeadlinesAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := newDeadlines()
	want := map[string]int64{}
	check := func() {
		t.Helper()
		if len(d.items) != len(want) || len(d.index) != len(want) {
			t.Fatalf("%d items, %d indexed, want %d", len(d.items), len(d.index), len(want))
		}
		for i, it := range d.items {
			if d.index[it.id] != i || want[it.id] != it.at {
				t.Fatalf("item %d %+v: index %d, want at %d", i, it, d.index[it.id], want[it.id])
			}
			if i > 0 && d.items[(i-1)/2].at > it.at {
				t.Fatalf("heap order broken at %d", i)
			}
		}
	}
	for step := range 20000 {
		id := strconv.Itoa(rng.IntN(500))
		switch op := rng.IntN(10); {
		case op < 6:
			at := rng.Int64N(1000)
			d.set(id, at)
			want[id] = at
		case op < 9:
			_, had := want[id]
			if d.remove(id) != had {
				t.Fatalf("step %d: remove(%s) disagrees", step, id)
			}
			delete(want, id)
		default:
			now, limit := rng.Int64N(1000), rng.IntN(20)
			var due []deadlineItem
			for id, at := range want {
				if at <= now {
					due = append(due, deadlineItem{id, at})
				}
			}
			slices.SortFunc(due, func(a, b deadlineItem) int { return int(a.at - b.at) })
			got := d.popDue(now, limit, nil)
			if len(got) != min(limit, len(due)) {
				t.Fatalf("step %d: popDue(%d, %d) gave %d, want %d", step, now, limit, len(got), min(limit, len(due)))
			}
			for i, it := range got {
				if it.at != due[i].at || want[it.id] != it.at { // equal deadlines may come in any order
					t.Fatalf("step %d: popped %+v at %d, want deadline %d", step, it, i, due[i].at)
				}
				delete(want, it.id)
			}
		}
		check()
	}
}
