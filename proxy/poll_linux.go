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
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

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
	hub *hub
	ep  *os.File
	raw syscall.RawConn

	// spare hands a readable connection to a reader goroutine that
	// finished its last one and waits (unbuffered: a send succeeds only
	// when one waits), so that a connect storm reuses readers and their
	// stacks (see growStack) instead of starting a goroutine per event.
	// done ends the waiting readers with run.
	spare  chan *conn
	spares atomic.Int32 // readers waiting on spare, at most maxSpareReaders()
	done   chan struct{}

	// Used by run only; waitFd is p.epollWait, bound once so that a wait
	// allocates nothing.
	events [128]unix.EpollEvent
	n      int
	err    error
	waitFd func(uintptr) bool
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
	p := &poller{hub: h, ep: ep, raw: raw, spare: make(chan *conn), done: make(chan struct{})}
	p.waitFd = p.epollWait
	return p, nil
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
	defer close(p.done)
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
	p.n, p.err = 0, nil
	if err := p.raw.Read(p.waitFd); err != nil {
		return 0, fmt.Errorf("epoll wait: %w", err)
	}
	if p.err != nil {
		return 0, fmt.Errorf("epoll wait: %w", p.err)
	}
	return p.n, nil
}

func (p *poller) epollWait(fd uintptr) bool {
	for {
		p.n, p.err = unix.EpollWait(int(fd), p.events[:], 0)
		if p.err != unix.EINTR {
			return p.n != 0 || p.err != nil // nothing ready: park in the netpoller
		}
	}
}

// dispatch starts a reader for connection id unless it ended meanwhile
// (an event may outlive its socket: ids, unlike descriptors, are never
// reused).
func (p *poller) dispatch(id uint64) {
	c := p.hub.conn(id)
	if c == nil || !c.claimRead() {
		return
	}
	select {
	case p.spare <- c:
	default:
		go p.read(c)
	}
}

// spareReaderIdle is how long a reader waits for another connection
// before it ends: long enough to span the gaps of a connect storm, short
// enough that its readers (16 KiB of stack each) do not stay long after.
const spareReaderIdle = 2 * time.Second

// maxSpareReaders bounds the waiting readers: no more than a few per core
// can be busy at once, so more would only hold stacks.
func maxSpareReaders() int32 { return int32(2 * runtime.GOMAXPROCS(0)) }

// read serves c, then whatever connections dispatch hands it, until it
// has waited spareReaderIdle for one, enough others wait, or the poller
// stopped.
func (p *poller) read(c *conn) {
	var idle *time.Timer
	for {
		growStack() // again: the GC halves the stacks of waiting readers
		c.readReady(p)
		if p.spares.Add(1) > maxSpareReaders() {
			p.spares.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(spareReaderIdle)
		} else {
			idle.Reset(spareReaderIdle)
		}
		var ok bool
		select {
		case c, ok = <-p.spare:
		case <-idle.C:
		case <-p.done:
		}
		p.spares.Add(-1)
		if !ok {
			return
		}
	}
}

// watch registers c's socket (again, when rearm) for one report; the
// caller must not be reading it any more. r is the caller's scratch.
func (p *poller) watch(c *conn, r *rawIO, rearm bool) error {
	op := unix.EPOLL_CTL_ADD
	if rearm {
		op = unix.EPOLL_CTL_MOD
	}
	sock, err := rawConn(c.nc)
	if err != nil {
		return err
	}
	// Both descriptors are held through Control, so neither can be closed
	// and reused by another file meanwhile: a socket closed first makes
	// this fail instead.
	r.sock, r.op, r.err = sock, op, nil
	r.ev = unix.EpollEvent{Events: pollEvents}
	setEventConn(&r.ev, c.id)
	err = p.raw.Control(r.onEpoll)
	r.sock = nil
	if err == nil {
		err = r.err
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

// rawIO is one goroutine's scratch for non-blocking socket calls: the read
// buffer, the results, and the callbacks RawConn takes, bound once, so that
// a read, a write or an epoll_ctl allocates nothing. Servers pool them
// (Server.rawIOs).
type rawIO struct {
	buf [readBufSize]byte

	p    []byte // what readFd reads into
	n    int
	err  error
	sock syscall.RawConn // while ctl runs
	ep   uintptr         // the epoll descriptor, while ctl runs
	op   int             // EPOLL_CTL_ADD or _MOD, while ctl runs
	ev   unix.EpollEvent

	iovecs          [iovMax]unix.Iovec // what writevNow writes; see rawwrite_linux.go
	msg             unix.Msghdr        // and how it hands them to sendmsg
	readFd          func(uintptr) bool
	onEpoll, onSock func(uintptr)
}

func newRawIO() *rawIO {
	r := &rawIO{}
	r.readFd, r.onEpoll, r.onSock = r.read, r.ctlEpoll, r.ctlSock
	return r
}

// read tries once (EINTR aside) and reports done either way: nothing
// here parks; the poller waits instead.
func (r *rawIO) read(fd uintptr) bool {
	for {
		r.n, r.err = unix.Read(int(fd), r.p)
		if r.err != unix.EINTR {
			return true
		}
	}
}

func (r *rawIO) ctlEpoll(ep uintptr) {
	r.ep = ep
	if err := r.sock.Control(r.onSock); err != nil {
		r.err = err
	}
}

func (r *rawIO) ctlSock(fd uintptr) { r.err = unix.EpollCtl(int(r.ep), r.op, int(fd), &r.ev) }

// readNow reads what the socket holds into r.buf without waiting:
// errWouldBlock when nothing is there, 0 bytes at the peer's FIN.
func (r *rawIO) readNow(nc net.Conn) (int, error) {
	raw, err := rawConn(nc)
	if err != nil {
		return 0, err
	}
	r.p, r.n, r.err = r.buf[:], 0, nil
	err = raw.Read(r.readFd)
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case r.err == unix.EAGAIN:
		return 0, errWouldBlock
	case r.err != nil:
		return 0, r.err
	}
	return r.n, nil
}
