package loadtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// upgradeTransport is the http.RoundTripper behind the clients' websocket.Dial: one fresh TCP
// connection per request, the request written and the response read by hand, and the
// connection handed to coder/websocket as the response body. net/http's Transport would do
// the same upgrade but start two goroutines and a connection pool entry per socket, which
// shows as client CPU on a machine whose cores the gateway shares.
type upgradeTransport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return nil, errors.New("loadtest: only plain ws:// targets are supported by the socket dialer")
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := req.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	if !stop() && ctx.Err() != nil {
		resp.Body.Close()
		return fail(ctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &closingBody{ReadCloser: resp.Body, conn: conn}
		return resp, nil
	}
	resp.Body = &upgradedConn{br: br, Conn: conn}
	return resp, nil
}

// closingBody closes the connection with the body of a refused upgrade.
type closingBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *closingBody) Close() error {
	b.ReadCloser.Close()
	return b.conn.Close()
}

// upgradedConn is the upgraded connection: bytes the handshake reader already buffered come
// first.
type upgradedConn struct {
	br *bufio.Reader
	net.Conn
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}
