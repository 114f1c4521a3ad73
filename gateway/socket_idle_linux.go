//go:build linux

package gateway

import (
	"syscall"
	"unsafe"
)

// pollReadable is the syscall.RawConn.Read callback of waitReadable: it reports whether fd has
// input (or an error, or end of file) without consuming it. Returning false makes the runtime
// park the goroutine on the network poller until fd becomes readable, then call it again.
func pollReadable(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN
}
