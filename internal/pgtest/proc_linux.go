//go:build linux

package pgtest

import "syscall"

// sysProcAttr runs the child as cred (nil: as we are) and makes the kernel
// kill it if the test binary dies without running its cleanups; postgres's
// own children notice the postmaster's death and exit.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
