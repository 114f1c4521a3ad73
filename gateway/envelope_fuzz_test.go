package gateway

import (
	"testing"

	"github.com/rs/zerolog"

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
