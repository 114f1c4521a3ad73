package hub

// userSmallMax is how many sockets a user may hold before its set switches from a slice to a
// map. Users nearly always hold one or two sockets, where scanning a few interface values beats
// hashing; the map keeps a user with thousands of sockets (a bot, an abusive client) from
// making Register and Unregister O(n) under a shard lock.
const userSmallMax = 8

// userSet is the sockets of one user. It is stored by value in the user shard's map, so the
// common single-socket user costs no allocation beyond the map slot: the first socket sits in
// head, the next few in tail, and past userSmallMax all of them move to big (and head and tail
// are emptied). A set becomes big only once and its map entry is deleted when it empties.
//
// Members are told apart by identity (==), which is safe because Register admits only
// comparable Conn types.
type userSet struct {
	head Conn
	tail []Conn
	big  map[Conn]struct{}
}

func (s *userSet) len() int {
	switch {
	case s.big != nil:
		return len(s.big)
	case s.head == nil:
		return 0
	default:
		return 1 + len(s.tail)
	}
}

// add inserts c, which must not already be a member (the session index guarantees it).
func (s *userSet) add(c Conn) {
	switch {
	case s.big != nil:
		s.big[c] = struct{}{}
	case s.head == nil:
		s.head = c
	case len(s.tail) < userSmallMax-1:
		s.tail = append(s.tail, c)
	default:
		big := make(map[Conn]struct{}, 2*userSmallMax)
		big[s.head] = struct{}{}
		for _, x := range s.tail {
			big[x] = struct{}{}
		}
		big[c] = struct{}{}
		*s = userSet{big: big}
	}
}

// remove deletes c and reports whether it was a member. Order is not kept.
func (s *userSet) remove(c Conn) bool {
	if s.big != nil {
		if _, ok := s.big[c]; !ok {
			return false
		}
		delete(s.big, c)
		return true
	}
	if s.head == nil {
		return false
	}
	last := len(s.tail) - 1
	if s.head == c {
		if last < 0 {
			s.head = nil
			return true
		}
		s.head = s.tail[last]
	} else {
		i := 0
		for i < len(s.tail) && s.tail[i] != c {
			i++
		}
		if i == len(s.tail) {
			return false
		}
		s.tail[i] = s.tail[last]
	}
	s.tail[last] = nil // the backing array outlives the element; do not pin a closed socket
	s.tail = s.tail[:last]
	return true
}

func (s *userSet) appendTo(dst []Conn) []Conn {
	if s.big != nil {
		for c := range s.big {
			dst = append(dst, c)
		}
		return dst
	}
	if s.head == nil {
		return dst
	}
	dst = append(dst, s.head)
	return append(dst, s.tail...)
}
