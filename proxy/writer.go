package proxy

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// rawFD is a socket's descriptor plus one, so that the zero value means
// none (descriptor 0 can be a socket when stdin is closed). The pool's
// raw writes use it; see socketFD.
type rawFD int32

// writerQueue is how many batches may wait for a writer. Past it, each
// connection of a batch gets a flusher goroutine of its own, as without
// the pool.
const writerQueue = 1 << 10

// flushBatchSize is how many connections go to a writer together: one
// channel operation per 64 connections on the fan-out path, where one per
// connection was 3% of its CPU, while the first writes of a broadcast
// still start after a few microseconds.
const flushBatchSize = 64

// flushBatch is connections, each with its flusher role taken, on their
// way to a writer of the pool.
type flushBatch struct {
	n     int
	conns [flushBatchSize]*conn
}

// writerPool is a fixed set of goroutines, one per core, that put queued
// frames on sockets. A connection with frames queued is scheduled once
// (conn.flushing); a writer takes its whole queue, writes what the socket
// accepts at once with one writev, and moves on. A socket that is full is
// left to a flusher goroutine of the connection's own, which may wait, so
// no writer ever waits on a slow client. Compared with a goroutine per
// flush, this starts no goroutine per frame, spreads one broadcast's
// writes over the cores, and batches the frames that pile up for a busy
// connection into one writev. A nil *writerPool runs nothing: every
// connection gets a flusher goroutine.
type writerPool struct {
	ch      chan *flushBatch
	batches sync.Pool // spare *flushBatch
	running atomic.Bool
}

func newWriterPool() *writerPool {
	p := &writerPool{ch: make(chan *flushBatch, writerQueue)}
	p.batches.New = func() any { return new(flushBatch) }
	return p
}

// schedule hands c, whose flusher role the caller has just taken, to a
// writer, or else to a flusher goroutine of its own. It never blocks.
func (p *writerPool) schedule(c *conn) { p.submit(p.add(nil, c)) }

// add puts c, whose flusher role the caller has just taken, in b (nil:
// a new batch) and submits b once full. It returns the batch to add to
// next, nil when b was submitted; the caller submits the last one.
func (p *writerPool) add(b *flushBatch, c *conn) *flushBatch {
	if b == nil {
		if p == nil {
			b = new(flushBatch)
		} else {
			b = p.batches.Get().(*flushBatch)
		}
	}
	b.conns[b.n] = c
	b.n++
	if b.n == len(b.conns) {
		p.submit(b)
		return nil
	}
	return b
}

// submit hands b's connections to a writer, or, when no writer runs or
// the queue is full, starts a flusher goroutine for each. b may be nil.
// It never blocks.
func (p *writerPool) submit(b *flushBatch) {
	if b == nil {
		return
	}
	if p != nil && p.running.Load() && b.n > 0 {
		select {
		case p.ch <- b:
			return
		default:
		}
	}
	for _, c := range b.conns[:b.n] {
		go c.flush()
	}
	p.release(b)
}

func (p *writerPool) release(b *flushBatch) {
	clear(b.conns[:b.n])
	b.n = 0
	if p != nil {
		p.batches.Put(b)
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
		case b := <-p.ch:
			for _, c := range b.conns[:b.n] {
				go c.flush()
			}
			p.release(b)
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
		case b := <-p.ch:
			for _, c := range b.conns[:b.n] {
				c.flushNow(r)
			}
			p.release(b)
		}
	}
}
