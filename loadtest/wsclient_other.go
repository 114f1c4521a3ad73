//go:build !linux

package loadtest

import "net"

// writeBeforeClose is Linux's (wsclient_linux.go); elsewhere the caller writes b as usual.
func writeBeforeClose(net.Conn, []byte) bool { return false }
