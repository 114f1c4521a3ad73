package gateway

import (
	"context"
	"runtime/debug"
	"time"
)

// Returning memory after socket bursts.
//
// A burst of connections leaves garbage behind (net/http's per-connection state and 4 KiB
// buffers, released at the upgrade; TLS and handshake allocations) and, when sockets close, the
// memory of the sockets themselves. An idle node allocates little, so the next GC may be minutes
// away, and the runtime's background scavenger returns only free pages, slowly: the process
// stays large. Measured in process (BENCHMARKS.md), the resident size 12 s after a ramp of
// 2,000 idle sockets was 2.5 KiB per socket above what a GC and a release bring it to.
//
// So every releaseCheck the node measures its socket churn (sockets accepted, plus the drop in
// live sockets) since the last check. Consecutive busy checks (churn of at least a tenth of
// releaseMinChurn each) add up to a burst; the first quiet check after a burst of at least
// releaseMinChurn runs debug.FreeOSMemory once (a GC, then all free memory back to the
// operating system), and any quiet check forgets the burst. A node under steady churn, low or
// high, never triggers it; one ramping up does so once, a few seconds after the ramp.

const (
	releaseCheck    = 5 * time.Second
	releaseMinChurn = 1000
)

// runMemoryRelease releases memory after socket bursts until ctx ends.
func (s *Server) runMemoryRelease(ctx context.Context) {
	t := time.NewTicker(releaseCheck)
	defer t.Stop()
	lastAccepted, lastLive := s.rt.accepted.Load(), s.rt.hub.Len()
	pending := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		accepted, live := s.rt.accepted.Load(), s.rt.hub.Len()
		churn := int(accepted-lastAccepted) + max(lastLive-live, 0)
		lastAccepted, lastLive = accepted, live
		var release bool
		if pending, release = releaseStep(pending, churn); release {
			start := time.Now()
			debug.FreeOSMemory()
			s.log.Debug().Int("sockets", live).Dur("took", time.Since(start)).
				Msg("returned memory to the OS after a socket burst")
		}
	}
}

// releaseStep folds one check's churn into the burst so far and reports whether to release now.
func releaseStep(burst, churn int) (next int, release bool) {
	if churn >= releaseMinChurn/10 {
		return burst + churn, false
	}
	return 0, burst >= releaseMinChurn
}
