package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/hub"
)

// Graceful drain.
//
// When Run's context ends the node drains before it stops:
//  1. beginDrain: no new socket is accepted (GET /ws answers 503, code 14) and /readyz answers
//     503 with reason "draining", so load balancers stop sending clients here;
//  2. closeSpread: the live sockets are closed with 1001 in even batches, one batch every
//     drainTick or so, spread over Config.DrainPeriod, so that their clients reconnect to other
//     nodes gradually rather than all at once; the HTTP API keeps serving meanwhile;
//  3. Run shuts the HTTP servers down (bounded by Config.ShutdownTimeout) and finishDrain waits,
//     within the same bound, for every socket to complete its close, dropping the connections of
//     those that do not.
//
// The whole drain therefore takes at most DrainPeriod + ShutdownTimeout. It ends early when no
// socket is left: a node without sockets stops at once.

// drainTick is the shortest interval between two batches of closes.
const drainTick = 10 * time.Millisecond

// beginDrain stops new sockets and turns /readyz red. It returns a channel closed once every
// socket has unregistered.
func (s *Server) beginDrain() <-chan struct{} {
	s.rt.mu.Lock()
	s.rt.draining.Store(true)
	s.rt.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.rt.sockets.Wait() // safe: no Add from zero once draining is set (see handleSocket)
		close(done)
	}()
	return done
}

// Draining reports whether the node has begun its graceful drain.
func (s *Server) Draining() bool { return s.rt.draining.Load() }

// drainBatches returns how many batches close n sockets over period, and the interval between
// two batches: one batch per socket when they are few, otherwise one per drainTick.
func drainBatches(n int, period time.Duration) (batches int, interval time.Duration) {
	if n <= 0 {
		return 0, 0
	}
	batches = min(n, max(int(period/drainTick), 1))
	return batches, period / time.Duration(batches)
}

// closeSpread closes the sockets live now with 1001, batch i of n/batches sockets at
// i*DrainPeriod/batches, and returns after the last batch, or as soon as every socket has
// unregistered (done closes).
func (s *Server) closeSpread(done <-chan struct{}) {
	var conns []hub.Conn
	s.rt.hub.Range(func(c hub.Conn) bool {
		conns = append(conns, c)
		return true
	})
	n := len(conns)
	batches, interval := drainBatches(n, s.cfg.DrainPeriod)
	if batches == 0 {
		return
	}
	s.log.Info().Int("sockets", n).Dur("period", s.cfg.DrainPeriod).Msg("draining sockets")
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range batches {
		if i > 0 {
			t.Reset(time.Until(start.Add(time.Duration(i) * interval)))
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
		lo, hi := i*n/batches, (i+1)*n/batches
		for _, c := range conns[lo:hi] {
			c.Close(CloseShutdown, reasonShutdown)
		}
		clear(conns[lo:hi])
	}
}

// finishDrain closes any socket still open with 1001 and waits until all have unregistered;
// when ctx ends first it drops the remaining connections and waits for them.
func (s *Server) finishDrain(ctx context.Context, done <-chan struct{}) {
	s.rt.hub.Range(func(c hub.Conn) bool {
		c.Close(CloseShutdown, reasonShutdown)
		return true
	})
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn().Int("sockets", s.rt.hub.Len()).Msg("sockets did not close in time; dropping them")
		s.rt.hub.Range(func(c hub.Conn) bool {
			if sc, ok := c.(*socketConn); ok {
				sc.drop()
			}
			return true
		})
		<-done
	}
}

// refuseDraining answers a request for a new socket while the node drains: 503 with Nakama's
// error body, code 14 (unavailable). Not logged: every client of the node may try.
func refuseDraining(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"code":14,"message":"Server is shutting down."}`))
}
