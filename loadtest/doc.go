// Package loadtest is the load generator behind cmd/loadtest: virtual game clients that
// authenticate, hold sockets and heartbeat, and the report of what they measured.
package loadtest
