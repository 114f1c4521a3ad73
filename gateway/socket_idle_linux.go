//go:build linux

package gateway

import (
	"syscall"
	"time"
	"unsafe"
)

// rawHeartbeats: on Linux the heartbeat pings, the client's pongs and its envelope pings are
// handled with raw syscalls on the connection (heartbeat.go, socket_fastpath.go).
//
// They are made with syscall.RawSyscall6, not Syscall6: every one of them is non-blocking
// (MSG_DONTWAIT, socket options), so the scheduler need not hand the P off while it runs, and
// Syscall6's entersyscall would wake the runtime's sysmon thread out of its idle sleep. Measured
// on an idle node, that wake-up, and the millisecond of 20 µs polls sysmon then makes, came with
// every burst of pings: about 360 nanosleeps a second at 19k sockets.
const rawHeartbeats = true

// peekReadable reports whether fd has input (or an error, or end of file) without consuming it.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN
}

// peekInput copies the head of fd's input into b without consuming it or blocking.
func peekInput(fd uintptr, b []byte) (int, inputState) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	switch {
	case errno == syscall.EAGAIN:
		return 0, inputNone
	case errno != 0 || n == 0:
		return 0, inputEnd
	}
	return int(n), inputData
}

// consumeInput discards exactly n bytes that a peek has shown are there.
func consumeInput(fd uintptr, n int) bool {
	var b [maxFastFrame]byte
	m, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(n),
		syscall.MSG_DONTWAIT, 0, 0)
	return errno == 0 && int(m) == n
}

// sendFrame writes frame on fd without blocking. It reports whether it was written whole; a full
// send buffer writes nothing (false, nil); errPartialFrame means the stream is now mid-frame.
func sendFrame(fd uintptr, frame []byte) (written bool, err error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	switch {
	case errno == syscall.EAGAIN:
		return false, nil
	case errno != 0:
		return false, errno
	case int(n) != len(frame):
		return false, errPartialFrame
	}
	return true, nil
}

// setRcvLowat sets how many bytes fd must hold before the poller reports it readable. Linux
// signals readability at once when the new mark is already met, so lowering it wakes a parked
// reader that has input.
func setRcvLowat(fd uintptr, n int) {
	v := int32(n)
	_, _, _ = syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.SOL_SOCKET, syscall.SO_RCVLOWAT,
		uintptr(unsafe.Pointer(&v)), unsafe.Sizeof(v), 0)
}

// sinceDataReceived returns how long ago fd last received data, as the kernel keeps it
// (TCP_INFO's last_data_recv, in milliseconds), or false when it cannot tell.
func sinceDataReceived(fd uintptr) (time.Duration, bool) {
	var info syscall.TCPInfo
	size := uint32(syscall.SizeofTCPInfo)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(info.Last_data_recv) * time.Millisecond, true
}
