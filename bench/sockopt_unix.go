//go:build linux || darwin || freebsd || netbsd || openbsd

package bench

import (
	"fmt"
	"syscall"
)

// slowSocketControl returns a net.Dialer Control func that sets SO_RCVBUF
// to rcvBuf and TCP_MAXSEG to mss before the socket connects. Both must come
// before the SYN: the window scale and the MSS the client advertises are
// fixed by it.
func slowSocketControl(rcvBuf, mss int) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			if serr != nil {
				serr = fmt.Errorf("SO_RCVBUF %d: %w", rcvBuf, serr)
				return
			}
			if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss); serr != nil {
				serr = fmt.Errorf("TCP_MAXSEG %d: %w", mss, serr)
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("slow connection socket: %w", err)
		}
		return nil
	}
}
