package proxy

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// writerQueue is how many connections may wait for a writer. Past it, a
// connection gets a flusher goroutine of its own, as without the pool.
const writerQueue = 1 << 16

// writerPool is a fixed set of goroutines, one per core, that put queued
// frames on sockets. A connection with frames queued is scheduled once
// (conn.flushing); a writer takes its whole queue, writes what the socket
// accepts at once with one writev, and moves on. A socket that is full is
// left to a flusher goroutine of the connection's own, which may wait, so
// no writer ever waits on a slow client. Compared with a goroutine per
// flush, this starts no goroutine per frame, spreads one broadcast's
// writes over the cores, and batches the frames that pile up for a busy
// connection into one writev.
type writerPool struct {
	ch      chan *conn
	running atomic.Bool
}

func newWriterPool() *writerPool { return &writerPool{ch: make(chan *conn, writerQueue)} }

// schedule hands c, whose flusher role the caller has just taken, to a
// writer. It returns false when no writer runs or the queue is full; the
// caller then starts a flusher goroutine itself. It never blocks.
func (p *writerPool) schedule(c *conn) bool {
	if p == nil || !p.running.Load() {
		return false
	}
	select {
	case p.ch <- c:
		return true
	default:
		return false
	}
}

// run runs GOMAXPROCS writers until ctx is done. Connections scheduled
// after the writers stopped get a flusher goroutine each.
func (p *writerPool) run(ctx context.Context) {
	p.running.Store(true)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { p.work(ctx) })
	}
	<-ctx.Done()
	p.running.Store(false)
	wg.Wait()
	for {
		select {
		case c := <-p.ch:
			go c.flush()
		default:
			return
		}
	}
}

func (p *writerPool) work(ctx context.Context) {
	r := newRawIO()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-p.ch:
			c.flushNow(r)
		}
	}
}
