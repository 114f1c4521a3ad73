//go:build unix

package loadtest

import (
	"fmt"
	"syscall"
)

// signalProcess sends pid SIGKILL ("kill") or SIGTERM ("term").
func signalProcess(pid int, how string) error {
	sig := syscall.SIGKILL
	if how == "term" {
		sig = syscall.SIGTERM
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	return nil
}
