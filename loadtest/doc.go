// Package loadtest is the load generator behind cmd/loadtest: virtual game clients that
// authenticate over HTTP, hold WebSockets and heartbeat, and the report of what they measured.
//
// A run (Run) is coordinated in phases. Every worker (in this process, or a process of its own
// started through Config.WorkerCommand and driven by ServeWorker over stdin/stdout)
// authenticates its share of the clients first, so that the measured phase covers only what
// is being measured. The coordinator then reads the targets' /metrics ("before"), starts the
// measured phase everywhere at once (ramp of sockets, or authenticate requests), reads the
// metrics when every worker has finished it ("ramped"), and for hold reads them again Settle
// after the ramp ("settled", the memory figures) and at the end of Hold ("end"; idle CPU is
// settled → end). Then the workers close their sockets and report.
//
// Each held socket costs the client one goroutine (its reader, which also answers the
// server's WebSocket pings); envelope pings are written by one pinger per worker that walks
// the sockets in 100 ms slots. Latencies are recorded in Histogram, log-linear buckets that
// merge exactly across workers, so percentiles are never averaged.
package loadtest
