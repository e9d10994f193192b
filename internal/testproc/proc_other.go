//go:build !linux

package testproc

import "syscall"

// sysProcAttr: only Linux can tie the child's life to the parent's;
// elsewhere t.Cleanup is the only guard.
func sysProcAttr() *syscall.SysProcAttr { return nil }
