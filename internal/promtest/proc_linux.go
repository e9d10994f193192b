//go:build linux

package promtest

import "syscall"

// sysProcAttr makes the kernel kill Prometheus if the test binary dies
// without running its cleanups (e.g. go test -timeout panics or SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
