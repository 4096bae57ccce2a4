// The cablecar_nopoll tag builds the goroutine-per-connection fallback on
// Linux too, so its tests run here: go test -tags cablecar_nopoll ./proxy

//go:build !cablecar_nopoll

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller watches idle connections for bytes to read with one epoll set, so
// an idle connection costs no goroutine (see read.go). Each registration is
// one-shot: a readable socket is reported once, then left alone until its
// reader re-arms it, so at most one reader runs per connection.
//
// The epoll descriptor itself sits in Go's netpoller (it is readable while
// events are ready), so the poller goroutine parks like any other and
// closing the file wakes it: no thread is blocked in epoll_wait.
type poller struct {
	hub    *hub
	ep     *os.File
	raw    syscall.RawConn
	events [128]unix.EpollEvent // used by run only
}

// newPoller creates the epoll set; run serves it.
func newPoller(h *hub) (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(fd), "epoll")
	raw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("epoll raw conn: %w", err)
	}
	return &poller{hub: h, ep: ep, raw: raw}, nil
}

// pollEvents is what a registered socket waits for. EPOLLRDHUP reports a
// peer's FIN; errors and hangups are always reported.
const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// run hands each readable connection to a short-lived reader until ctx is
// done, then closes the epoll set. Sockets still registered stay open: the
// drain has closed them, or will.
func (p *poller) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.ep.Close() })
	defer stop()
	defer p.ep.Close()
	for {
		n, err := p.wait()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := range p.events[:n] {
			p.dispatch(eventConn(&p.events[i]))
		}
	}
}

// wait parks until events are ready and copies them into p.events.
func (p *poller) wait() (int, error) {
	var n int
	var werr error
	err := p.raw.Read(func(fd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(fd), p.events[:], 0)
			if werr != unix.EINTR {
				return n != 0 || werr != nil // nothing ready: park in the netpoller
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("epoll wait: %w", err)
	}
	if werr != nil {
		return 0, fmt.Errorf("epoll wait: %w", werr)
	}
	return n, nil
}

// dispatch starts a reader for connection id unless it ended meanwhile
// (an event may outlive its socket: ids, unlike descriptors, are never
// reused).
func (p *poller) dispatch(id uint64) {
	c := p.hub.conn(id)
	if c == nil || !c.claimRead() {
		return
	}
	go c.readReady(p)
}

// add registers c's socket; the caller must not be reading it any more.
func (p *poller) add(c *conn) error { return p.ctl(c, unix.EPOLL_CTL_ADD) }

// rearm lets c's socket be reported again after a reader is done with it.
func (p *poller) rearm(c *conn) error { return p.ctl(c, unix.EPOLL_CTL_MOD) }

// ctl runs epoll_ctl for c's socket. Both descriptors are held through
// Control, so neither can be closed and reused by another file meanwhile:
// a socket closed first makes this fail instead.
func (p *poller) ctl(c *conn, op int) error {
	raw, err := rawConn(c.nc)
	if err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: pollEvents}
	setEventConn(&ev, c.id)
	var cerr error
	err = p.raw.Control(func(epfd uintptr) {
		err := raw.Control(func(fd uintptr) { cerr = unix.EpollCtl(int(epfd), op, int(fd), &ev) })
		if err != nil {
			cerr = err
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("epoll_ctl conn %d: %w", c.id, err)
	}
	return nil
}

// setEventConn stores a connection id in an event's 64-bit user data.
func setEventConn(ev *unix.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventConn(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

var errNotPollable = errors.New("socket has no file descriptor to poll")

func rawConn(nc net.Conn) (syscall.RawConn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errNotPollable
	}
	return sc.SyscallConn()
}

// readNow reads what the socket holds without waiting: errWouldBlock when
// nothing is there, 0 bytes and io.EOF-free nil at the peer's FIN.
func readNow(nc net.Conn, buf []byte) (int, error) {
	raw, err := rawConn(nc)
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), buf)
			if rerr != unix.EINTR {
				return true // never park: the poller waits, not this goroutine
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}

// writeNow writes what the socket takes without waiting: errWouldBlock
// when its buffer is full.
func writeNow(nc net.Conn, p []byte) (int, error) {
	raw, err := rawConn(nc)
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), p)
			if werr != unix.EINTR {
				return true // never park: a flusher waits instead
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, errWouldBlock
	case werr != nil:
		return 0, werr
	}
	return n, nil
}
