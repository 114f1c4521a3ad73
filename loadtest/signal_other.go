//go:build !unix

package loadtest

import "errors"

func signalProcess(int, string) error {
	return errors.New("stopping a process by pid needs a unix system")
}
