// Package hub is this node's registry of live sockets: it finds a socket by session id or by
// user id, delivers a message to one session or to all of a user's sessions, and asks sockets to
// close. That is its one job. It knows nothing about HTTP, tokens or the envelope protocol: a
// socket is anything that implements Conn, and the socket itself owns its queue, its heartbeat
// and its teardown (which ends with Unregister).
//
// The registry is sharded so that thousands of sockets connecting, closing and being messaged at
// once do not serialize on one lock: a session lives in the shard its session id hashes to and is
// indexed again in the shard its user id hashes to. Lookups take one shard's read lock and do not
// allocate. No lock is held while a Conn method runs, so sockets may call back into the hub.
package hub
