package redisproc

import "syscall"

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C meant for the test run
// does not kill it before the test's cleanup stops it, and has the kernel kill it if this
// process dies first (a test binary killed on timeout runs no cleanup).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
