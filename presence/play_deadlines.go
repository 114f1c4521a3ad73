package presence

// deadlines is an indexed min-heap of ids by deadline (Unix nanoseconds): the memory stores'
// expiry schedule. set, remove and popDue are O(log n); get is O(1). Not safe for concurrent
// use: the stores hold their lock around it.
type deadlines struct {
	items []deadlineItem
	index map[string]int // id → position in items
}

type deadlineItem struct {
	id string
	at int64
}

func newDeadlines() deadlines { return deadlines{index: make(map[string]int)} }

// get returns id's deadline.
func (d *deadlines) get(id string) (int64, bool) {
	i, ok := d.index[id]
	if !ok {
		return 0, false
	}
	return d.items[i].at, true
}

// peek returns the earliest item.
func (d *deadlines) peek() (deadlineItem, bool) {
	if len(d.items) == 0 {
		return deadlineItem{}, false
	}
	return d.items[0], true
}

// set adds id or moves its deadline.
func (d *deadlines) set(id string, at int64) {
	if i, ok := d.index[id]; ok {
		old := d.items[i].at
		d.items[i].at = at
		if at < old {
			d.up(i)
		} else {
			d.down(i)
		}
		return
	}
	d.items = append(d.items, deadlineItem{id: id, at: at})
	d.index[id] = len(d.items) - 1
	d.up(len(d.items) - 1)
}

// remove drops id and reports whether it was scheduled.
func (d *deadlines) remove(id string) bool {
	i, ok := d.index[id]
	if !ok {
		return false
	}
	last := len(d.items) - 1
	d.swap(i, last)
	d.items[last] = deadlineItem{}
	d.items = d.items[:last]
	delete(d.index, id)
	if i < last {
		d.down(i)
		d.up(i)
	}
	return true
}

// popDue removes and appends to dst, earliest first, up to limit items due at now or before.
func (d *deadlines) popDue(now int64, limit int, dst []deadlineItem) []deadlineItem {
	for n := 0; n < limit; n++ {
		it, ok := d.peek()
		if !ok || it.at > now {
			break
		}
		d.remove(it.id)
		dst = append(dst, it)
	}
	return dst
}

func (d *deadlines) swap(i, j int) {
	d.items[i], d.items[j] = d.items[j], d.items[i]
	d.index[d.items[i].id] = i
	d.index[d.items[j].id] = j
}

func (d *deadlines) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if d.items[parent].at <= d.items[i].at {
			return
		}
		d.swap(i, parent)
		i = parent
	}
}

func (d *deadlines) down(i int) {
	n := len(d.items)
	for {
		small := i
		if l := 2*i + 1; l < n && d.items[l].at < d.items[small].at {
			small = l
		}
		if r := 2*i + 2; r < n && d.items[r].at < d.items[small].at {
			small = r
		}
		if small == i {
			return
		}
		d.swap(i, small)
		i = small
	}
}
