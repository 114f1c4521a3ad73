// Package loadtest is the load generator behind cmd/loadtest: virtual game clients that
// authenticate over HTTP, hold WebSockets, heartbeat, set a status and follow friends, log out,
// reconnect when their node goes away, and get disconnected by the server API; the report of
// what they measured (summary table, JSON, a self-contained HTML page); and the benchmark
// suite that starts gateway processes (StartNodes) and writes BENCHMARKS.md's figures. The
// same clients can load a Centrifugo server instead (Config.Protocol, centrifugo.go), the
// baseline DESIGN.md's targets were set against, so that both are measured in one run.
//
// A run (Run) is coordinated in phases. Every worker (in this process, or a process of its own
// started through Config.WorkerCommand and driven by ServeWorker over stdin/stdout)
// authenticates its share of the clients first, so that the measured phase covers only what
// is being measured. The coordinator then reads the targets' /metrics ("before"), starts the
// measured phase everywhere at once (ramp of sockets, churn, or authenticate requests), reads
// the metrics when every worker has finished it ("ramped"), and then runs the scenario's part:
// for hold it reads them again Settle after the ramp ("settled", the memory figures) and at
// the end of Hold ("end"; idle CPU is settled → end); for logout and disconnect it sends the
// workers the action command and waits until each has acted; for storm it stops a gateway
// process by pid and waits Hold while the clients reconnect elsewhere. Then the workers close
// their sockets and report. Throughout, the coordinator samples the workers' counts every
// 250ms and the targets' /metrics every ScrapeInterval into the report's timelines.
//
// Each held socket costs the client one goroutine (its reader, which also answers the
// server's WebSocket pings and, in a storm, reconnects its client); envelope pings are written
// by one pinger per worker that walks the sockets in 100 ms slots. Latencies are recorded in
// Histogram, log-linear buckets that merge exactly across workers, so percentiles are never
// averaged.
package loadtest
