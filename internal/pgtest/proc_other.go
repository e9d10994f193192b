//go:build !linux

package pgtest

import "syscall"

// sysProcAttr: only Linux ties the child's life to the parent's; elsewhere
// t.Cleanup (and Main) are the only guards.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
