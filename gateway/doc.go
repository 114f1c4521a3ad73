// Package gateway is the HTTP and WebSocket edge of sessiongate: routes, request validation,
// Nakama's JSON wire format and error shape, the server-to-server API, metrics and health
// endpoints. It turns requests into calls on the auth, hub and presence packages and renders
// their answers; the rules themselves live in those packages.
package gateway
