package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/proto"

	"github.com/sessiongate/sessiongate/hub"
)

// Socket formats: GET /ws?format=json (the default) or format=protobuf, as in Nakama. Both carry
// the same nakama.realtime.Envelope (nakama-common's rtapi types): a json socket exchanges text
// messages in Nakama's JSON (protojson, marshalJSON), a protobuf socket binary messages in the
// protobuf encoding. A socket's messages all have its format; a message of the other type closes
// it (readMessage), as in Nakama, which ends a socket that mixes the two.
//
// Messages that fan out (status events, notifications, cluster deliveries) are an outMsg: each
// format's bytes are encoded once, by the first recipient of that format, and shared by all.

// socketFormat is a socket's wire format. The zero value is json.
type socketFormat uint8

const (
	formatJSON socketFormat = iota
	formatProtobuf
	numFormats
)

// marshalProto encodes envelopes for protobuf sockets; unmarshalProto decodes theirs, ignoring
// unknown fields as the json side does.
var (
	marshalProto   = proto.MarshalOptions{}
	unmarshalProto = proto.UnmarshalOptions{DiscardUnknown: true}
)

// parseFormat reads the format query parameter ("" is json).
func parseFormat(s string) (socketFormat, bool) {
	switch s {
	case "", "json":
		return formatJSON, true
	case "protobuf":
		return formatProtobuf, true
	}
	return formatJSON, false
}

func (f socketFormat) String() string {
	if f == formatProtobuf {
		return "protobuf"
	}
	return "json"
}

// messageType is the WebSocket message type the format's messages travel in.
func (f socketFormat) messageType() websocket.MessageType {
	if f == formatProtobuf {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// marshal encodes env in the format.
func (f socketFormat) marshal(env *rtapi.Envelope) ([]byte, error) {
	if f == formatProtobuf {
		return marshalProto.Marshal(env)
	}
	return marshalJSON.Marshal(env)
}

// unmarshal decodes a client message in the format into env.
func (f socketFormat) unmarshal(data []byte, env *rtapi.Envelope) error {
	if f == formatProtobuf {
		return unmarshalProto.Unmarshal(data, env)
	}
	return unmarshalJSON.Unmarshal(data, env)
}

// outMsg is one envelope sent to many sockets, encoded lazily: at most once per format, by the
// first socket of that format it is sent to, whatever the number of recipients. It is safe for
// concurrent use.
type outMsg struct {
	env *rtapi.Envelope // nil for a message made from its json bytes until a protobuf socket needs it
	enc [numFormats]struct {
		once   sync.Once
		b      []byte
		err    error
		logged atomic.Bool // err was logged (once, not once per recipient)
	}
}

// newOutMsg wraps env, which must not change afterwards.
func newOutMsg(env *rtapi.Envelope) *outMsg { return &outMsg{env: env} }

// outMsgFromJSON wraps an envelope already encoded for json sockets (as nodes pass notifications
// to each other): json sockets get exactly these bytes, protobuf sockets their re-encoding.
func outMsgFromJSON(b []byte) *outMsg {
	m := &outMsg{}
	e := &m.enc[formatJSON]
	e.once.Do(func() { e.b = b })
	return m
}

// bytes returns the message in format f, encoding it on the first call for f.
func (m *outMsg) bytes(f socketFormat) ([]byte, error) {
	e := &m.enc[f]
	e.once.Do(func() {
		env := m.env
		if env == nil {
			// Only the json bytes exist (outMsgFromJSON), and they are set: decode them once.
			env = &rtapi.Envelope{}
			if err := unmarshalJSON.Unmarshal(m.enc[formatJSON].b, env); err != nil {
				e.err = fmt.Errorf("decoding a json envelope for %s sockets: %w", f, err)
				return
			}
		}
		if e.b, e.err = f.marshal(env); e.err != nil {
			e.err = fmt.Errorf("encoding a %s envelope: %w", f, e.err)
		}
	})
	return e.b, e.err
}

// sendOut queues m on conn in the socket's format and reports whether it was queued. A hub.Conn
// that is not a socketConn gets the json bytes.
func (rt *realtime) sendOut(conn hub.Conn, m *outMsg) bool {
	f := formatJSON
	if sc, ok := conn.(*socketConn); ok {
		f = sc.format
	}
	b, err := m.bytes(f)
	if err != nil {
		if m.enc[f].logged.CompareAndSwap(false, true) {
			rt.log.Error().Err(err).Msg("encoding an outgoing envelope")
		}
		return false
	}
	return conn.Send(b)
}

// sendToSession queues m on the socket registered under sessionID, if any, and reports whether it
// was queued.
func (rt *realtime) sendToSession(sessionID string, m *outMsg) bool {
	conn, ok := rt.hub.Get(sessionID)
	return ok && rt.sendOut(conn, m)
}

// sendToUser queues m on every socket of the user on this node and returns how many queued it.
func (rt *realtime) sendToUser(userID string, m *outMsg) int {
	var buf [8]hub.Conn
	n := 0
	for _, conn := range rt.hub.UserConns(userID, buf[:0]) {
		if rt.sendOut(conn, m) {
			n++
		}
	}
	return n
}
