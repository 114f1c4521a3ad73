package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// maskedText returns one masked client text frame of any length.
func maskedText(msg string) []byte {
	frame := []byte{0x81}
	switch n := len(msg); {
	case n <= 125:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126, byte(n>>8), byte(n))
	default:
		panic("message too long for this helper")
	}
	mask := []byte{9, 8, 7, 6}
	frame = append(frame, mask...)
	for i := 0; i < len(msg); i++ {
		frame = append(frame, msg[i]^mask[i%4])
	}
	return frame
}

// upgradeRequest is a raw WebSocket handshake request for /ws with token.
func upgradeRequest(host, token string) []byte {
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	return []byte("GET /ws?token=" + query(token) + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key) + "\r\n\r\n")
}

func wantPongFrame(t *testing.T, nc net.Conn, br *bufio.Reader, cid string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	op, payload, err := readFrame(br)
	if err != nil {
		t.Fatalf("reading the pong for %.20q: %v", cid, err)
	}
	if want := `{"cid":"` + cid + `","pong":{}}`; op != 1 || string(payload) != want {
		t.Fatalf("frame %d %.80q, want text %.80q", op, payload, want)
	}
}

// TestSocketFramesWithUpgrade: frames the client sends in the same packet as the upgrade
// request (already buffered by net/http when the socket is re-buffered) are not lost.
func TestSocketFramesWithUpgrade(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-pipelined", "")
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pkt := upgradeRequest(nc.RemoteAddr().String(), sess.Token)
	pkt = append(pkt, maskedText(`{"cid":"a","ping":{}}`)...)
	pkt = append(pkt, maskedText(`{"cid":"b","ping":{}}`)...)
	if _, err := nc.Write(pkt); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	wantPongFrame(t, nc, br, "a")
	wantPongFrame(t, nc, br, "b")
}

// TestSocketReadBuffering: several frames in one write, a message larger than the 512-byte read
// buffer, and a frame split across writes are all read whole, and an idle socket keeps exactly
// one goroutine.
func TestSocketReadBuffering(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-buffering", "")
	nc, br := rawSocket(t, s, sess.Token)

	var burst []byte
	for i := range 5 {
		burst = append(burst, maskedText(fmt.Sprintf(`{"cid":"%d","ping":{}}`, i))...)
	}
	if _, err := nc.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		wantPongFrame(t, nc, br, fmt.Sprint(i))
	}

	big := strings.Repeat("x", 3000)
	if _, err := nc.Write(maskedText(`{"cid":"` + big + `","ping":{}}`)); err != nil {
		t.Fatal(err)
	}
	wantPongFrame(t, nc, br, big)

	split := maskedText(`{"cid":"split","ping":{}}`)
	for _, part := range [][]byte{split[:1], split[1:7], split[7:]} {
		if _, err := nc.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantPongFrame(t, nc, br, "split")

	// Goroutines: after a message the read loop moves to a fresh goroutine; the count of an
	// idle socket stays one.
	const n = 20
	before := goroutinesButUpgradeWorkers()
	for i := range n {
		c := s.mustSocket(t, sess.Token)
		sendText(t, c, fmt.Sprintf(`{"cid":"%d","ping":{}}`, i))
		wantJSON(t, readJSON(t, c), fmt.Sprintf(`{"cid":"%d","pong":{}}`, i))
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		c.CloseRead(ctx) // the client's reader: one goroutine per client
	}
	waitFor(t, 5*time.Second, "one server goroutine per idle socket", func() bool {
		got := goroutinesButUpgradeWorkers() - before
		return got == 2*n // n client readers + n server read loops
	})
	if got := bytes.Count(goroutineDump(), []byte("(*socketConn).readLoop")); got < n+1 {
		t.Errorf("%d read loops in the goroutine dump, want at least %d", got, n+1)
	}
}

// goroutinesButUpgradeWorkers counts the goroutines but the upgrade path's workers, which come
// and go with the connects (upgrade.go).
func goroutinesButUpgradeWorkers() int {
	dump := goroutineDump()
	return bytes.Count(dump, []byte("\ngoroutine ")) + 1 - bytes.Count(dump, []byte("(*upgradeListener).upgradeWorker("))
}

func goroutineDump() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}
