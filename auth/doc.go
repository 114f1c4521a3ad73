// Package auth owns accounts and credentials (device id, custom id, email + password), the
// session and refresh tokens (issue, verify, refresh), their revocation on logout, session
// variables and the before-authenticate hook.
//
// Storage sits behind two small interfaces, AccountStore and RevocationStore, each with an
// in-memory implementation (the embedded single-node default) and a Redis one (several nodes
// sharing one Redis, Sentinel or Cluster). Token verification never touches a store: it checks
// the signature and a local revocation cache that RevocationStore.Watch keeps current.
//
// Errors returned to callers are *Error values carrying a gRPC-style code, so the HTTP edge can
// render Nakama's error shape without knowing the rules that produced them.
package auth
