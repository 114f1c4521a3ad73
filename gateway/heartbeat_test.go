package gateway_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// maskedFrame builds one masked client frame with the given first byte (FIN + opcode).
func maskedFrame(first byte, payload string) []byte {
	frame := []byte{first, 0x80 | byte(len(payload)), 7, 1, 9, 3}
	for i := 0; i < len(payload); i++ {
		frame = append(frame, payload[i]^frame[2+i%4])
	}
	return frame
}

// counter reads one unlabelled counter from a metrics scrape.
func counter(t *testing.T, body, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in metrics", name)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A client that only answers the server's pings stays connected for many PongWaits, whatever
// shape its pongs take: empty pongs (collected by the sweeper), pongs after the client's own
// WebSocket ping (the read loop then waits inside coder/websocket, which pings for it), and
// pongs that arrive in the same segment as an envelope ping, which is still answered.
func TestHeartbeatPongShapes(t *testing.T) {
	cfg := heartbeatConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-pong-shapes", "")

	shapes := []struct {
		name string
		pong func(ping []byte) []byte
	}{
		{"empty", func(p []byte) []byte { return maskedFrame(0x8A, string(p)) }},
		{"after a client ping", nil}, // the read loop then waits inside coder/websocket
		{"with envelope", func(p []byte) []byte {
			return append(maskedFrame(0x8A, string(p)), maskedFrame(0x81, `{"cid":"e","ping":{}}`)...)
		}},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			nc, br := rawSocket(t, s, sess.Token)
			pong := shape.pong
			if pong == nil {
				if _, err := nc.Write(maskedFrame(0x89, "hello")); err != nil {
					t.Fatal(err)
				}
				_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if op, payload, err := readFrame(br); err != nil || op != 0xA || string(payload) != "hello" {
					t.Fatalf("pong to the client's ping: %#x %q %v", op, payload, err)
				}
				pong = shapes[0].pong
			}
			deadline := time.Now().Add(4 * cfg.PongWait)
			_ = nc.SetReadDeadline(deadline.Add(2 * time.Second))
			pings, pongsEnvelopes := 0, 0
			for time.Now().Before(deadline) {
				op, payload, err := readFrame(br)
				if err != nil {
					t.Fatalf("after %d pings: %v", pings, err)
				}
				switch op {
				case 0x9:
					pings++
					if _, err := nc.Write(pong(payload)); err != nil {
						t.Fatal(err)
					}
				case 0x1:
					if string(payload) != `{"cid":"e","pong":{}}` {
						t.Fatalf("unexpected message %s", payload)
					}
					pongsEnvelopes++
				case 0x8:
					t.Fatalf("closed after %d pings: %d %q", pings, binary.BigEndian.Uint16(payload), payload[2:])
				default:
					t.Fatalf("unexpected opcode %#x", op)
				}
			}
			// Idle for 4 PongWaits with pings every PingPeriod + sweep: several pings at least.
			if pings < 3 {
				t.Errorf("%d pings in %v, want several", pings, 4*cfg.PongWait)
			}
			// The answer to the last envelope may still be on its way at the deadline.
			if shape.name == "with envelope" && (pongsEnvelopes < pings-1 || pongsEnvelopes > pings) {
				t.Errorf("%d envelope pongs for %d envelope pings", pongsEnvelopes, pings)
			}

			_ = nc.Close()
		})
	}
	waitFor(t, 3*time.Second, "sockets to unregister", func() bool { return s.srv.Hub().Len() == 0 })
	body := scrape(t, s)
	pings, pongs := counter(t, body, "sessiongate_socket_pings_total"), counter(t, body, "sessiongate_socket_pongs_total")
	if pings == 0 || pongs < pings-len(shapes) {
		t.Errorf("pings_total %d, pongs_total %d: every answered ping should count a pong", pings, pongs)
	}
	if !containsLine(body, `sessiongate_socket_disconnects_total{cause="heartbeat_timeout"} 0`) {
		t.Errorf("a socket that answered pings timed out:\n%s", grepLines(body, "disconnects"))
	}
}

// Input smaller than the receive low-water mark that is not a pong, here the first 3 bytes of an
// envelope ping sent in answer to a server ping, is read by the sweeper, which takes it for the
// pong it waits for: it must hand the bytes back to the read loop, wake it, and count them as
// life. The rest of the frame, sent later, completes the envelope, which is answered.
func TestHeartbeatHandsBackInput(t *testing.T) {
	cfg := heartbeatConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-hand-back", "")
	nc, br := rawSocket(t, s, sess.Token)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for round := range 3 {
		if op, payload, err := readFrame(br); err != nil || op != 0x9 {
			t.Fatalf("round %d: waiting for a ping: %#x %q %v", round, op, payload, err)
		}
		frame := maskedFrame(0x81, `{"cid":"h","ping":{}}`)
		if _, err := nc.Write(frame[:3]); err != nil {
			t.Fatal(err)
		}
		// The sweeper visits the socket within a sweep interval, (PongWait-PingPeriod)/2, and
		// takes the 3 bytes; the socket stays within PongWait of them.
		time.Sleep((cfg.PongWait-cfg.PingPeriod)/2 + 50*time.Millisecond)
		if _, err := nc.Write(frame[3:]); err != nil {
			t.Fatal(err)
		}
		// Pings sent meanwhile, which the client could not answer mid-frame, are answered now.
		op, payload, err := readFrame(br)
		var late []byte
		for err == nil && op == 0x9 {
			late = append(late, maskedFrame(0x8A, string(payload))...)
			op, payload, err = readFrame(br)
		}
		if err != nil || op != 0x1 || string(payload) != `{"cid":"h","pong":{}}` {
			t.Fatalf("round %d: answer to the split envelope: %#x %q %v", round, op, payload, err)
		}
		if len(late) > 0 {
			if _, err := nc.Write(late); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A whole frame under the mark with nothing after it, a close frame with no code in answer
	// to a ping, is handed back too: only the wake-up gets the read loop to it.
	if op, payload, err := readFrame(br); err != nil || op != 0x9 {
		t.Fatalf("waiting for a ping: %#x %q %v", op, payload, err)
	}
	if _, err := nc.Write(maskedFrame(0x88, "")); err != nil {
		t.Fatal(err)
	}
	op, payload, err := readFrame(br)
	for err == nil && op == 0x9 {
		op, payload, err = readFrame(br)
	}
	if err != nil || op != 0x8 {
		t.Fatalf("answer to the close frame: %#x %q %v", op, payload, err)
	}
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="heartbeat_timeout"} 0`) {
		t.Errorf("the client was timed out:\n%s", grepLines(body, "disconnects"))
	}
}

// A ping sent through coder/websocket (the read loop was inside its frame reader) whose pong
// arrives once the read loop is parked again is answered to the fast path: that must end the
// Ping's wait for it. With WriteWait longer than PongWait, a wait left to time out would stop
// the pings and time out a client that answers every one.
func TestHeartbeatPongOfLibraryPing(t *testing.T) {
	cfg := heartbeatConfig()
	cfg.WriteWait = 3 * time.Second
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-library-ping", "")
	nc, br := rawSocket(t, s, sess.Token)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	write := func(b []byte) {
		t.Helper()
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// A client ping takes the read loop into coder/websocket's frame reader, where it stays
	// until a message arrives: the next server ping goes through coder/websocket.
	write(maskedFrame(0x89, "hello"))
	if op, payload, err := readFrame(br); err != nil || op != 0xA || string(payload) != "hello" {
		t.Fatalf("pong to the client's ping: %#x %q %v", op, payload, err)
	}
	op, ping, err := readFrame(br)
	if err != nil || op != 0x9 || len(ping) == 0 {
		t.Fatalf("waiting for the library's ping (it carries a payload): %#x %q %v", op, ping, err)
	}
	// A message parks the read loop again; only then does the pong come.
	write(maskedFrame(0x81, `{"cid":"p","ping":{}}`))
	if op, payload, err := readFrame(br); err != nil || op != 0x1 || string(payload) != `{"cid":"p","pong":{}}` {
		t.Fatalf("answer to the envelope: %#x %q %v", op, payload, err)
	}
	time.Sleep(50 * time.Millisecond)
	write(maskedFrame(0x8A, string(ping)))
	// The pings go on, and the client answers each: it is never timed out.
	for range 3 {
		op, payload, err := readFrame(br)
		if err != nil || op != 0x9 {
			t.Fatalf("waiting for the next ping: %#x %q %v", op, payload, err)
		}
		write(maskedFrame(0x8A, string(payload)))
	}
}

// Unsolicited pongs (RFC 6455 5.5.3: a unidirectional heartbeat), here too large to be collected
// outside coder/websocket, keep a client that never answers pings alive.
func TestHeartbeatUnsolicitedPongs(t *testing.T) {
	cfg := heartbeatConfig()
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-unsolicited", "")
	nc, _ := rawSocket(t, s, sess.Token)
	stop := time.Now().Add(4 * cfg.PongWait)
	for time.Now().Before(stop) {
		if _, err := nc.Write(maskedFrame(0x8A, "a-pong-payload-of-forty-bytes-0123456789")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.PingPeriod / 2)
	}
	if n := s.srv.Hub().Len(); n != 1 {
		t.Fatalf("%d sockets live, want 1", n)
	}
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="heartbeat_timeout"} 0`) {
		t.Errorf("the client was timed out:\n%s", grepLines(body, "disconnects"))
	}
}

// Envelope pings in every shape are answered exactly as protojson would, in order, whether the
// fast path takes them or coder/websocket does: pipelined in one segment, with whitespace, ping
// first, an empty cid, a cid with an escape, mixed with another envelope.
func TestEnvelopePingShapes(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-ping-shapes", "")
	nc, br := rawSocket(t, s, sess.Token)
	pings := []struct{ send, want string }{
		{`{"cid":"1","ping":{}}`, `{"cid":"1","pong":{}}`},
		{` { "ping" : { } , "cid" : "2" } `, `{"cid":"2","pong":{}}`},
		{`{"ping":{}}`, `{"pong":{}}`},
		{`{"cid":"","ping":{}}`, `{"pong":{}}`},
		{`{"cid":"a\"b","ping":{}}`, `{"cid":"a\"b","pong":{}}`},
		{`{"cid":"6","status_update":{"status":"x"}}`, `{"cid":"6"}`},
		{`{"cid":"7","ping":{}}`, `{"cid":"7","pong":{}}`},
	}
	var batch []byte
	for _, p := range pings {
		batch = append(batch, maskedFrame(0x81, p.send)...)
	}
	if _, err := nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, p := range pings {
		var got []byte
		for {
			op, payload, err := readFrame(br)
			if err != nil {
				t.Fatalf("waiting for %s: %v", p.want, err)
			}
			if op != 0x1 {
				t.Fatalf("opcode %#x while waiting for %s", op, p.want)
			}
			if bytes.HasPrefix(payload, []byte(`{"status_presence_event"`)) {
				continue // the status update's own event
			}
			got = payload
			break
		}
		if string(got) != p.want {
			t.Errorf("answer to %s: %s, want %s", p.send, got, p.want)
		}
	}
	body := scrape(t, s)
	if in := counter(t, body, "sessiongate_socket_messages_in_total"); in != len(pings) {
		t.Errorf("messages_in_total %d, want %d", in, len(pings))
	}
}

// A server-side close of an idle socket, whose close frame the node writes directly, is a
// whole close handshake: the client reads the close frame with its code and reason; frames it
// sends before its own close frame are discarded unanswered; after its close frame the node
// closes the connection at once (well before WriteWait), and counts the disconnect once. A
// client that never answers is dropped after WriteWait.
func TestIdleSocketCloseHandshake(t *testing.T) {
	cfg := testConfig()
	cfg.WriteWait = 3 * time.Second
	s := startServer(t, cfg, memStores())
	for _, answer := range []bool{true, false} {
		sess := s.authDevice(t, "device-close-"+strconv.FormatBool(answer), "")
		user := tokenClaims(t, sess.Token).UserID
		nc, br := rawSocket(t, s, sess.Token)
		waitFor(t, 3*time.Second, "the socket to register", func() bool { return s.srv.Hub().UserCount(user) == 1 })
		time.Sleep(50 * time.Millisecond) // the read loop parks in its poller wait
		if r := s.serverCall(t, "POST", "/v2/server/users/"+user+"/disconnect", `{"reason":"bye"}`); r.status != 200 {
			t.Fatalf("disconnect: %d %s", r.status, r.body)
		}
		_ = nc.SetReadDeadline(time.Now().Add(2 * cfg.WriteWait))
		op, payload, err := readFrame(br)
		if err != nil || op != 0x8 || len(payload) < 2 || binary.BigEndian.Uint16(payload) != 4000 || string(payload[2:]) != "bye" {
			t.Fatalf("close frame: %#x %q %v", op, payload, err)
		}
		start := time.Now()
		if answer {
			msg := append(maskedFrame(0x81, `{"cid":"late","ping":{}}`), maskedFrame(0x88, "\x0f\xa0")...)
			if _, err := nc.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the close frame: byte %#x, err %v; want the end of the stream", b, err)
		}
		took := time.Since(start)
		switch {
		case answer && took > cfg.WriteWait/2:
			t.Errorf("connection closed %v after the client's close frame", took)
		case !answer && took < cfg.WriteWait*9/10:
			t.Errorf("a client that did not answer was dropped after %v, want WriteWait %v", took, cfg.WriteWait)
		}
		waitFor(t, 3*time.Second, "the socket to unregister", func() bool { return s.srv.Hub().UserCount(user) == 0 })
	}
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="server"} 2`) {
		t.Errorf("disconnects:\n%s", grepLines(body, "disconnects_total"))
	}
}

// Heartbeats and another message in one read of the connection: the pings are answered where
// the read loop waits, and the message between them reaches coder/websocket as it was sent
// (masked), in order.
func TestHeartbeatsAroundAMessageInOneRead(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-one-read", "")
	nc, br := rawSocket(t, s, sess.Token)
	var batch []byte
	batch = append(batch, maskedFrame(0x8A, "")...) // an unsolicited pong first
	batch = append(batch, maskedFrame(0x81, `{"cid":"1","ping":{}}`)...)
	batch = append(batch, maskedFrame(0x81, `{"cid":"2","status_update":{"status":"x"}}`)...)
	batch = append(batch, maskedFrame(0x81, `{"cid":"3","ping":{}}`)...)
	if len(batch) > 131 {
		t.Fatalf("the batch is %d bytes: more than one read of the fast path", len(batch))
	}
	if _, err := nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for len(got) < 3 {
		op, payload, err := readFrame(br)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if op != 0x1 {
			t.Fatalf("opcode %#x after %q", op, got)
		}
		if !bytes.HasPrefix(payload, []byte(`{"status_presence_event"`)) {
			got = append(got, string(payload))
		}
	}
	want := []string{`{"cid":"1","pong":{}}`, `{"cid":"2"}`, `{"cid":"3","pong":{}}`}
	if !slices.Equal(got, want) {
		t.Fatalf("answers %q, want %q", got, want)
	}
}
