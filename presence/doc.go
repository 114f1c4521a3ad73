// Package presence tracks who is online where across the cluster (socket presences with node
// ids, status follow / update events) and the TTL-bound play sessions that ride on top of them.
//
// It is filled in by the socket and cluster work; until then it only reserves its place in the
// dependency order cmd → gateway → hub, presence, auth → stores.
package presence
