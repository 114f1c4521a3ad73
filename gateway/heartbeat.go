package gateway

import (
	"context"
	"time"

	"github.com/sessiongate/sessiongate/hub"
)

// Heartbeats.
//
// Every frame from a client (message, ping, pong) stores the time in the socket's lastSeen, an
// atomic: no timer per socket, nothing reset per frame. One sweeper goroutine per node walks the
// hub shard by shard, so that every socket is visited once per sweep interval, half of
// PongWait-PingPeriod (5s by default), and
//   - closes a socket silent for PongWait or longer with CloseHeartbeatTimeout;
//   - sends a WebSocket ping to a socket silent for PingPeriod or longer, unless it was already
//     pinged since its last sign of life.
//
// A socket that sends anything (nakama-js sends an envelope ping every 10s) is never pinged, and
// a socket whose pongs are late is not dropped while other frames arrive. With the sweep
// interval at most (PongWait-PingPeriod)/2, an idle client is pinged by PingPeriod+interval and has
// at least (PongWait-PingPeriod)/2 to answer before it is timed out.
//
// The cost of a ping is what an idle node spends, so it is kept to a few syscalls with no
// goroutine, timer or context per ping (Linux, plain TCP, the read loop parked in its poller
// wait, socket_idle.go):
//   - the sweeper writes the 2-byte ping frame itself with one non-blocking send (pingRaw), and
//     raises the connection's receive low-water mark (SO_RCVLOWAT) to one byte more than the
//     empty pong it asks for;
//   - the client's pong therefore lands in the receive buffer without waking anything: no
//     poller wake-up, no goroutine scheduled, which is most of what a pong used to cost;
//   - at its next visit the sweeper finds the socket pinged and not heard from, and reads what
//     waits with one recvmsg (collectPong), which counts as life; bytes other than the empty
//     pong (a smaller frame, input that came since) are handed back to the read loop, which is
//     woken for them. Input at or above the mark (an envelope) wakes the read loop as usual,
//     which lowers the mark and takes a pong in front of it along (pollInput).
// The pong is thus collected up to one sweep interval after it arrived, and recorded as seen when
// the kernel received it (SO_TIMESTAMPNS, in the same recvmsg), so ping cadence and timeouts are
// as if it had been read at once; the timing above allows for the delay: a socket pinged at silence PingPeriod+x,
// x < interval, is next visited at silence below PongWait, and its pong is collected before its
// silence is judged.
//
// Under TLS, outside Linux, and for a socket whose read loop is not parked (it is inside
// coder/websocket's frame reader) or whose writer is busy, pings go through coder/websocket,
// whose Conn.Ping writes the ping, queued behind the frame being written, and then blocks until
// the pong. They run on short-lived goroutines, at most maxPingsInFlight at once, each bounded
// by WriteWait; the pong itself is seen by the socket's own read loop (the OnPongReceived
// callback updates lastSeen), so the waiting goroutine is only a cost, never the judge of
// liveness. When the limit is reached the ping is skipped (counted) and retried on the next
// sweep. A ping goroutine whose socket is closed returns at once.

// maxPingsInFlight bounds the ping goroutines: a responsive client answers within a round trip,
// so this many cover thousands of pings per second; only silent clients hold one for WriteWait.
const maxPingsInFlight = 1024

// sweepTick is the sweeper's usual tick: each tick visits as many shards as it takes to visit
// every socket once per sweep interval. Coarse ticks batch the pings (and so their pongs' arrival)
// into bursts, which costs the node fewer wake-ups than a ping every few hundred microseconds:
// measured, 250ms ticks spend a quarter less CPU per ping than 62ms ticks (BENCHMARKS.md).
const sweepTick = 250 * time.Millisecond

// minSweepTick keeps the sweeper from spinning when the periods are tiny (tests).
const minSweepTick = 5 * time.Millisecond

// sweepInterval is how often each socket is visited.
func (c Config) sweepInterval() time.Duration {
	return max((c.PongWait-c.PingPeriod)/2, time.Millisecond)
}

// runHeartbeats sweeps the hub until ctx ends.
func (s *Server) runHeartbeats(ctx context.Context) {
	h := s.rt.hub
	n := h.Shards()
	interval := s.cfg.sweepInterval()
	// At least four ticks per interval, so that the visits stay spread when the interval is short.
	tick := max(min(sweepTick, interval/4), interval/time.Duration(n), minSweepTick)
	perTick := min(int((time.Duration(n)*tick+interval-1)/interval), n)
	t := time.NewTicker(tick)
	defer t.Stop()
	buf := make([]hub.Conn, 0, 64)
	cursor := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.rt.now()
		for range perTick {
			buf = h.AppendShard(cursor, buf[:0])
			cursor = (cursor + 1) % n
			for _, hc := range buf {
				if c, ok := hc.(*socketConn); ok {
					s.checkHeartbeat(c, now)
				}
			}
			clear(buf)
		}
	}
}

// checkHeartbeat times out or pings one socket.
func (s *Server) checkHeartbeat(c *socketConn, now int64) {
	raw := rawHeartbeats && c.rc != nil
	seen := c.lastSeen.Load()
	if raw && c.pingedAt >= seen && c.pingedAt != 0 {
		// Pinged and not heard from since: its pong may be waiting on the connection.
		c.collectPong()
		seen = c.lastSeen.Load()
	}
	idle := time.Duration(now - seen)
	switch {
	case idle >= s.cfg.PongWait:
		c.closeWith(CloseHeartbeatTimeout, reasonHeartbeat, causeHeartbeat, true)
	case idle >= s.cfg.PingPeriod && c.pingedAt < seen:
		if raw && s.pingRaw(c, now) {
			return
		}
		if c.pingWait.Load() {
			return // the previous ping still waits for its pong
		}
		select {
		case s.rt.pingSem <- struct{}{}:
		default:
			s.rt.metrics.pingsSkipped.Inc()
			return
		}
		c.pingedAt = now
		c.pingWait.Store(true)
		s.rt.pings.Add(1)
		go s.ping(c)
	}
}

// pingRaw writes a ping frame on the socket's connection from the sweeper and raises the
// receive low-water mark, so that the pong does not wake the read loop; the next sweep collects
// it (collectPong). It reports false, having done nothing, when the socket's read loop is not
// parked in its poller wait or a message is being written: the ping must then go through
// coder/websocket.
//
// c.mu is held throughout, and the send never blocks: with the read loop parked,
// coder/websocket is neither reading nor writing a reply of its own; with no writer goroutine
// and no ping through coder/websocket in flight, nothing else writes either, so the frame
// cannot land inside another. A full send buffer (with nothing being written, the client has
// stopped reading) skips the ping until the next sweep.
func (s *Server) pingRaw(c *socketConn, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return true
	}
	if !c.parked || c.writing || c.pingWait.Load() {
		// A socket busy writing may stay busy (a spectator fed a stream of messages): its
		// ping queues behind the message being written, inside coder/websocket.
		return false
	}
	var written bool
	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		if written, err = sendFrame(fd, pingFrame[:]); written && !c.lowat {
			setRcvLowat(fd, rawPongLowat)
			c.lowat = true
		}
	}); cerr != nil {
		err = cerr
	}
	switch {
	case written:
		c.pingedAt = now
		s.rt.metrics.pings.Inc()
	case err != nil:
		if c.requestCloseLocked(CloseInternalError, "write failed", causeWriteError, true) {
			go c.writeLoop()
		}
	default:
		s.rt.metrics.pingsSkipped.Inc()
	}
	return true
}

// ping is a heartbeat ping through coder/websocket, on its own goroutine (TLS, not Linux).
func (s *Server) ping(c *socketConn) {
	defer func() {
		c.pingWait.Store(false)
		<-s.rt.pingSem
		s.rt.pings.Done()
	}()
	s.rt.metrics.pings.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteWait)
	c.mu.Lock()
	c.pingCancel = cancel // the fast path ends the wait if it takes the pong (pollInput)
	c.mu.Unlock()
	_ = c.ws.Ping(ctx) // a missing pong is judged by lastSeen, a failed write closes the socket
	c.mu.Lock()
	c.pingCancel = nil
	c.mu.Unlock()
	cancel()
}
