//go:build !cablecar_nopoll

package proxy

import (
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iovMax is the most frames one writev of the pool takes. A connection
// with more queued gets the rest on the next writev; 64 keeps a writer's
// scratch at 1 KiB.
const iovMax = 64

// socketFD returns nc's descriptor for the writer pool's raw writes, or
// none when it has none (a pipe in tests), so that flushers write it.
//
// The descriptor is used outside Go's own bookkeeping (the fd mutex and
// the netpoller's state), which cost a fifth of the fan-out's CPU. That
// is safe because the socket is closed only by the connection's flusher
// role holder, or when no one holds that role (conn.closeSocket,
// nextBatch, writeFailed, forceClose): no raw write can race its close
// and hit a reused descriptor.
func socketFD(nc net.Conn) rawFD {
	raw, err := rawConn(nc)
	if err != nil {
		return 0
	}
	var fd rawFD
	if raw.Control(func(s uintptr) { fd = rawFD(s + 1) }) != nil {
		return 0
	}
	return fd
}

// sendFlags: never block, and a peer gone gives EPIPE without raising
// SIGPIPE (which the runtime would field for every such write).
const sendFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL

// writevNow writes what the socket fd takes of bufs, in order, without
// waiting: errWouldBlock when its buffer is full or there is no fd.
//
// It is a raw system call: a write to a non-blocking socket returns in
// microseconds, and telling the scheduler about it (entersyscall) cost
// more than the call's own user-space part, and let sysmon hand the P to
// another thread when a write happened to span its tick.
func (r *rawIO) writevNow(sock rawFD, bufs [][]byte) (int, error) {
	if sock == 0 {
		return 0, errWouldBlock
	}
	fd := uintptr(sock - 1)
	for {
		var n uintptr
		var errno unix.Errno
		if len(bufs) == 1 {
			p := bufs[0]
			n, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), sendFlags, 0, 0)
		} else {
			k := min(len(bufs), iovMax)
			for i, b := range bufs[:k] {
				r.iovecs[i].Base = unsafe.SliceData(b)
				r.iovecs[i].SetLen(len(b))
			}
			r.msg.Iov = &r.iovecs[0]
			r.msg.SetIovlen(k)
			n, _, errno = unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&r.msg)), sendFlags)
			r.msg.Iov = nil
			clear(r.iovecs[:k]) // hold no frame past the call
		}
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		default:
			return 0, os.NewSyscallError("send", errno)
		}
	}
}

// shutdownSocket makes every pending and later write on nc fail, without
// freeing its descriptor number (see conn.forceClose). On a socket already
// closed it does nothing.
func shutdownSocket(nc net.Conn) {
	if raw, err := rawConn(nc); err == nil {
		_ = raw.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
}
