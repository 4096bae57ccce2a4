package pgtest

import "syscall"

// sysProcAttr makes the kernel kill the server if the test binary dies
// without cleaning up, so no server outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
