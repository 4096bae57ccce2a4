package pgtest

import "syscall"

// sysProcAttr makes the kernel kill the server if the test binary dies
// without cleaning up, so no server outlives it, and gives the server a
// process group of its own, so that Kill reaches its backends too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup sends SIGKILL to the server's whole process group.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
