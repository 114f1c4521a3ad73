//go:build linux

package gateway

import (
	"syscall"
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
	return recvInputFlags(fd, b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

// readInput reads what fd holds into b (at most len(b) bytes) without blocking.
func readInput(fd uintptr, b []byte) (int, inputState) {
	return recvInputFlags(fd, b, syscall.MSG_DONTWAIT)
}

// recvInputFlags is one recv of at most len(b) bytes with flags (which include MSG_DONTWAIT).
func recvInputFlags(fd uintptr, b []byte, flags int) (int, inputState) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		uintptr(flags), 0, 0)
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

// enableRecvTimestamps asks the kernel to date what fd receives (SO_TIMESTAMPNS), so that
// recvInput can tell when a pong arrived. It reports whether the kernel agreed.
func enableRecvTimestamps(fd uintptr) bool {
	v := int32(1)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS,
		uintptr(unsafe.Pointer(&v)), unsafe.Sizeof(v), 0)
	return errno == 0
}

// recvInput reads, without blocking, what fd holds into b, and returns the byte count and the
// wall-clock time (Unix nanoseconds) at which the kernel received the last of them, or 0 when
// it did not say (SO_TIMESTAMPNS off). One recvmsg: the data and its date together.
func recvInput(fd uintptr, b []byte) (n int, at int64, st inputState) {
	var oob [32]byte // one cmsghdr (16 bytes) and one timespec (16 bytes)
	iov := syscall.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	msg := syscall.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	r, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), syscall.MSG_DONTWAIT)
	switch {
	case errno == syscall.EAGAIN:
		return 0, 0, inputNone
	case errno != 0 || r == 0:
		return 0, 0, inputEnd
	}
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if int(msg.Controllen) >= syscall.CmsgLen(16) && h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS {
		ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
		at = ts.Nano()
	}
	return int(r), at, inputData
}
