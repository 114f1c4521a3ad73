package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// churn opens plan.Ops sockets at plan.Rate, the clients' identities taken in turn, and closes
// each one Lifetime after it connected. Enough goroutines run for the sockets alive at once
// (Rate × (Lifetime + Timeout)) plus InFlight connects.
func (w *worker) churn(ctx context.Context) {
	n := len(w.clients)
	if n == 0 || w.plan.Ops <= 0 {
		return
	}
	par := w.plan.InFlight
	if w.plan.Rate > 0 {
		par += int(w.plan.Rate * (w.plan.Lifetime + w.plan.Timeout).Seconds())
	}
	w.forEachN(ctx, w.plan.Ops, w.plan.Rate, par, func(ctx context.Context, i int) {
		s := w.connect(ctx, w.clients[i%n])
		if s == nil {
			return
		}
		w.startReader(s)
		if !sleepCtx(ctx, w.plan.Lifetime) {
			return // stopping: closeAll closes it
		}
		s.closing.Store(true)
		t0 := time.Now()
		if err := s.conn.Close(closeNormal, "churn"); err != nil {
			if ctx.Err() == nil {
				w.countErr("close_error")
			}
			return
		}
		w.record(HistClose, time.Since(t0))
		w.count(CountClosed, 1)
	})
}

// logoutAll logs every client holding a socket out (POST /v2/session/logout with its session
// token) and then tries a new socket with that token on every target: each must refuse it with
// 401 within refusalBound of the logout's answer (a node that learns of revocations over the
// cluster bus may accept it for a moment: such attempts are counted, and retried every
// refusalRetry). The held sockets must stay open: the hold after this counts any drop.
func (w *worker) logoutAll(ctx context.Context) {
	w.forEachN(ctx, len(w.clients), w.plan.ActRate, w.plan.ActInFlight, func(ctx context.Context, i int) {
		c := w.clients[i]
		if c.cur.Load() == nil {
			return
		}
		tok, _ := c.session()
		body, _ := json.Marshal(map[string]string{"token": tok})
		t0 := time.Now()
		status, err := w.postJSON(ctx, w.plan.Targets[c.target]+"/v2/session/logout", "Bearer "+tok, body, nil, "logout")
		if err != nil {
			return
		}
		if status != http.StatusOK {
			w.countErr(fmt.Sprintf("logout_http_%d", status))
			return
		}
		answered := time.Now()
		w.record(HistLogout, answered.Sub(t0))
		w.count(CountLoggedOut, 1)
		for _, target := range w.plan.Targets {
			w.expectRefused(ctx, c, target, answered)
		}
	})
}

const (
	refusalBound = 2 * time.Second
	refusalRetry = 20 * time.Millisecond
)

// expectRefused opens sockets with c's logged-out token on target until one is refused with
// 401, recording the time since the logout answered.
func (w *worker) expectRefused(ctx context.Context, c *client, target string, answered time.Time) {
	for ctx.Err() == nil {
		s, kind, st := w.openSocket(ctx, c, target)
		switch {
		case st == http.StatusUnauthorized:
			w.record(HistRefused, time.Since(answered))
			w.count(CountRefused, 1)
			return
		case s == nil:
			if ctx.Err() == nil {
				w.countErr("after_logout_" + kind)
			}
			return
		}
		_ = s.conn.Close(closeNormal, "should have been refused")
		w.count(CountAcceptedAfterLogout, 1)
		if time.Since(answered) > refusalBound {
			w.countErr("logout_token_accepted")
			return
		}
		sleepCtx(ctx, refusalRetry)
	}
}

// reconnect brings a storm client whose socket dropped at lostAt back on another target: each
// attempt moves to the next target after a full-jitter exponential backoff, and a client whose
// token is refused there authenticates on that target first. It gives up after ReconnectFor or
// when the worker stops. The new socket, if any, is tracked and returned for its reader.
func (w *worker) reconnect(c *client, lostAt time.Time) *sock {
	ctx := w.holdCtx
	giveUp := lostAt.Add(w.plan.ReconnectFor)
	for attempt := 0; ; attempt++ {
		ceiling := min(w.plan.BackoffMax, w.plan.BackoffMin<<min(attempt, 20))
		if !sleepCtx(ctx, time.Duration(rand.Int64N(int64(ceiling)+1))) || w.stopping.Load() {
			return nil
		}
		c.target = (c.target + 1) % len(w.plan.Targets)
		target := w.plan.Targets[c.target]
		w.count(CountAttempts, 1)
		s, _, status := w.openSocket(ctx, c, target)
		if s != nil {
			now := time.Now()
			w.record(HistReconnect, now.Sub(lostAt))
			w.count(CountReconnected, 1)
			w.mu.Lock()
			if now.After(w.recoveredAt) {
				w.recoveredAt = now
			}
			w.mu.Unlock()
			if !w.track(s) {
				return nil
			}
			return s
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Now().After(giveUp) {
			w.countErr("reconnect_gave_up")
			return nil
		}
		if status == http.StatusUnauthorized {
			_ = w.login(ctx, c, target, true) // an expired token, or a node that does not know it
		}
	}
}

// disconnectAll asks the server API on APITarget to disconnect every held socket, by session
// id or by user id, and waits for each close: the time from the call to the close frame at the
// client is recorded by the socket's reader.
func (w *worker) disconnectAll(ctx context.Context) {
	authz := "Bearer " + w.plan.HTTPKey
	w.forEachN(ctx, len(w.clients), w.plan.ActRate, w.plan.ActInFlight, func(ctx context.Context, i int) {
		c := w.clients[i]
		s := c.cur.Load()
		if s == nil {
			return
		}
		by := w.plan.DisconnectBy
		if by == "both" {
			by = [2]string{"session", "user"}[i%2]
		}
		u := w.plan.APITarget + "/v2/server/users/" + url.PathEscape(c.userID) + "/disconnect"
		if by == "session" {
			sid, _ := c.sessionID.Load().(string)
			u = w.plan.APITarget + "/v2/server/sessions/" + url.PathEscape(sid) + "/disconnect"
		}
		var out struct {
			Disconnected int64 `json:"disconnected"`
		}
		t0 := time.Now()
		c.discAt.Store(t0.UnixNano())
		status, err := w.postJSON(ctx, u, authz, []byte(`{"reason":"load test"}`), &out, "disconnect")
		if err == nil && status != http.StatusOK {
			w.countErr(fmt.Sprintf("disconnect_http_%d", status))
		}
		if err != nil || status != http.StatusOK {
			c.discAt.Store(0)
			return
		}
		w.record(HistDisconnectAPI, time.Since(t0))
		w.count(CountDisconnectAck, out.Disconnected)
		t := time.NewTimer(w.plan.Timeout)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			w.countErr("disconnect_close_timeout")
		case <-ctx.Done():
		}
	})
}
