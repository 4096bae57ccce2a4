package bench

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readLoops reads every connection with one epoll loop per core instead
// of a goroutine per connection. The load tool shares the machine with the
// server it measures, and a goroutine woken through the netpoller for
// every message cost it more CPU per delivery than the server spends:
// time the server then waits for, which shows up in its latency.
//
// Each loop owns its connections (connection number mod loops) and a
// tally of its own, so counting a delivery touches no shared cache line.
// Sockets are read with raw recvfrom calls: the loops are stopped before
// any socket is closed (runner.closeAll), so a descriptor never changes
// hands under a read.
type readLoops struct {
	loops []*readLoop
	conns []atomic.Pointer[client] // by connection number; publishes a client to its loop
	wg    sync.WaitGroup
}

// readLoop is one epoll set and the goroutine that serves it.
//
// The goroutine blocks in epoll_wait itself rather than parking in Go's
// netpoller on the epoll descriptor: nested, every message would also wake
// the netpoller's epoll set, work the server's write pays for on loopback.
type readLoop struct {
	r    *runner
	ls   *readLoops
	ep   int // the epoll set
	stop int // an eventfd in the set: written to stop the loop
	t    tally

	events [128]unix.EpollEvent
}

// newReadLoops starts one loop per core for up to conns connections. On
// error the caller reads with goroutines instead.
func newReadLoops(r *runner, conns int) (*readLoops, error) {
	ls := &readLoops{conns: make([]atomic.Pointer[client], conns)}
	for range runtime.GOMAXPROCS(0) {
		l, err := newReadLoop(r, ls)
		if err != nil {
			ls.stop()
			return nil, err
		}
		ls.loops = append(ls.loops, l)
	}
	for _, l := range ls.loops {
		ls.wg.Go(l.run)
	}
	return ls, nil
}

// stopEvent marks the stop eventfd's events (connection numbers are ≥ 0).
const stopEvent = -1

func newReadLoop(r *runner, ls *readLoops) (*readLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopEvent}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stop, &ev); err != nil {
		unix.Close(ep)
		unix.Close(stop)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &readLoop{r: r, ls: ls, ep: ep, stop: stop, t: tally{owned: true}}, nil
}

// tallies is the loops' tallies; none for a nil *readLoops.
func (ls *readLoops) tallies() []*tally {
	if ls == nil {
		return nil
	}
	ts := make([]*tally, len(ls.loops))
	for i, l := range ls.loops {
		ts[i] = &l.t
	}
	return ts
}

// add hands c, subscribed and with no reader yet, to its loop; it
// reports an error when c stays with the caller. Frames that came with
// the handshake are handled first, here.
//
// The loop reads a duplicate of the socket's descriptor and c.nc is
// closed: Go's netpoller then forgets the socket, which otherwise has a
// second epoll registration woken with every message it receives (and on
// loopback the server's write pays for that wakeup).
func (ls *readLoops) add(c *client) error {
	if c.n >= len(ls.conns) {
		return fmt.Errorf("connection %d past the read loops' %d", c.n, len(ls.conns))
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("connection %d has no descriptor", c.n)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	c.nc.Close() // the socket stays open through fd
	c.nc, c.fd = nil, fd
	if err := c.handleBuffered(); err != nil { // counted in the shared tally: the loop may be running
		c.readerDone(err)
		return nil
	}
	l := ls.loops[c.n%len(ls.loops)]
	c.t = &l.t
	ls.conns[c.n].Store(c)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(c.n)}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		ls.conns[c.n].Store(nil)
		c.readerDone(fail("read_loop", fmt.Errorf("epoll_ctl: %w", err)))
	}
	return nil
}

// resetSocket closes fd with SO_LINGER 0 (see runner.closeAll).
func resetSocket(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

// stop ends the loops and waits for them; their tallies stay. Sockets
// stay open: the caller closes them after.
func (ls *readLoops) stop() {
	if ls == nil {
		return
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0} // an eventfd counter increment
	for _, l := range ls.loops {
		if l.stop < 0 {
			return // stopped already
		}
		_, _ = unix.Write(l.stop, one)
	}
	ls.wg.Wait()
	for _, l := range ls.loops {
		unix.Close(l.ep)
		unix.Close(l.stop)
		l.ep, l.stop = -1, -1
	}
}

func (l *readLoop) run() {
	for {
		n, err := l.wait()
		if err != nil {
			l.r.fail("read_loop", fmt.Errorf("epoll_wait: %w", err))
			return
		}
		for i := range l.events[:n] {
			id := l.events[i].Fd
			if id == stopEvent {
				l.t.flushRounds(l.r)
				return
			}
			c := l.ls.conns[id].Load()
			if c == nil {
				continue
			}
			if err := c.drain(); err != nil {
				l.ls.conns[id].Store(nil)
				_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
				c.readerDone(err)
			}
		}
		l.t.flushRounds(l.r)
	}
}

func (l *readLoop) wait() (int, error) {
	for {
		n, err := unix.EpollWait(l.ep, l.events[:], -1)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// drain reads what c's socket holds, without waiting, and handles every
// whole frame. A read that does not fill the buffer emptied the socket,
// so it stops there rather than paying a call to learn so: sockets are
// registered edge-triggered, and bytes that arrive after that read are a
// new edge, reported again. (Level-triggered, epoll polled every socket
// once more after reporting it, a tenth of the load tool's CPU.)
func (c *client) drain() error {
	for {
		space := c.buf[c.wr:]
		n, errno := recvNow(c.fd, space)
		switch {
		case errno == unix.EAGAIN:
			return nil
		case errno != 0:
			return c.readFailed(os.NewSyscallError("recvfrom", errno))
		case n == 0:
			return c.readFailed(errPeerClosed)
		}
		c.wr += n
		if err := c.handleBuffered(); err != nil {
			return err
		}
		if n < len(space) {
			return nil
		}
	}
}

// recvNow is one raw, non-blocking recvfrom: the loop only reads sockets
// epoll reported, and telling the scheduler about a call that returns in
// microseconds costs more than its user-space part.
func recvNow(fd int, p []byte) (int, unix.Errno) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
			unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}
