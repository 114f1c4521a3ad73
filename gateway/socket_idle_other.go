//go:build !linux

package gateway

// pollReadable reports input at once: outside Linux the read loop waits in coder/websocket.
func pollReadable(uintptr) bool { return true }
