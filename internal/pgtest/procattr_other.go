//go:build !linux

package pgtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// killGroup does nothing here: Kill ends the postmaster alone.
func killGroup(int) {}
