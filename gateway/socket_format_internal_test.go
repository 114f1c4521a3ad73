package gateway

import (
	"sync"
	"testing"

	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/sessiongate/sessiongate/auth"
	"github.com/sessiongate/sessiongate/presence"
)

func testFormatServer(t testing.TB) *Server {
	t.Helper()
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "k1", RefreshEncryptionKey: "k2"}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// queueOnly is a registered socket that never writes: a writer is marked as running, so Send
// only queues, and the test reads the queue.
func queueOnly(t *testing.T, srv *Server, id, user string, f socketFormat) *socketConn {
	t.Helper()
	c := &socketConn{s: srv, id: id, userID: user, format: f, writing: true, done: make(chan struct{})}
	if err := srv.rt.hub.Register(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// queued returns the one message queued on c.
func queued(t *testing.T, c *socketConn) []byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.q)-c.head != 1 {
		t.Fatalf("socket %s: %d messages queued, want 1", c.id, len(c.q)-c.head)
	}
	msg := c.q[c.head]
	c.q, c.head = nil, 0
	return msg
}

// decodeQueued decodes msg as a message of format f.
func decodeQueued(t *testing.T, f socketFormat, msg []byte) *rtapi.Envelope {
	t.Helper()
	env := &rtapi.Envelope{}
	if err := f.unmarshal(msg, env); err != nil {
		t.Fatalf("%s message %q: %v", f, msg, err)
	}
	return env
}

// checkFanout checks that every socket of conns has one message queued, that the sockets of a
// format share the very same bytes (one encoding per format, not one per recipient), and that
// each decodes to want.
func checkFanout(t *testing.T, conns []*socketConn, want *rtapi.Envelope) {
	t.Helper()
	var first [numFormats][]byte
	for _, c := range conns {
		msg := queued(t, c)
		if !proto.Equal(decodeQueued(t, c.format, msg), want) {
			t.Errorf("socket %s (%s) got %v, want %v", c.id, c.format, decodeQueued(t, c.format, msg), want)
		}
		switch f := first[c.format]; {
		case f == nil:
			first[c.format] = msg
		case &f[0] != &msg[0]:
			t.Errorf("socket %s (%s) got its own encoding of the message, want the one shared by its format", c.id, c.format)
		}
	}
	wantJSON, _ := marshalJSON.Marshal(want)
	if string(first[formatJSON]) != string(wantJSON) {
		t.Errorf("json bytes %s, want exactly %s", first[formatJSON], wantJSON)
	}
}

// TestFanoutEncodedOncePerFormat: a notification to a user's sockets, a status event to its
// followers and a notification arriving from another node reach json and protobuf sockets alike,
// each format encoded once and its bytes shared.
func TestFanoutEncodedOncePerFormat(t *testing.T) {
	srv := testFormatServer(t)
	var conns []*socketConn
	for i, f := range []socketFormat{formatJSON, formatProtobuf, formatJSON, formatProtobuf, formatProtobuf} {
		conns = append(conns, queueOnly(t, srv, "s"+string(rune('0'+i)), "u1", f))
	}
	n := &api.Notification{Id: "n1", Subject: "hello", Content: `{"a":1}`, Code: 101, Persistent: true}
	want := &rtapi.Envelope{Message: &rtapi.Envelope_Notifications{Notifications: &rtapi.Notifications{
		Notifications: []*api.Notification{n}}}}
	if got, err := srv.NotifyUser("u1", n); err != nil || got != len(conns) {
		t.Fatalf("NotifyUser = %d, %v; want %d", got, err, len(conns))
	}
	checkFanout(t, conns, want)

	// Another node's notification arrives as the json envelope (cluster_ops.go).
	jsonBytes, _ := marshalJSON.Marshal(want)
	if got := srv.rt.sendToUser("u1", outMsgFromJSON(jsonBytes)); got != len(conns) {
		t.Fatalf("sendToUser = %d, want %d", got, len(conns))
	}
	checkFanout(t, conns, want)

	// Status events: every socket follows user u2.
	sp := srv.rt.status
	for _, c := range conns {
		sp.tracker.Follow(c.id, []string{"u2"})
	}
	p := presence.Presence{UserID: "u2", SessionID: "s9", Username: "bob", Status: "playing"}
	sp.deliver(presence.Event{UserID: "u2", Joins: []presence.Presence{p}})
	checkFanout(t, conns, &rtapi.Envelope{Message: &rtapi.Envelope_StatusPresenceEvent{
		StatusPresenceEvent: &rtapi.StatusPresenceEvent{Joins: wirePresences([]presence.Presence{p})}}})
}

// TestOutMsgConcurrent: recipients of one message on many goroutines share one encoding per
// format (run under -race).
func TestOutMsgConcurrent(t *testing.T) {
	env := &rtapi.Envelope{Message: &rtapi.Envelope_Notifications{Notifications: &rtapi.Notifications{
		Notifications: []*api.Notification{{Id: "n", Subject: "s", Content: "{}"}}}}}
	for _, m := range []*outMsg{newOutMsg(env), outMsgFromJSON(mustJSON(t, env))} {
		var got [numFormats][32][]byte
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				for f := range numFormats {
					b, err := m.bytes(f)
					if err != nil {
						t.Error(err)
					}
					got[f][i] = b
				}
			})
		}
		wg.Wait()
		for f := range numFormats {
			for i := range got[f] {
				if &got[f][i][0] != &got[f][0][0] {
					t.Fatalf("%s: recipient %d got its own encoding", f, i)
				}
			}
			if !proto.Equal(decodeQueued(t, f, got[f][0]), env) {
				t.Errorf("%s: %q does not decode to the envelope", f, got[f][0])
			}
		}
	}
}

func mustJSON(t *testing.T, env *rtapi.Envelope) []byte {
	t.Helper()
	b, err := marshalJSON.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOutMsgBadJSON: a json envelope from another node that does not decode still reaches json
// sockets unchanged, and protobuf sockets get nothing rather than a wrong message.
func TestOutMsgBadJSON(t *testing.T) {
	m := outMsgFromJSON([]byte(`{"notifications":`))
	if b, err := m.bytes(formatJSON); err != nil || string(b) != `{"notifications":` {
		t.Errorf("json: %q, %v", b, err)
	}
	if b, err := m.bytes(formatProtobuf); err == nil {
		t.Errorf("protobuf: %q, want an error", b)
	}
}
