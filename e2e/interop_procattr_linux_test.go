package e2e

import "syscall"

// interopSysProcAttr makes the kernel kill a helper process (Sidekiq, the
// publishers, the browser driver) if the test binary dies without cleaning
// up, so none outlives it.
func interopSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
