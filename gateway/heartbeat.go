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
//   - sends a WebSocket ping to a socket silent for PingPeriod or longer, unless one is in flight.
//
// A socket that sends anything (nakama-js sends an envelope ping every 10s) is never pinged, and
// a socket whose pongs are late is not dropped while other frames arrive. With the sweep
// interval at most (PongWait-PingPeriod)/2, an idle client is pinged by PingPeriod+interval and has
// at least (PongWait-PingPeriod)/2 to answer before it is timed out.
//
// coder/websocket's Conn.Ping writes the ping and then blocks until the pong (there is no way to
// write a ping frame without waiting). Pings therefore run on short-lived goroutines, at most
// maxPingsInFlight at once, each bounded by WriteWait; the pong itself is seen by the socket's
// own read loop (the OnPongReceived callback updates lastSeen), so the waiting goroutine is only
// a cost, never the judge of liveness. An idle socket costs no goroutine between pings. When the
// limit is reached the ping is skipped (counted) and retried on the next sweep. A ping goroutine
// whose socket is closed returns at once.

// maxPingsInFlight bounds the ping goroutines: a responsive client answers within a round trip,
// so this many cover thousands of pings per second; only silent clients hold one for WriteWait.
const maxPingsInFlight = 1024

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
	tick := interval / time.Duration(n)
	perTick := 1
	if tick < minSweepTick {
		tick = minSweepTick
		perTick = int((time.Duration(n)*minSweepTick + interval - 1) / interval)
		perTick = min(perTick, n)
	}
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
	idle := time.Duration(now - c.lastSeen.Load())
	switch {
	case idle >= s.cfg.PongWait:
		c.closeWith(CloseHeartbeatTimeout, reasonHeartbeat, causeHeartbeat, true)
	case idle >= s.cfg.PingPeriod && !c.pinging.Load():
		select {
		case s.rt.pingSem <- struct{}{}:
		default:
			s.rt.metrics.pingsSkipped.Inc()
			return
		}
		c.pinging.Store(true)
		s.rt.pings.Add(1)
		go s.ping(c)
	}
}

func (s *Server) ping(c *socketConn) {
	defer func() {
		c.pinging.Store(false)
		<-s.rt.pingSem
		s.rt.pings.Done()
	}()
	s.rt.metrics.pings.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteWait)
	_ = c.ws.Ping(ctx) // a missing pong is judged by lastSeen, a failed write closes the socket
	cancel()
}
