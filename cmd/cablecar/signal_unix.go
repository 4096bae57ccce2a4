//go:build unix

package main

import (
	"os"
	"syscall"
)

// debugSignal is the signal that toggles debug logging
// (toggleDebugOnSIGUSR1).
func debugSignal() os.Signal { return syscall.SIGUSR1 }
