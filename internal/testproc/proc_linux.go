//go:build linux

package testproc

import "syscall"

// sysProcAttr makes the kernel kill the server if the test binary dies
// without running its cleanups (e.g. go test -timeout panics or SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
