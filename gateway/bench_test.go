package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sessiongate/sessiongate/auth"
)

// BenchmarkAuthenticateDeviceHandler measures the gateway's own cost of authenticating an
// existing device (routing, server key, JSON in and out, account lookup, two signatures) on the
// embedded store, without the network: the part of the wrk figure that is ours to optimise.
func BenchmarkAuthenticateDeviceHandler(b *testing.B) {
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "bench-key", RefreshEncryptionKey: "bench-refresh-key", BcryptCost: 4}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		b.Fatal(err)
	}
	const body = `{"id":"bench-device-000001","vars":{"region":"eu"}}`
	do := func() int {
		req := httptest.NewRequest(http.MethodPost, "/v2/account/authenticate/device?create=true&", strings.NewReader(body))
		req.Header.Set("Authorization", "Basic ZGVmYXVsdGtleTo=")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		_, _ = io.Copy(io.Discard, w.Body)
		return w.Code
	}
	if code := do(); code != http.StatusOK {
		b.Fatalf("first authenticate: %d", code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := do(); code != http.StatusOK {
				b.Errorf("authenticate: %d", code)
				return
			}
		}
	})
}

// BenchmarkSocketConnect measures one socket connect on loopback, both sides in this process:
// dial, the upgrade request with an envelope ping behind it, the 101 and the pong read, then
// the client's close. The client is a few raw writes and reads, so the time and allocations
// per op are nearly all the gateway's (the dial allocates about a dozen objects of its own).
//
//	go test -run '^$' -bench BenchmarkSocketConnect -benchtime 5000x -count 5 ./gateway/
func BenchmarkSocketConnect(b *testing.B) {
	srv, err := New(Config{Auth: auth.Config{EncryptionKey: "bench-key", RefreshEncryptionKey: "bench-refresh-key", BcryptCost: 4}}, zerolog.Nop(),
		Stores{Accounts: auth.NewMemoryAccounts(), Revocations: auth.NewMemoryRevocations()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v2/account/authenticate/device?create=true", strings.NewReader(`{"id":"bench-socket-device-01"}`))
	req.Header.Set("Authorization", "Basic ZGVmYXVsdGtleTo=")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	var sess struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &sess); err != nil || sess.Token == "" {
		b.Fatalf("authenticate: %d %s", w.Code, w.Body)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	addr := ln.Addr().String()
	ping := []byte(`{"cid":"1","ping":{}}`)
	msg := []byte("GET /ws?token=" + url.QueryEscape(sess.Token) + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	msg = append(msg, 0x81, 0x80|byte(len(ping)), 0, 0, 0, 0) // a zero mask: the payload as is
	msg = append(msg, ping...)
	want := []byte(`{"cid":"1","pong":{}}`)
	buf := make([]byte, 1024)
	connect := func() error {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer nc.Close()
		if _, err := nc.Write(msg); err != nil {
			return err
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], want) { // the 101, then the pong frame
			m, err := nc.Read(buf[n:])
			if err != nil {
				return fmt.Errorf("after %q: %w", buf[:n], err)
			}
			n += m
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
			return fmt.Errorf("answer %q", buf[:n])
		}
		return nil
	}
	if err := connect(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := connect(); err != nil {
			b.Fatal(err)
		}
	}
}
