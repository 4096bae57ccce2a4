//go:build !linux

package redistest

import "syscall"

// sysProcAttr sets nothing where Pdeathsig does not exist.
func sysProcAttr() *syscall.SysProcAttr { return nil }
