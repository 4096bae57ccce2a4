package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server if the test binary dies
// without cleaning up (a panic or a -timeout), so no server outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
