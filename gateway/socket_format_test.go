package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sessiongate/sessiongate/gateway"
)

// Both socket formats, against a real gateway: the client is coder/websocket, sending and
// reading nakama.realtime.Envelope messages as text (json) or binary (protobuf).

// nakamaJSON is how Nakama encodes envelopes for json sockets (proto names, enum numbers,
// empty fields omitted): a json socket's messages must be exactly this encoding.
var nakamaJSON = protojson.MarshalOptions{UseProtoNames: true, UseEnumNumbers: true}

// wireSocket is a client socket in one format.
type wireSocket struct {
	t      *testing.T
	c      *websocket.Conn
	format string // "json" or "protobuf"
}

func (w *wireSocket) msgType() websocket.MessageType {
	if w.format == "protobuf" {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// dialWire opens a socket in format for token, online with status=true.
func (s *testServer) dialWire(t *testing.T, token, format string, online bool) *wireSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := "format=" + format + "&token=" + query(token)
	if online {
		q += "&status=true"
	}
	c, _, err := s.dialSocket(ctx, q, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", format, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wireSocket{t: t, c: c, format: format}
}

// encode is env in the socket's format.
func (w *wireSocket) encode(env *rtapi.Envelope) []byte {
	w.t.Helper()
	var b []byte
	var err error
	if w.format == "protobuf" {
		b, err = proto.Marshal(env)
	} else {
		b, err = nakamaJSON.Marshal(env)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *wireSocket) write(typ websocket.MessageType, b []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, typ, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

func (w *wireSocket) send(env *rtapi.Envelope) { w.t.Helper(); w.write(w.msgType(), w.encode(env)) }

// recv reads one envelope: a message of the socket's type which decodes strictly (no unknown
// field); on a json socket the bytes must also be Nakama's encoding of what they decode to, with
// the same field order and the same compact form.
func (w *wireSocket) recv() *rtapi.Envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	if typ != w.msgType() {
		w.t.Fatalf("%s socket got a %v message %q", w.format, typ, data)
	}
	env := &rtapi.Envelope{}
	if w.format == "protobuf" {
		err = proto.Unmarshal(data, env)
		if err == nil && len(env.ProtoReflect().GetUnknown()) > 0 {
			err = errors.New("unknown fields")
		}
	} else {
		err = protojson.Unmarshal(data, env)
	}
	if err != nil {
		w.t.Fatalf("%s message %q: %v", w.format, data, err)
	}
	if w.format == "json" {
		// protojson deliberately varies its whitespace from one binary to another (so that no
		// one depends on it); everything else must be the same bytes.
		want, _ := nakamaJSON.Marshal(env)
		var got, exp bytes.Buffer
		if json.Compact(&got, data) != nil || json.Compact(&exp, want) != nil || got.String() != exp.String() {
			w.t.Fatalf("json message %s, want exactly %s", data, want)
		}
	}
	return env
}

// want reads one envelope and compares it with want.
func (w *wireSocket) want(want *rtapi.Envelope) {
	w.t.Helper()
	if got := w.recv(); !proto.Equal(got, want) {
		w.t.Fatalf("%s socket got %v, want %v", w.format, got, want)
	}
}

// wantError reads an error envelope with cid and code whose message starts with prefix.
func (w *wireSocket) wantError(cid string, code rtapi.Error_Code, prefix string) {
	w.t.Helper()
	got := w.recv()
	e := got.GetError()
	if got.Cid != cid || e == nil || e.Code != int32(code) || !strings.HasPrefix(e.Message, prefix) {
		w.t.Fatalf("%s socket got %v, want error %d %q... with cid %q", w.format, got, code, prefix, cid)
	}
}

// barrier checks, with a ping round trip, that nothing was queued before it.
func (w *wireSocket) barrier() {
	w.t.Helper()
	w.send(pingEnv("barrier"))
	w.want(pongEnv("barrier"))
}

func pingEnv(cid string) *rtapi.Envelope {
	return &rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_Ping{Ping: &rtapi.Ping{}}}
}

func pongEnv(cid string) *rtapi.Envelope {
	return &rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_Pong{Pong: &rtapi.Pong{}}}
}

func wirePresence(u *statusUser, status string) *rtapi.UserPresence {
	return &rtapi.UserPresence{UserId: u.id, SessionId: u.sid, Username: u.name, Status: wrapperspb.String(status)}
}

func presenceEvent(joins, leaves []*rtapi.UserPresence) *rtapi.Envelope {
	return &rtapi.Envelope{Message: &rtapi.Envelope_StatusPresenceEvent{StatusPresenceEvent: &rtapi.StatusPresenceEvent{
		Joins: joins, Leaves: leaves}}}
}

func statusUpdateEnv(cid string, status *string) *rtapi.Envelope {
	u := &rtapi.StatusUpdate{}
	if status != nil {
		u.Status = wrapperspb.String(*status)
	}
	return &rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_StatusUpdate{StatusUpdate: u}}
}

func ptr(s string) *string { return &s }

// wireUser authenticates a device and opens one socket in format, finding its session id.
func wireUser(t *testing.T, s *testServer, device, format string, online bool) (*statusUser, *wireSocket) {
	t.Helper()
	sess := s.authDevice(t, device, "")
	cl := tokenClaims(t, sess.Token)
	u := &statusUser{id: cl.UserID, name: cl.Username, token: sess.Token}
	w := s.dialWire(t, sess.Token, format, online)
	u.sid = sessionOn(t, s, u.id)
	return u, w
}

// TestSocketEnvelopesBothFormats round-trips every envelope the socket supports on a json socket
// and on a protobuf socket: the same answers, events, notifications and errors, each in the
// socket's format (json bytes exactly Nakama's encoding), the same closes.
func TestSocketEnvelopesBothFormats(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	for _, format := range []string{"json", "protobuf"} {
		t.Run(format, func(t *testing.T) {
			a, aw := wireUser(t, s, "device-wire-a-"+format, format, false)
			b, bw := wireUser(t, s, "device-wire-b-"+format, "json", true)
			bw.want(presenceEvent([]*rtapi.UserPresence{wirePresence(b, "")}, nil))

			aw.send(pingEnv("1"))
			aw.want(pongEnv("1"))
			aw.send(pingEnv(""))
			aw.want(pongEnv(""))
			aw.send(pongEnv("")) // accepted silently (checked by the next barrier)

			// Follow B (and itself, and unknown users: ignored).
			aw.send(&rtapi.Envelope{Cid: "2", Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
				UserIds: []string{b.id, a.id, "00000000-0000-4000-8000-000000000000"}, Usernames: []string{"no-such-user"}}}})
			aw.want(&rtapi.Envelope{Cid: "2", Message: &rtapi.Envelope_Status{Status: &rtapi.Status{
				Presences: []*rtapi.UserPresence{wirePresence(b, "")}}}})

			// B's status reaches A.
			bw.send(statusUpdateEnv("3", ptr("playing")))
			event := presenceEvent([]*rtapi.UserPresence{wirePresence(b, "playing")}, []*rtapi.UserPresence{wirePresence(b, "")})
			bw.want(event)
			bw.want(&rtapi.Envelope{Cid: "3"})
			aw.want(event)

			// A's own status: its own event (it follows itself), then the answer.
			aw.send(statusUpdateEnv("4", ptr("away")))
			aw.want(presenceEvent([]*rtapi.UserPresence{wirePresence(a, "away")}, nil))
			aw.want(&rtapi.Envelope{Cid: "4"})
			aw.send(statusUpdateEnv("5", nil))
			aw.want(presenceEvent(nil, []*rtapi.UserPresence{wirePresence(a, "away")}))
			aw.want(&rtapi.Envelope{Cid: "5"})

			// Unfollow: B's next change does not reach A.
			aw.send(&rtapi.Envelope{Cid: "6", Message: &rtapi.Envelope_StatusUnfollow{StatusUnfollow: &rtapi.StatusUnfollow{
				UserIds: []string{b.id}}}})
			aw.want(&rtapi.Envelope{Cid: "6"})
			bw.send(statusUpdateEnv("7", nil))
			bw.want(presenceEvent(nil, []*rtapi.UserPresence{wirePresence(b, "playing")}))
			bw.want(&rtapi.Envelope{Cid: "7"})
			aw.barrier()

			// Errors that keep the socket open.
			aw.send(&rtapi.Envelope{Cid: "8", Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
				UserIds: []string{"nope"}}}})
			aw.wantError("8", rtapi.Error_BAD_INPUT, "Invalid user identifier")
			aw.send(&rtapi.Envelope{Cid: "9", Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
				Usernames: []string{""}}}})
			aw.wantError("9", rtapi.Error_BAD_INPUT, "Invalid username")
			aw.send(&rtapi.Envelope{Cid: "10", Message: &rtapi.Envelope_StatusUnfollow{StatusUnfollow: &rtapi.StatusUnfollow{
				UserIds: []string{"nope"}}}})
			aw.wantError("10", rtapi.Error_BAD_INPUT, "Invalid user identifier")
			aw.send(statusUpdateEnv("11", ptr(strings.Repeat("x", 2049))))
			aw.wantError("11", rtapi.Error_BAD_INPUT, "Status must be 2048 characters or less")
			aw.barrier()

			// A server push.
			n := &api.Notification{Id: "n1", Subject: "hello", Content: `{"a":1}`, Code: 101, Persistent: true}
			if got, err := s.srv.NotifyUser(a.id, n); err != nil || got != 1 {
				t.Fatalf("NotifyUser = %d, %v", got, err)
			}
			aw.want(&rtapi.Envelope{Message: &rtapi.Envelope_Notifications{Notifications: &rtapi.Notifications{
				Notifications: []*api.Notification{n}}}})
			aw.c.Close(websocket.StatusNormalClosure, "")

			// Errors that close the socket, after the error envelope.
			malformed, otherType, otherReason := []byte(`{"cid":`), websocket.MessageBinary, "binary message on a json socket"
			if format == "protobuf" {
				malformed, otherType, otherReason = []byte{0xff, 0xff}, websocket.MessageText, "text message on a protobuf socket"
			}
			for _, tc := range []struct {
				name   string
				send   func(w *wireSocket)
				cid    string
				code   rtapi.Error_Code
				prefix string
				reason string
			}{
				{"no message", func(w *wireSocket) { w.send(&rtapi.Envelope{Cid: "12"}) },
					"12", rtapi.Error_MISSING_PAYLOAD, "Missing message.", "missing message"},
				{"unsupported message", func(w *wireSocket) {
					w.send(&rtapi.Envelope{Cid: "13", Message: &rtapi.Envelope_ChannelJoin{ChannelJoin: &rtapi.ChannelJoin{Target: "x"}}})
				}, "13", rtapi.Error_UNRECOGNIZED_PAYLOAD, "Unrecognized message.", "unrecognized message"},
				{"malformed", func(w *wireSocket) { w.write(w.msgType(), malformed) },
					"", rtapi.Error_BAD_INPUT, "Malformed message: ", "malformed message"},
				{"other message type", func(w *wireSocket) { w.write(otherType, (&wireSocket{t: t, format: "json"}).encode(pingEnv("14"))) },
					"", rtapi.Error_UNRECOGNIZED_PAYLOAD, "Unexpected ", otherReason},
			} {
				t.Run(tc.name, func(t *testing.T) {
					w := s.dialWire(t, a.token, format, false)
					w.t = t
					tc.send(w)
					w.wantError(tc.cid, tc.code, tc.prefix)
					wantClose(t, w.c, gateway.CloseProtocolError, tc.reason)
				})
			}
		})
	}
}

// TestSocketProtobufPingsSkipFastPath: the heartbeat fast path (socket_fastpath.go) answers json
// text pings where the read loop waits; a protobuf socket's binary pings must reach the envelope
// handler (a protobuf pong) and a json ping in a text frame must not be answered as on a json
// socket: it is a text message on a protobuf socket, which closes it.
func TestSocketProtobufPingsSkipFastPath(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	_, w := wireUser(t, s, "device-protobuf-fastpath", "protobuf", false)
	for i := range 3 { // each after the read loop parked again
		cid := strings.Repeat("c", i+1)
		w.send(pingEnv(cid))
		w.want(pongEnv(cid))
		time.Sleep(20 * time.Millisecond)
	}
	w.write(websocket.MessageText, []byte(`{"cid":"1","ping":{}}`))
	w.wantError("", rtapi.Error_UNRECOGNIZED_PAYLOAD, "Unexpected text message, this socket's format is protobuf.")
	wantClose(t, w.c, gateway.CloseProtocolError, "text message on a protobuf socket")
}

// TestSingleSocketProtobuf: a protobuf socket replaced by a newer json socket gets the
// single-socket notification in protobuf, then closes with 4001.
func TestSingleSocketProtobuf(t *testing.T) {
	cfg := testConfig()
	cfg.SingleSocket = true
	s := startServer(t, cfg, memStores())
	u, old := wireUser(t, s, "device-single-socket-protobuf", "protobuf", false)
	newer := s.dialWire(t, u.token, "json", false)
	env := old.recv()
	ns := env.GetNotifications().GetNotifications()
	if len(ns) != 1 || ns[0].Code != gateway.NotificationCodeSingleSocket || ns[0].Subject != "single_socket" ||
		ns[0].Content != "{}" || ns[0].Id == "" || ns[0].CreateTime == nil {
		t.Fatalf("got %v, want the single-socket notification", env)
	}
	wantClose(t, old.c, gateway.CloseReplaced, "replaced by a newer socket")
	newer.barrier()
}
