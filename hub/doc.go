// Package hub is this node's registry of live sockets, and the cluster bus that carries
// commands to the other nodes' hubs. The registry finds a socket by session id or by user id,
// delivers a message to one session or to all of a user's sessions, and asks sockets to close. It knows nothing about HTTP, tokens or the envelope protocol: a
// socket is anything that implements Conn, and the socket itself owns its queue, its heartbeat
// and its teardown (which ends with Unregister).
//
// The registry is sharded so that thousands of sockets connecting, closing and being messaged at
// once do not serialize on one lock: a session lives in the shard its session id hashes to and is
// indexed again in the shard its user id hashes to. Lookups take one shard's read lock and do not
// allocate. No lock is held while a Conn method runs, so sockets may call back into the hub.
//
// The cluster half: a Bus moves bytes to another node's inbox (MemoryNetwork in process,
// RedisBus over Redis pub/sub, sharded on Redis Cluster); an Exchange runs requests that are
// answered only once the target node acted (or fail naming it), and one-way casts, over a Bus;
// a Registry lists the live nodes from their heartbeats (MemoryRegistry, RedisRegistry). What
// the commands do is the gateway's: the hub only carries them.
package hub
