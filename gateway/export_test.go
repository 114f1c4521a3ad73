package gateway

import (
	"strconv"

	"github.com/sessiongate/sessiongate/presence"
)

// CastPresenceBurst queues n presence events of user for the other nodes in a tight loop, as a
// mass connect or disconnect of status sockets does: a join and a leave of made-up sessions,
// alternately.
func (s *Server) CastPresenceBurst(user string, n int) {
	for i := range n {
		p := presence.Presence{UserID: user, SessionID: "burst-" + strconv.Itoa(i/2), Username: "burst", Node: s.cluster.node}
		e := presence.Event{UserID: user, Joins: []presence.Presence{p}}
		if i%2 == 1 {
			e = presence.Event{UserID: user, Leaves: []presence.Presence{p}}
		}
		s.cluster.forwardPresence(e)
	}
}
