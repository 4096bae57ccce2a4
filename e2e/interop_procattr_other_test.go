//go:build !linux

package e2e

import "syscall"

// interopSysProcAttr sets nothing where Pdeathsig does not exist.
func interopSysProcAttr() *syscall.SysProcAttr { return nil }
