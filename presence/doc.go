// Package presence tracks who is online with which status, and who follows whom.
//
// A status presence is one socket session that appears online: {UserID, SessionID, Username,
// Status, Node}. A user with several sockets that appear online has several presences. The
// Tracker interface is the boundary the gateway uses:
//
//   - Join / Update / Leave change a session's status presence. Each change that followers can
//     see produces an Event (joins and leaves of one user), delivered to the callback the owner
//     set at construction, after the Tracker's locks are released. The gateway encodes an Event
//     once into Nakama's status_presence_event envelope and hands the same bytes to every
//     recipient through the hub.
//   - List returns the current presences of some users (the answer to status_follow).
//   - Follow / Unfollow / UnfollowAll / FollowersOf maintain the follower index: which local
//     sessions follow which users, so that an Event for user U reaches FollowersOf(U).
//
// The semantics follow Nakama's tracker and status registry: Join of a session already
// tracked is a no-op (Nakama's Track); Update replaces the status and reports the new presence
// as a join together with the previous one as a leave (Nakama's Update, which also creates the
// presence when there was none); Leave reports the last presence as a leave.
//
// Implementations: NewMemory (presence_memory.go) is the single-node one, used by the embedded
// mode. NewRedis (presence_redis.go) is the cluster one, behind the same interface: presences
// are written to Redis with the id of the node that holds them, so List sees every node, and
// RemoveNode drops a dead node's presences (emitting their leaves); the follower index stays
// node-local (a follower is a socket on this node). Its callback receives this node's events;
// the gateway carries them to the other nodes over the cluster bus and delivers the events it
// receives to its local followers with FollowersOf.
//
// The package also holds the TTL-bound play sessions (play.go, game.go): the exclusive
// initiate / heartbeat / end sessions (PlaySessions) and the game sessions bound to a user, a
// game and a currency (GameSessions), each with a memory store (an indexed min-heap of
// deadlines) and a Redis store (Lua scripts over a sorted set of deadlines, one hash tag per
// kind), and an Expire that claims each due session for exactly one caller on any node.
package presence
