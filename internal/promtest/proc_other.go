//go:build !linux

package promtest

import "syscall"

// sysProcAttr: only Linux can tie the child's life to the parent's;
// elsewhere t.Cleanup is the only guard.
func sysProcAttr() *syscall.SysProcAttr { return nil }
