//go:build !linux

package gateway

// rawHeartbeats: outside Linux every frame goes through coder/websocket (heartbeat.go).
const rawHeartbeats = false

// peekReadable reports input at once: outside Linux the read loop waits in coder/websocket.
func peekReadable(uintptr) bool { return true }

// peekInput reports the end at once: outside Linux the read loop waits in coder/websocket.
func peekInput(uintptr, []byte) (int, inputState) { return 0, inputEnd }

// readInput reports the end at once: outside Linux the read loop waits in coder/websocket.
func readInput(uintptr, []byte) (int, inputState) { return 0, inputEnd }

// consumeInput is not used outside Linux.
func consumeInput(uintptr, int) bool { return false }

// sendFrame is not used outside Linux.
func sendFrame(uintptr, []byte) (bool, error) { return false, errPartialFrame }

// setRcvLowat is not used outside Linux.
func setRcvLowat(uintptr, int) {}

// enableRecvTimestamps is not used outside Linux.
func enableRecvTimestamps(uintptr) bool { return false }

// recvInput is not used outside Linux.
func recvInput(uintptr, []byte) (int, int64, inputState) { return 0, 0, inputEnd }
