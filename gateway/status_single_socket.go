package gateway

import (
	"time"

	"github.com/google/uuid"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiongate/sessiongate/hub"
)

// Single-socket mode (Config.SingleSocket, --single-socket): a user's new socket replaces the
// older ones, as Nakama's session.single_socket. Each older socket first receives Nakama's
// notification {"notifications":{"notifications":[{"id","subject":"single_socket",
// "content":"{}","code":-7,"create_time"}]}}, then closes with CloseReplaced (4001).
//
// hub.RegisterExclusive snapshots the user's other sockets and registers the new one under the
// same lock, so of two sockets of a user registered at the same moment the later one sees the
// earlier and closes it, never the reverse: exactly one survives.

// NotificationCodeSingleSocket is Nakama's notification code for a single-socket replacement.
const NotificationCodeSingleSocket = -7

const reasonReplaced = "replaced by a newer socket"

// registerSocket registers c in the hub, closing the user's older sockets in single-socket mode,
// on this node and (through the cluster bus) on the others.
func (s *Server) registerSocket(c *socketConn) error {
	if !s.cfg.SingleSocket {
		return s.rt.hub.Register(c)
	}
	var buf [8]hub.Conn
	older, err := s.rt.hub.RegisterExclusive(c, buf[:0])
	if err != nil {
		return err
	}
	s.cluster.replaceElsewhere(c)
	s.rt.replace(older)
	return nil
}

// replace sends each socket the single-socket notification (encoded once per format), then
// closes it with 4001.
func (rt *realtime) replace(older []hub.Conn) {
	if len(older) == 0 {
		return
	}
	m := newOutMsg(&rtapi.Envelope{Message: &rtapi.Envelope_Notifications{
		Notifications: &rtapi.Notifications{Notifications: []*api.Notification{{
			Id:         uuid.NewString(),
			Subject:    "single_socket",
			Content:    "{}",
			Code:       NotificationCodeSingleSocket,
			CreateTime: &timestamppb.Timestamp{Seconds: time.Now().Unix()},
		}}},
	}})
	for _, o := range older {
		rt.sendOut(o, m)
		o.Close(CloseReplaced, reasonReplaced)
	}
}
