package gateway

import (
	"context"
	"time"

	"github.com/sessiongate/sessiongate/presence"
)

// Expiry and socket liveness of play and game sessions: two goroutines per node, the expiry
// sweep and the liveness pass (so that a slow pass never delays an expiry), owned by
// Server.Run and stopped with its context.
//
// Expiry. Every expirySweepEvery the node asks each store for the sessions whose deadline has
// passed (memory: the top of a min-heap; Redis: a range of a sorted set by deadline, removed
// in the same script, so each expiry is claimed by exactly one node). It expires them, counts
// how late each was, and pushes a close notification for each game session. A session thus
// expires at most expirySweepEvery plus one store round trip after its deadline, whatever the
// number of sessions (the work per pass is proportional to the sessions due, not to those
// held).
//
// Socket liveness. A user holding a live socket needs no HTTP heartbeat: every
// Config.PlaySessionTimeout/3 the node collects the users of its registered sockets (live by
// the heartbeat's rule: a socket silent for Config.PongWait is closed and unregistered within
// a sweep interval; nothing is added per frame and there is no timer per socket), and extends their play sessions to PlaySessionTimeout from now in one
// batch (Touch). Every gameTouchEvery (a tenth of the TTL, at most a minute) it extends their
// game sessions the same way, to GameSessionTTL from now. Each node extends the sessions of
// its own sockets' users, so this holds across nodes. The bound: a play session whose user
// holds a live socket does not expire, since it is extended at least every timeout/3; once
// the socket closes (by the client, or after PongWait of silence), the session ends between
// 2/3 of the timeout and the timeout after the last extension. The cost per pass is a walk of
// the hub's user index (no socket is read) and, on Redis, one script per 1,000 users.

// expirySweepEvery is how often the node expires due sessions.
const expirySweepEvery = 100 * time.Millisecond

// expireBatch bounds the sessions one store call expires; a pass makes at most
// maxExpireCalls of them, the rest wait for the next pass.
const (
	expireBatch    = 1000
	maxExpireCalls = 50
)

// storeCallTimeout bounds each store call of the background work.
const storeCallTimeout = 5 * time.Second

// playTouchEvery is how often the node extends the play sessions of its sockets' users.
func (c Config) playTouchEvery() time.Duration {
	return max(c.PlaySessionTimeout/3, minTouchEvery)
}

// gameTouchEvery is how often it extends their game sessions: a tenth of the TTL, at most
// once a minute.
func (c Config) gameTouchEvery() time.Duration {
	return max(min(c.GameSessionTTL/10, time.Minute), minTouchEvery)
}

// minTouchEvery keeps the liveness pass from spinning with tiny timeouts (tests).
const minTouchEvery = 10 * time.Millisecond

// run sweeps and touches until ctx ends, and returns once both loops have stopped.
func (p *playSessions) run(ctx context.Context) {
	touched := make(chan struct{})
	go func() {
		defer close(touched)
		p.runTouches(ctx)
	}()
	p.runSweeps(ctx)
	<-touched
}

// runSweeps expires due sessions every expirySweepEvery until ctx ends.
func (p *playSessions) runSweeps(ctx context.Context) {
	sweep := time.NewTicker(expirySweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			p.expirePlay(ctx)
			p.expireGames(ctx)
		}
	}
}

// runTouches extends the sessions of the users of this node's live sockets until ctx ends.
func (p *playSessions) runTouches(ctx context.Context) {
	playEvery, gameEvery := p.s.cfg.playTouchEvery(), p.s.cfg.gameTouchEvery()
	touch := time.NewTicker(min(playEvery, gameEvery))
	defer touch.Stop()
	var lastPlay, lastGame time.Time
	var users []string
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-touch.C:
			// A tick may come up to a period late; a little slack keeps a kind whose period is
			// a multiple of the tick from skipping one.
			playDue := now.Sub(lastPlay) >= playEvery*9/10
			gameDue := now.Sub(lastGame) >= gameEvery*9/10
			if !playDue && !gameDue {
				continue
			}
			users = p.s.liveUsers(users[:0])
			if playDue {
				lastPlay = now
				p.touch(ctx, kindPlay, users, func(c context.Context) (int, error) {
					return p.play.Touch(c, users, p.s.cfg.PlaySessionTimeout)
				})
			}
			if gameDue {
				lastGame = now
				p.touch(ctx, kindGame, users, func(c context.Context) (int, error) {
					return p.games.Touch(c, users, p.s.cfg.GameSessionTTL)
				})
			}
		}
	}
}

// liveUsers appends to dst, once each, the users of this node's registered sockets. A
// registered socket is a live one by the heartbeat's rule: one silent for PongWait is closed
// and unregistered within a sweep interval (heartbeat.go). The hub's user index lists each user
// once, so the pass reads neither the sockets nor a set of its own.
func (s *Server) liveUsers(dst []string) []string {
	h := s.rt.hub
	for i := range h.Shards() {
		dst = h.AppendUsers(i, dst)
	}
	return dst
}

func (p *playSessions) touch(ctx context.Context, kind string, users []string, fn func(context.Context) (int, error)) {
	if len(users) == 0 {
		return
	}
	c, cancel := storeContext(ctx)
	n, err := fn(c)
	cancel()
	p.metrics.touched.WithLabelValues(kind).Add(float64(n))
	if err != nil && ctx.Err() == nil {
		p.metrics.sweepErrors.Inc()
		if !p.warnNow() {
			return
		}
		p.s.log.Warn().Err(err).Str("kind", kind).Int("users", len(users)).Msg("extending sessions of live sockets")
	}
}

// expirePlay expires the due play sessions.
func (p *playSessions) expirePlay(ctx context.Context) {
	expireDue(ctx, p, kindPlay, p.play.Expire, func(e presence.Expired, now time.Time) {
		p.metrics.expiredAt(kindPlay, e.Deadline, now)
	})
}

// expireGames expires the due game sessions and notifies their users.
func (p *playSessions) expireGames(ctx context.Context) {
	expireDue(ctx, p, kindGame, p.games.Expire, func(gs *presence.GameSession, now time.Time) {
		p.metrics.expiredAt(kindGame, gs.ExpiresAt, now)
		c, cancel := storeContext(ctx)
		p.closed(c, gs, closeReasonExpired)
		cancel()
	})
}

// expireDue calls expire for batches of due sessions, handing each to each, until a batch is
// short, a call fails, or maxExpireCalls were made.
func expireDue[T any](ctx context.Context, p *playSessions, kind string, expire func(context.Context, int) ([]T, error), each func(T, time.Time)) {
	for range maxExpireCalls {
		c, cancel := storeContext(ctx)
		due, err := expire(c, expireBatch)
		cancel()
		now := time.Now()
		for _, d := range due {
			each(d, now)
		}
		if p.sweepFailed(ctx, err, kind) || len(due) < expireBatch {
			return
		}
	}
}

// sweepFailed counts and logs a failed expiry call (not one cut short by shutdown) and
// reports whether err is set.
func (p *playSessions) sweepFailed(ctx context.Context, err error, kind string) bool {
	if err == nil {
		return false
	}
	if ctx.Err() == nil {
		p.metrics.sweepErrors.Inc()
		if p.warnNow() {
			p.s.log.Warn().Err(err).Str("kind", kind).Msg("expiring sessions (further failures within 10s are only counted)")
		}
	}
	return true
}

// warnNow rate-limits the background work's warnings to one per 10s, so that a store outage
// does not log ten lines a second; sessiongate_play_sweep_errors_total counts every failure.
func (p *playSessions) warnNow() bool {
	now, last := time.Now().UnixNano(), p.lastWarn.Load()
	return now-last >= int64(10*time.Second) && p.lastWarn.CompareAndSwap(last, now)
}
