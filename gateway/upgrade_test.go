package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawHTTP is one plain TCP connection to the test server, for requests written by hand.
type rawHTTP struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, s *testServer) *rawHTTP {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawHTTP{nc: nc, br: bufio.NewReader(nc)}
}

// upgrade sends req, wants it answered 101, and then an envelope ping answered.
func (c *rawHTTP) upgrade(t *testing.T, req []byte, cid string) {
	t.Helper()
	if resp := c.roundTrip(t, req); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	if _, err := c.nc.Write(maskedText(`{"cid":"` + cid + `","ping":{}}`)); err != nil {
		t.Fatal(err)
	}
	wantPongFrame(t, c.nc, c.br, cid)
}

func (c *rawHTTP) roundTrip(t *testing.T, req []byte) *http.Response {
	t.Helper()
	if _, err := c.nc.Write(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestUpgradeWithoutNetHTTP: socket upgrades are read and answered outside net/http
// (upgrade.go); what they do not take whole goes to net/http, and both behave alike.
func TestUpgradeWithoutNetHTTP(t *testing.T) {
	cfg := testConfig()
	cfg.RequestReadTimeout = 300 * time.Millisecond
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-upgrade-paths", "")
	host := strings.TrimPrefix(s.url, "http://")

	t.Run("refused upgrade", func(t *testing.T) {
		c := dialRaw(t, s)
		resp := c.roundTrip(t, upgradeRequest(host, "not-a-token"))
		body, _ := io.ReadAll(resp.Body)
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &e) != nil || e.Code != 16 ||
			resp.Header.Get("Content-Type") != "application/json" || !resp.Close {
			t.Fatalf("refused upgrade: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		if n, err := c.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after a refused upgrade the connection gave %d bytes, %v; want its end", n, err)
		}
	})

	t.Run("upgrade after an API request on one connection", func(t *testing.T) {
		c := dialRaw(t, s)
		body := `{"id":"device-upgrade-keepalive"}`
		resp := c.roundTrip(t, []byte("POST /v2/account/authenticate/device?create=true HTTP/1.1\r\nHost: "+host+
			"\r\nAuthorization: "+basicAuth(s.cfg.ServerKey)+"\r\nContent-Type: application/json\r\nContent-Length: "+
			strconv.Itoa(len(body))+"\r\n\r\n"+body))
		var got struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("authenticate: %d, close %v, %v", resp.StatusCode, resp.Close, err)
		}
		c.upgrade(t, upgradeRequest(host, got.Token), "k") // served by net/http: not the first request
	})

	t.Run("upgrade with a body header goes to net/http", func(t *testing.T) {
		c := dialRaw(t, s)
		req := upgradeRequest(host, sess.Token)
		c.upgrade(t, append(req[:len(req)-2], "Content-Length: 0\r\n\r\n"...), "n")
	})

	t.Run("a head that stalls", func(t *testing.T) {
		c := dialRaw(t, s)
		start := time.Now()
		if _, err := io.WriteString(c.nc, "GET /ws?token="+query(sess.Token)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(c.nc); err != nil {
			t.Fatalf("the stalled head's connection was not closed: %v", err)
		}
		if d := time.Since(start); d < cfg.RequestReadTimeout || d > 3*time.Second {
			t.Fatalf("the stalled head's connection ended after %v, want about %v", d, cfg.RequestReadTimeout)
		}
	})

	t.Run("a head too large to read here", func(t *testing.T) {
		c := dialRaw(t, s)
		req := upgradeRequest(host, sess.Token)
		c.upgrade(t, append(req[:len(req)-2], "X-Padding: "+strings.Repeat("p", 6000)+"\r\n\r\n"...), "p")
	})
}
