package gateway

import (
	"bytes"
	"testing"

	"github.com/heroiclabs/nakama-common/rtapi"
)

// FuzzPingEnvelope: whatever parsePingEnvelope accepts, protojson decodes as a ping envelope
// with the same cid, and the pong frame built over it is the pong the slow path sends.
// Run with: go test -run '^$' -fuzz FuzzPingEnvelope -fuzztime 30s ./gateway/
func FuzzPingEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"cid":"1","ping":{}}`, `{"ping":{}}`, `{"ping":{},"cid":"abc"}`, ` { "cid" : "7" , "ping" : { } } `,
		`{"cid":"","ping":{}}`, `{"cid":"1","ping":{},"cid":"2"}`, `{"cid":"\u0041","ping":{}}`,
		`{"cid":1,"ping":{}}`, `{"cid":"1","ping":{"x":1}}`, `{"cid":"1","pong":{}}`, `{"cid":"1"}`,
		`{"cid":"1","ping":null}`, `{"cid":"1","ping":{}}x`, `{"cid":"é","ping":{}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 125 {
			return
		}
		cid, ok := parsePingEnvelope(data)
		if !ok {
			return
		}
		var env rtapi.Envelope
		if err := unmarshalJSON.Unmarshal(data, &env); err != nil {
			t.Fatalf("fast path took %q, protojson refuses it: %v", data, err)
		}
		if _, isPing := env.Message.(*rtapi.Envelope_Ping); !isPing || env.Cid != string(cid) {
			t.Fatalf("fast path took %q as a ping with cid %q, protojson reads %v", data, cid, &env)
		}
		// Build the pong over a masked frame of the ping, as pollInput does.
		frame := append([]byte{finText, 0x80 | byte(len(data)), 0, 0, 0, 0}, data...)
		_, body, size := headFrame(frame)
		if size != len(frame) {
			t.Fatalf("headFrame size %d, want %d", size, len(frame))
		}
		cid2, ok := parsePingEnvelope(body)
		if !ok || !bytes.Equal(cid, cid2) {
			t.Fatalf("unmasked ping parses differently: %q %v", cid2, ok)
		}
		pong := appendPongFrame(frame[:0], cid2)
		want := appendPong(nil, env.Cid)
		if pong[0] != finText || int(pong[1]) != len(want) || string(pong[2:]) != string(want) {
			t.Fatalf("pong frame % x, want text frame of %s", pong, want)
		}
	})
}

// TestHeadFrame: whole masked frames with 7-bit lengths only.
func TestHeadFrame(t *testing.T) {
	masked := func(first byte, payload string) []byte {
		f := []byte{first, 0x80 | byte(len(payload)), 1, 2, 3, 4}
		for i := 0; i < len(payload); i++ {
			f = append(f, payload[i]^f[2+i%4])
		}
		return f
	}
	f := masked(finText, "hello")
	first, body, size := headFrame(append(f, 0x8A, 0x80))
	if first != finText || string(body) != "hello" || size != len(f) {
		t.Errorf("headFrame = %#x %q %d", first, body, size)
	}
	for name, b := range map[string][]byte{
		"partial":    masked(finText, "hello")[:8],
		"unmasked":   {finText, 0x05, 'h', 'e', 'l', 'l', 'o'},
		"extended":   {finText, 0x80 | 126, 0, 200, 1, 2, 3, 4},
		"header cut": {finPong, 0x80, 1},
	} {
		if _, _, size := headFrame(b); size != 0 {
			t.Errorf("%s: size %d, want 0", name, size)
		}
	}
}
