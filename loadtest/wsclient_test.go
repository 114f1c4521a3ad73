package loadtest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsServer serves one WebSocket per request with coder/websocket (which refuses unmasked
// client frames, so every test also checks the client's masking) and runs fn on it.
func wsServer(t *testing.T, fn func(ctx context.Context, c *websocket.Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "bad" {
			http.Error(w, `{"code":16}`, http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 21)
		defer c.CloseNow()
		fn(r.Context(), c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?token=good"
}

func dialTest(t *testing.T, url string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, status, err := dialWS(ctx, d.DialContext, url)
	if err != nil || status != http.StatusSwitchingProtocols {
		t.Fatalf("dial: status %d, %v", status, err)
	}
	t.Cleanup(c.CloseNow)
	return c
}

func TestWSClientEchoSizes(t *testing.T) {
	url := wsServer(t, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
	c := dialTest(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// One length of each header form: 7-bit, 16-bit and 64-bit.
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 300000} {
		msg := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		if err := c.Write(ctx, msg); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != opText || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: type %d, %d bytes, %v", n, typ, len(got), err)
		}
	}
	if err := c.Close(closeNormal, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

func TestWSClientFragmentsAndPings(t *testing.T) {
	pinged := make(chan error, 1)
	url := wsServer(t, func(ctx context.Context, c *websocket.Conn) {
		w, err := c.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			return
		}
		// coder/websocket writes a frame per buffer: 40 KiB goes out as several fragments.
		for i := range 40 {
			_, _ = w.Write(bytes.Repeat([]byte{byte(i)}, 1024))
		}
		_ = w.Close()
		readEnd := make(chan struct{})
		go func() { _, _, _ = c.Read(ctx); close(readEnd) }() // a pong is only read by a pending Read
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		pinged <- c.Ping(pctx)
		cancel()
		_ = c.Write(ctx, websocket.MessageText, []byte("after ping"))
		<-readEnd // until the client goes
	})
	c := dialTest(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != opBinary || len(msg) != 40*1024 || msg[0] != 0 || msg[len(msg)-1] != 39 {
		t.Fatalf("fragmented message: type %d, %d bytes, %v", typ, len(msg), err)
	}
	typ, msg, err = c.Read(ctx) // answers the ping on the way
	if err != nil || typ != opText || string(msg) != "after ping" {
		t.Fatalf("message after the ping: type %d, %q, %v", typ, msg, err)
	}
	if err := <-pinged; err != nil {
		t.Fatalf("server's ping got no pong: %v", err)
	}
}

func TestWSClientServerClose(t *testing.T) {
	closed := make(chan error, 1)
	url := wsServer(t, func(ctx context.Context, c *websocket.Conn) {
		closed <- c.Close(4000, "server says bye")
	})
	c := dialTest(t, url)
	_, _, err := c.Read(context.Background())
	var ce *closeError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "server says bye" || closeStatus(err) != 4000 {
		t.Fatalf("read after the server's close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("server's close handshake (the client must answer): %v", err)
	}
	if _, _, again := c.Read(context.Background()); again != err {
		t.Fatalf("a read after the end returns %v, want the same %v", again, err)
	}
	if err := c.Write(context.Background(), []byte("late")); err == nil {
		t.Fatal("write after the close frame succeeded")
	}
}

func TestWSClientCloseWhileReading(t *testing.T) {
	got := make(chan error, 1)
	url := wsServer(t, func(ctx context.Context, c *websocket.Conn) {
		_, _, err := c.Read(ctx)
		got <- err
	})
	c := dialTest(t, url)
	readErr := make(chan error, 1)
	go func() { _, _, err := c.Read(context.Background()); readErr <- err }()
	time.Sleep(20 * time.Millisecond) // the reader is waiting when Close starts
	if err := c.Close(closeNormal, "bye"); err != nil {
		t.Fatalf("close with a reader pending: %v", err)
	}
	if st := closeStatus(<-readErr); st != closeNormal {
		t.Fatalf("the pending read ended with close code %d, want 1000", st)
	}
	if st := websocket.CloseStatus(<-got); st != websocket.StatusNormalClosure {
		t.Fatalf("server saw close code %d, want 1000", st)
	}
}

func TestWSClientReadLimitAndTimeout(t *testing.T) {
	serverErr := make(chan error, 1)
	url := wsServer(t, func(ctx context.Context, c *websocket.Conn) {
		_ = c.Write(ctx, websocket.MessageText, make([]byte, wsReadLimit+1))
		_, _, err := c.Read(ctx)
		serverErr <- err
	})
	c := dialTest(t, url)
	if _, _, err := c.Read(context.Background()); err == nil || closeStatus(err) != -1 {
		t.Fatalf("message over the limit: %v", err)
	}
	if st := websocket.CloseStatus(<-serverErr); st != websocket.StatusMessageTooBig {
		t.Fatalf("server saw close code %d, want 1009", st)
	}

	quiet := dialTest(t, wsServer(t, func(ctx context.Context, c *websocket.Conn) { _, _, _ = c.Read(ctx) }))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := quiet.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
}

func TestWSClientRefusedUpgrade(t *testing.T) {
	url := wsServer(t, func(context.Context, *websocket.Conn) {})
	var d net.Dialer
	_, status, err := dialWS(context.Background(), d.DialContext, strings.Replace(url, "token=good", "token=bad", 1))
	if status != http.StatusUnauthorized || !errors.Is(err, errUpgradeRefused) {
		t.Fatalf("refused upgrade: status %d, %v", status, err)
	}
	if _, _, err := dialWS(context.Background(), d.DialContext, "wss://127.0.0.1:1/ws"); err == nil {
		t.Fatal("wss:// accepted")
	}
}
