// Package redisproc runs real redis-server processes, a single server, a small Redis Cluster
// or a Sentinel deployment (master, replica, sentinels), on free loopback ports, so that tests
// and the load-test suite exercise the Redis stores against the real thing instead of a fake.
// Every process it starts is stopped and reaped by the caller's Stop or Kill; nothing is
// persisted to disk.
package redisproc
