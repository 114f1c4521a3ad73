package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/gateway"
)

// statusUser is an account with one socket.
type statusUser struct {
	id, name, token string
	c               *websocket.Conn
	sid             string // the socket's session id
}

// statusSocket authenticates a device, opens a socket (status=true when online) and finds its
// session id in the hub.
func statusSocket(t *testing.T, s *testServer, device string, online bool) *statusUser {
	t.Helper()
	sess := s.authDevice(t, device, "")
	cl := tokenClaims(t, sess.Token)
	u := &statusUser{id: cl.UserID, name: cl.Username, token: sess.Token}
	u.c = s.dialStatus(t, sess.Token, online)
	waitFor(t, 5*time.Second, "the socket", func() bool { return s.srv.Hub().UserCount(u.id) == 1 })
	u.sid = s.srv.Hub().UserConns(u.id, nil)[0].SessionID()
	return u
}

func (s *testServer) dialStatus(t *testing.T, token string, online bool) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := s.dialSocket(ctx, fmt.Sprintf("status=%v&token=%s", online, query(token)), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// presenceJSON is the wire form of one presence.
func presenceJSON(u *statusUser, status string) string {
	return fmt.Sprintf(`{"user_id":%q,"session_id":%q,"username":%q,"status":%q}`, u.id, u.sid, u.name, status)
}

// wantNothingPending checks, with a ping round trip, that no message was queued before it.
func wantNothingPending(t *testing.T, c *websocket.Conn) {
	t.Helper()
	sendText(t, c, `{"cid":"barrier","ping":{}}`)
	wantJSON(t, readJSON(t, c), `{"cid":"barrier","pong":{}}`)
}

func TestStatusFollowUpdateLeave(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	a := statusSocket(t, s, "device-status-a", false)
	b := statusSocket(t, s, "device-status-b", true)
	// B connected with status=true: it received its own join (it follows itself).
	wantJSON(t, readJSON(t, b.c), `{"status_presence_event":{"joins":[`+presenceJSON(b, "")+`]}}`)

	// A follows B (and itself, ignored; and an unknown user, ignored): B is online, status "".
	sendText(t, a.c, fmt.Sprintf(`{"cid":"1","status_follow":{"user_ids":[%q,%q,"00000000-0000-4000-8000-000000000000"]}}`, b.id, a.id))
	wantJSON(t, readJSON(t, a.c), `{"cid":"1","status":{"presences":[`+presenceJSON(b, "")+`]}}`)

	// B sets a status: A and B's own socket get the join of the new status with the leave of the old.
	sendText(t, b.c, `{"cid":"2","status_update":{"status":"playing"}}`)
	event := `{"status_presence_event":{"joins":[` + presenceJSON(b, "playing") + `],"leaves":[` + presenceJSON(b, "") + `]}}`
	wantJSON(t, readJSON(t, b.c), event)
	wantJSON(t, readJSON(t, b.c), `{"cid":"2"}`)
	wantJSON(t, readJSON(t, a.c), event)

	// A follows by username too, and sees the new status; following again changes nothing.
	sendText(t, a.c, fmt.Sprintf(`{"cid":"3","status_follow":{"usernames":[%q,"no-such-user"]}}`, b.name))
	wantJSON(t, readJSON(t, a.c), `{"cid":"3","status":{"presences":[`+presenceJSON(b, "playing")+`]}}`)

	// B appears offline: a leave with the last status.
	sendText(t, b.c, `{"cid":"4","status_update":{}}`)
	leave := `{"status_presence_event":{"leaves":[` + presenceJSON(b, "playing") + `]}}`
	wantJSON(t, readJSON(t, b.c), leave)
	wantJSON(t, readJSON(t, b.c), `{"cid":"4"}`)
	wantJSON(t, readJSON(t, a.c), leave)
	sendText(t, a.c, fmt.Sprintf(`{"cid":"5","status_follow":{"user_ids":[%q]}}`, b.id))
	wantJSON(t, readJSON(t, a.c), `{"cid":"5","status":{}}`)
	// Offline again is no event.
	sendText(t, b.c, `{"cid":"6","status_update":{}}`)
	wantJSON(t, readJSON(t, b.c), `{"cid":"6"}`)
	wantNothingPending(t, a.c)

	// Back online with a status, then B's socket closes: followers see the leave.
	sendText(t, b.c, `{"cid":"7","status_update":{"status":"away"}}`)
	wantJSON(t, readJSON(t, a.c), `{"status_presence_event":{"joins":[`+presenceJSON(b, "away")+`]}}`)
	b.c.Close(websocket.StatusNormalClosure, "")
	wantJSON(t, readJSON(t, a.c), `{"status_presence_event":{"leaves":[`+presenceJSON(b, "away")+`]}}`)

	// After unfollow, A hears nothing of B.
	b2 := &statusUser{id: b.id, name: b.name, token: b.token}
	sendText(t, a.c, fmt.Sprintf(`{"cid":"8","status_unfollow":{"user_ids":[%q,%q]}}`, b.id, a.id))
	wantJSON(t, readJSON(t, a.c), `{"cid":"8"}`)
	b2.c = s.dialStatus(t, b.token, true)
	waitFor(t, 5*time.Second, "B's new socket", func() bool { return s.srv.Hub().UserCount(b.id) == 1 })
	if _, _, err := b2.c.Read(context.Background()); err != nil { // its own join
		t.Fatal(err)
	}
	wantNothingPending(t, a.c)
}

func TestStatusBadInput(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	a := statusSocket(t, s, "device-status-bad", false)
	for _, tc := range []struct{ in, want string }{
		{`{"cid":"1","status_follow":{"user_ids":["not-a-uuid"]}}`, `{"cid":"1","error":{"code":3,"message":"Invalid user identifier"}}`},
		{`{"cid":"2","status_follow":{"usernames":[""]}}`, `{"cid":"2","error":{"code":3,"message":"Invalid username"}}`},
		{`{"cid":"3","status_unfollow":{"user_ids":["nope"]}}`, `{"cid":"3","error":{"code":3,"message":"Invalid user identifier"}}`},
		{`{"cid":"4","status_update":{"status":"` + strings.Repeat("x", 2049) + `"}}`, `{"cid":"4","error":{"code":3,"message":"Status must be 2048 characters or less"}}`},
		{`{"cid":"5","status_update":{"status":"` + strings.Repeat("x", 2048) + `"}}`, `{"cid":"5"}`},
		{`{"cid":"6","status_follow":{}}`, `{"cid":"6","status":{}}`},
		{`{"cid":"7","status_follow":{"user_ids":["` + strings.ToUpper(a.id) + `"],"usernames":["` + a.name + `"]}}`, `{"cid":"7","status":{}}`},
		{`{"cid":"8","status_unfollow":{}}`, `{"cid":"8"}`},
		{`{"status_update":{"status":"no cid"}}`, `{}`},
	} {
		sendText(t, a.c, tc.in)
		m := readJSON(t, a.c)
		if m["status_presence_event"] != nil { // the 2048-byte and no-cid updates reach A itself
			m = readJSON(t, a.c)
		}
		wantJSON(t, m, tc.want)
	}
	// Wrong field types are malformed envelopes, which close the socket as any other.
	sendText(t, a.c, `{"cid":"9","status_update":{"status":5}}`)
	if m := readJSON(t, a.c); m["error"] == nil {
		t.Fatalf("got %v, want an error", m)
	}
	wantClose(t, a.c, gateway.CloseProtocolError, "malformed message")
}

// Status events are encoded once per event; many followers all receive it.
func TestStatusManyFollowers(t *testing.T) {
	s := startServer(t, testConfig(), memStores())
	target := statusSocket(t, s, "device-status-target", false)
	var followers []*statusUser
	for i := range 20 {
		f := statusSocket(t, s, fmt.Sprintf("device-status-follower-%d", i), false)
		sendText(t, f.c, fmt.Sprintf(`{"cid":"f","status_follow":{"user_ids":[%q]}}`, target.id))
		wantJSON(t, readJSON(t, f.c), `{"cid":"f","status":{}}`)
		followers = append(followers, f)
	}
	sendText(t, target.c, `{"cid":"u","status_update":{"status":"hi"}}`)
	want := `{"status_presence_event":{"joins":[` + presenceJSON(target, "hi") + `]}}`
	for _, f := range followers {
		wantJSON(t, readJSON(t, f.c), want)
	}
	for _, f := range followers {
		f.c.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, 5*time.Second, "followers gone", func() bool { return s.srv.Hub().Len() == 1 })
	if got := s.srv.Presence().FollowersOf(target.id, nil); len(got) != 1 || got[0] != target.sid {
		t.Errorf("followers of the target %v, want only its own socket", got)
	}
}

func TestSingleSocket(t *testing.T) {
	cfg := testConfig()
	cfg.SingleSocket = true
	// The racing clients below never read, so a replaced socket's close handshake waits out
	// the write wait before it unregisters: keep it well inside the test's 5s wait.
	cfg.WriteWait = time.Second
	s := startServer(t, cfg, memStores())
	sess := s.authDevice(t, "device-single-socket", "")
	uid := tokenClaims(t, sess.Token).UserID
	old := s.mustSocket(t, sess.Token)
	waitFor(t, 5*time.Second, "the first socket", func() bool { return s.srv.Hub().UserCount(uid) == 1 })
	newer := s.mustSocket(t, sess.Token)

	m := readJSON(t, old)
	raw, _ := json.Marshal(m)
	ns, _ := m["notifications"].(map[string]any)["notifications"].([]any)
	if len(ns) != 1 {
		t.Fatalf("got %s, want one notification", raw)
	}
	n := ns[0].(map[string]any)
	if n["code"] != float64(-7) || n["subject"] != "single_socket" || n["content"] != "{}" || n["id"] == "" || n["create_time"] == nil {
		t.Errorf("notification %s", raw)
	}
	wantClose(t, old, gateway.CloseReplaced, "replaced by a newer socket")
	sendText(t, newer, `{"cid":"1","ping":{}}`)
	wantJSON(t, readJSON(t, newer), `{"cid":"1","pong":{}}`)
	waitFor(t, 5*time.Second, "one socket left", func() bool { return s.srv.Hub().UserCount(uid) == 1 })
	if body := scrape(t, s); !containsLine(body, `sessiongate_socket_disconnects_total{cause="replaced"} 1`) {
		t.Errorf("replacement not counted:\n%s", grepLines(body, "sessiongate_socket_disconnects"))
	}

	// Sockets racing to connect leave exactly one.
	newer.Close(websocket.StatusNormalClosure, "")
	waitFor(t, 5*time.Second, "no sockets", func() bool { return s.srv.Hub().UserCount(uid) == 0 })
	const racers = 8
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, racers)
	for i := range racers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := s.dialSocket(ctx, "token="+query(sess.Token), nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.CloseNow()
			}
		}
	})
	waitFor(t, 5*time.Second, "exactly one socket", func() bool { return s.srv.Hub().UserCount(uid) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := s.srv.Hub().UserCount(uid); n != 1 {
		t.Fatalf("%d sockets left, want 1", n)
	}
	// Another user is not affected.
	other := s.authDevice(t, "device-single-socket-other", "")
	oc := s.mustSocket(t, other.Token)
	sendText(t, oc, `{"cid":"o","ping":{}}`)
	wantJSON(t, readJSON(t, oc), `{"cid":"o","pong":{}}`)
	if n := s.srv.Hub().UserCount(uid); n != 1 {
		t.Fatalf("%d sockets left, want 1", n)
	}
}
