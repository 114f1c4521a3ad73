//go:build !linux

package redisproc

import "syscall"

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C meant for the test run
// does not kill it before the test's cleanup stops it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
