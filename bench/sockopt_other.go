//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package bench

import "syscall"

// slowSocketControl is not supported here: slow connections keep the
// system's default buffers and segment size, and take longer to fall
// behind.
func slowSocketControl(int, int) func(network, address string, rc syscall.RawConn) error { return nil }
