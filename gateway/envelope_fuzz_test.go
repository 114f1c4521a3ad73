package gateway

import (
	"testing"

	"github.com/heroiclabs/nakama-common/rtapi"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sessiongate/sessiongate/auth"
)

// FuzzHandleEnvelope feeds arbitrary client messages to the envelope handler: it must never
// panic, and must either keep the socket open or close it with CloseProtocolError.
// Run with: go test -run '^$' -fuzz FuzzHandleEnvelope -fuzztime 30s ./gateway/
func FuzzHandleEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"cid":"1","ping":{}}`, `{"ping":{}}`, `{"pong":{}}`, `{"cid":"2"}`, `{`, `null`, `[]`,
		`{"cid":1}`, `{"cid":"3","channel_join":{"target":"x"}}`, `{"cid":"4","ping":{},"pong":{}}`,
		`{"cid":"\u0000\"","ping":{"x":1}}`, `{"status_update":{"status":"hi"}}`,
		`{"cid":"5","status_follow":{"user_ids":["00000000-0000-4000-8000-000000000000","x"],"usernames":["y",""]}}`,
		`{"cid":"6","status_unfollow":{"user_ids":["fuzz"]}}`, `{"cid":"7","status_update":{}}`,
	} {
		f.Add([]byte(seed))
	}
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "k1", RefreshEncryptionKey: "k2"}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A socket already closing refuses every Send, so nothing is written anywhere.
		c := &socketConn{s: srv, id: "fuzz", userID: "fuzz", closing: true, done: make(chan struct{})}
		code, reason := c.handleEnvelope(data)
		if code != 0 && (code != CloseProtocolError || reason == "") {
			t.Fatalf("close %d %q", code, reason)
		}
	})
}

// FuzzHandleEnvelopeProtobuf feeds arbitrary client messages to the envelope handler of a
// protobuf socket: it must never panic, and must either keep the socket open or close it with
// CloseProtocolError; a message that decodes must be handled as the same envelope arriving on a
// json socket is (same close, or none).
// Run with: go test -run '^$' -fuzz FuzzHandleEnvelopeProtobuf -fuzztime 30s ./gateway/
func FuzzHandleEnvelopeProtobuf(f *testing.F) {
	status := "hi"
	for _, env := range []*rtapi.Envelope{
		{Cid: "1", Message: &rtapi.Envelope_Ping{Ping: &rtapi.Ping{}}}, {Message: &rtapi.Envelope_Ping{Ping: &rtapi.Ping{}}},
		{Message: &rtapi.Envelope_Pong{Pong: &rtapi.Pong{}}}, {Cid: "2"},
		{Cid: "3", Message: &rtapi.Envelope_ChannelJoin{ChannelJoin: &rtapi.ChannelJoin{Target: "x"}}},
		{Message: &rtapi.Envelope_StatusUpdate{StatusUpdate: &rtapi.StatusUpdate{Status: wrapperspb.String(status)}}},
		{Cid: "5", Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
			UserIds: []string{"00000000-0000-4000-8000-000000000000", "x"}, Usernames: []string{"y", ""}}}},
		{Cid: "6", Message: &rtapi.Envelope_StatusUnfollow{StatusUnfollow: &rtapi.StatusUnfollow{UserIds: []string{"fuzz"}}}},
		{Cid: "7", Message: &rtapi.Envelope_StatusUpdate{StatusUpdate: &rtapi.StatusUpdate{}}},
	} {
		b, err := proto.Marshal(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range [][]byte{{}, {0xff}, {0x0a, 0x05, 'a'}, {0x0a, 0x02, 0xc3, 0x28}, []byte(`{"ping":{}}`)} {
		f.Add(seed)
	}
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "k1", RefreshEncryptionKey: "k2"}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A socket already closing refuses every Send, so nothing is written anywhere.
		c := &socketConn{s: srv, id: "fuzz", userID: "fuzz", format: formatProtobuf, closing: true, done: make(chan struct{})}
		code, reason := c.handleEnvelope(data)
		if code != 0 && (code != CloseProtocolError || reason == "") {
			t.Fatalf("close %d %q", code, reason)
		}
		var env rtapi.Envelope
		if unmarshalProto.Unmarshal(data, &env) != nil {
			if reason != reasonMalformed {
				t.Fatalf("undecodable message: close %d %q, want malformed", code, reason)
			}
			return
		}
		js, err := marshalJSON.Marshal(&env)
		if err != nil {
			t.Fatalf("a decoded envelope does not encode to json: %v", err)
		}
		j := &socketConn{s: srv, id: "fuzz", userID: "fuzz", closing: true, done: make(chan struct{})}
		if jcode, jreason := j.handleEnvelope(js); jcode != code || jreason != reason {
			t.Fatalf("protobuf: close %d %q; the same envelope in json: close %d %q", code, reason, jcode, jreason)
		}
	})
}

// BenchmarkHandleEnvelopePing is the per-heartbeat cost of decoding a client ping and encoding
// the pong (the write itself excluded: the socket is closing, so Send refuses).
func BenchmarkHandleEnvelopePing(b *testing.B) {
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "k1", RefreshEncryptionKey: "k2"}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		b.Fatal(err)
	}
	c := &socketConn{s: srv, id: "bench", userID: "bench", closing: true, done: make(chan struct{})}
	msg := []byte(`{"cid":"12345","ping":{}}`)
	b.ReportAllocs()
	for b.Loop() {
		if code, _ := c.handleEnvelope(msg); code != 0 {
			b.Fatal(code)
		}
	}
}
