//go:build linux

package loadtest

import (
	"net"
	"syscall"
)

// writeBeforeClose writes b, the last bytes before nc is closed, with MSG_MORE: the kernel holds
// them until the close, which sends them with its FIN in one segment. It reports false, having
// written nothing, when nc offers no raw access.
func writeBeforeClose(nc net.Conn, b []byte) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	_ = rc.Write(func(fd uintptr) bool {
		_, err := syscall.SendmsgN(int(fd), b, nil, nil, syscall.MSG_MORE|syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		return err != syscall.EAGAIN // a full send buffer waits; any other error ends here, as the close follows
	})
	return true
}
