package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cablecar/cablecar/auth"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stateOpen    connState = iota // serving
	stateClosing                  // final frames queued; no more sends
	stateClosed                   // socket closed
)

// conn is one client WebSocket. At most one reader at a time works on it
// (see read.go); any goroutine may queue frames with send. Bytes reach the
// socket only through the single flusher, so frames never interleave.
//
// Every idle connection keeps one, so its fields are packed (times as
// int64, flags together): 200 bytes, a 208-byte allocation, where
// time.Time fields made 264 bytes in a 288-byte one.
type conn struct {
	id     uint64
	nc     net.Conn
	srv    *Server
	who    *auth.Identity // nil when authentication failed
	remote string
	since  int64 // Unix nanoseconds

	// Touched only by the reader that holds the connection (reading);
	// the hand-over between readers goes through mu.
	budget   float64       // command budget (token bucket)
	budgetAt time.Duration // when budget was last refilled, on srv.clock; 0: never
	rd       *readState    // nil unless a frame or message is incomplete

	// fd is nc's descriptor for the writer pool's raw writes (see
	// rawFD); placed here, it fills what would be padding.
	fd rawFD

	mu        sync.Mutex // guards following
	state     connState
	flushing  bool     // a flusher goroutine is running
	closeDone bool     // the flusher closes the socket when the queue drains
	reading   bool     // a reader holds the connection; see read.go
	released  bool     // end has run or is running
	ext       bool     // actioncable-v1-ext-json; immutable; in padding, its state in Server.sessions/hists
	queue     [][]byte // whole frames waiting for the flusher
	pending   int      // bytes in queue
	reason    string   // why the connection is closing
	subs      map[string]*subscription
	internal  *subscription // action_cable/<id>, nil without an identifier

	// Owned by the running flusher (one at a time).
	wbufs    net.Buffers // the batch being written; a field so it does not escape per write
	deadline int64       // the write deadline last set, Unix nanoseconds
}

// send queues frame for the client. It never blocks: when the client
// already has MaxPendingBytes waiting, it is disconnected as too_slow.
// Frames for a closing connection are dropped and counted.
func (c *conn) send(frame []byte) { c.srv.writers.submit(c.sendBatched(frame, nil)) }

// sendBatched is send for a fan-out: a connection that needs a writer
// joins b (nil: a new batch) instead of going to the pool alone. It
// returns the batch to add to next; the caller submits the last one
// (writerPool.submit).
func (c *conn) sendBatched(frame []byte, b *flushBatch) *flushBatch {
	c.mu.Lock()
	claimed := c.queueLocked(frame)
	c.mu.Unlock()
	if claimed {
		b = c.srv.writers.add(b, c)
	}
	return b
}

// queueLocked queues frame and reports whether the caller took the
// flusher role and must hand c to a writer. A frame for a closing
// connection is dropped; one past MaxPendingBytes cuts the client off.
func (c *conn) queueLocked(frame []byte) (claimed bool) {
	if c.state != stateOpen {
		c.srv.stats.DroppedClosed.Add(1)
		if h := c.srv.hooks.Dropped; h != nil {
			h("closed", 1)
		}
		return false
	}
	if c.pending+len(frame) > c.srv.cfg.MaxPendingBytes {
		c.srv.stats.DisconnectsSlow.Add(1)
		c.srv.stats.DroppedClosed.Add(1)
		if h := c.srv.hooks.Dropped; h != nil {
			h("too_slow", len(c.queue)+1)
		}
		// What is queued will never be read in time; say why instead.
		c.queue, c.pending = nil, 0
		c.finishLocked("too_slow", frameDisconnectTooSlow, frameCloseNormal)
		return false
	}
	c.queue = append(c.queue, frame)
	c.pending += len(frame)
	claimed = !c.flushing
	c.flushing = true
	return claimed
}

// startFlushLocked makes sure a writer will take the queue: a writer of
// the pool, or a flusher goroutine of this connection's own.
func (c *conn) startFlushLocked() {
	if c.flushing {
		return
	}
	c.flushing = true
	c.srv.writers.schedule(c)
}

// finish queues the final frames, then the flusher closes the socket.
func (c *conn) finish(reason string, frames ...[]byte) {
	c.mu.Lock()
	c.finishLocked(reason, frames...)
	c.mu.Unlock()
}

func (c *conn) finishLocked(reason string, frames ...[]byte) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.reason = reason
	c.closeDone = true
	for _, f := range frames {
		c.queue = append(c.queue, f)
		c.pending += len(f)
	}
	c.startFlushLocked()
}

// flush writes the queue in batches, one writev per batch, waiting for the
// socket as long as the write deadline allows. It exits when the queue is
// empty.
func (c *conn) flush() {
	var done [][]byte // the last batch written, handed back as the next queue
	for {
		batch, ok := c.nextBatch(done)
		if !ok {
			return
		}
		c.refreshDeadline()
		c.wbufs = batch
		_, err := c.wbufs.WriteTo(c.nc)
		c.wbufs = nil
		clear(batch) // drop the frames; the array may be reused
		if err != nil {
			c.writeFailed(err)
			return
		}
		done = batch
	}
}

// flushNow is flush for a writer of the pool, which must not wait on one
// socket: it writes what the socket takes at once and hands the rest to a
// flusher goroutine, which stays the connection's only writer.
func (c *conn) flushNow(r *rawIO) {
	var done [][]byte
	for {
		batch, ok := c.nextBatch(done)
		if !ok {
			return
		}
		n, err := r.writevNow(c.fd, batch)
		if err != nil && !errors.Is(err, errWouldBlock) {
			clear(batch)
			c.writeFailed(err)
			return
		}
		if rest := unwritten(batch, n); len(rest) > 0 {
			c.requeueFront(rest)
			go c.flush()
			return
		}
		clear(batch)
		done = batch
	}
}

// nextBatch takes the queue for writing and hands done's array back as the
// next queue (double-buffering: a busy connection queues without
// allocating; large arrays are let go, so an idle connection holds none).
// With nothing queued, or the socket closed, it gives up the flusher role
// instead, closing the socket if the final frames were asked for, and
// reports false.
func (c *conn) nextBatch(done [][]byte) ([][]byte, bool) {
	c.mu.Lock()
	batch := c.queue
	if len(batch) == 0 || c.state == stateClosed {
		c.flushing = false
		if batch == nil && cap(done) > 0 && cap(done) <= maxSpareFrames && c.state == stateOpen {
			c.queue = done[:0] // an empty queue that keeps its small array
		}
		closeNow := c.closeDone && c.state != stateClosed
		if closeNow {
			c.state = stateClosed
		}
		c.mu.Unlock()
		if closeNow {
			c.nc.Close()
			c.socketClosed()
		}
		return nil, false
	}
	c.queue, c.pending = nil, 0
	if cap(done) > 0 && cap(done) <= maxSpareFrames {
		c.queue = done[:0]
	}
	c.mu.Unlock()
	return batch, true
}

// requeueFront puts frames not yet written back ahead of whatever was
// queued meanwhile, so frames never reorder.
func (c *conn) requeueFront(rest [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range rest {
		c.pending += len(f)
	}
	c.queue = append(rest, c.queue...)
}

// unwritten returns what of batch is left after n bytes were written: the
// frames not reached, the first of them cut where the write stopped.
func unwritten(batch [][]byte, n int) [][]byte {
	for i, f := range batch {
		if n < len(f) {
			rest := batch[i:]
			rest[0] = f[n:]
			return rest
		}
		n -= len(f)
	}
	return nil
}

// maxSpareFrames bounds the queue array a connection keeps for reuse.
const maxSpareFrames = 16

// refreshDeadline keeps a write deadline between WriteTimeout/2 and
// WriteTimeout ahead. Resetting it on every flush costs a timer update per
// frame on the fan-out path; a stuck client is cut off within WriteTimeout
// all the same.
func (c *conn) refreshDeadline() {
	now := time.Now()
	if now.Add(c.srv.cfg.WriteTimeout/2).UnixNano() < c.deadline {
		return
	}
	d := now.Add(c.srv.cfg.WriteTimeout)
	c.deadline = d.UnixNano()
	c.nc.SetWriteDeadline(d)
}

// writeFailed ends a connection whose socket refused a write: the peer is
// gone or too slow. It is the client's doing, so it logs at debug.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = "write_failed"
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.reason = "write_timeout"
		}
	}
	c.state = stateClosed
	c.flushing = false
	c.queue, c.pending = nil, 0
	c.mu.Unlock()
	c.nc.Close()
	c.debug("write failed", "err", err)
	c.socketClosed()
}

// confirm sends confirm_subscription for sub unless it was unsubscribed or
// the connection is closing meanwhile.
func (c *conn) confirm(sub *subscription) {
	if sub.internal {
		return // not the client's: no frame
	}
	c.mu.Lock()
	live := c.subs[sub.identifier] == sub && c.state == stateOpen
	claimed := false
	answer := false
	if live && c.ext {
		hs := c.srv.hist(sub)
		answer = hs != nil && hs.req != nil
	}
	if live {
		sub.confirmed = true
		if !sub.restored { // a restored session's welcome said so
			claimed = c.queueLocked(identifierFrame(sub.quoted, "confirm_subscription"))
		}
	}
	info := c.infoLocked()
	c.mu.Unlock()
	if claimed {
		c.srv.writers.schedule(c)
	}
	if live {
		c.srv.stats.SubsConfirmed.Add(1)
		if h := c.srv.hooks.Confirmed; h != nil {
			h(info, sub.channel)
		}
		c.info("subscription confirmed", "channel", sub.channel, "identifier", sub.identifier, "streams", sub.streams)
		if r := c.srv.replayer; r != nil && r.Replays(sub.channel) {
			go c.replay(sub) // may wait on the store: never on the hub's path
		}
		if answer {
			go c.answerHistory(sub) // reads the history store
		}
	}
}

// reject sends reject_subscription for identifier and logs why.
func (c *conn) reject(identifier, channel string, why error) {
	c.srv.stats.SubsRejected.Add(1)
	c.send(identifierFrame(quoteIdentifier(identifier), "reject_subscription"))
	reason := rejectReason(why)
	c.info("subscription rejected: "+why.Error(), "channel", channel, "identifier", identifier, "reason", reason)
	if h := c.srv.hooks.Rejected; h != nil {
		h(c.snapshot(), channel, identifier, reason, why.Error())
	}
}

// release removes every subscription from the hub; run once, by end.
func (c *conn) release() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	internal := c.internal
	c.internal = nil
	c.mu.Unlock()
	if internal != nil {
		c.srv.hub.unsubscribe(internal)
	}
	for _, sub := range subs {
		c.srv.hub.unsubscribe(sub)
		c.ended(sub)
		c.forgetHist(sub)
	}
	c.saveSession(subs)
}

// ended tells the observer a confirmed subscription is over.
func (c *conn) ended(sub *subscription) {
	c.mu.Lock()
	confirmed := sub.confirmed
	info := c.infoLocked()
	c.mu.Unlock()
	if h := c.srv.hooks.Unsubscribed; h != nil && confirmed {
		h(info, sub.channel)
	}
}

// snapshot describes the connection for observers and listings.
func (c *conn) snapshot() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infoLocked()
}

func (c *conn) infoLocked() ConnInfo {
	return ConnInfo{ID: c.id, User: c.user(), Remote: c.remote, Since: time.Unix(0, c.since), Subscriptions: len(c.subs)}
}

func (c *conn) user() string {
	if c.who == nil {
		return "unauthenticated"
	}
	return c.who.String()
}

// closeSocket closes the socket unless the flusher is still writing final
// frames (it closes it itself when done).
func (c *conn) closeSocket(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	if c.state == stateOpen {
		c.state = stateClosing
	}
	closeNow := !c.flushing && c.state != stateClosed
	if closeNow {
		c.state = stateClosed
	} else {
		c.closeDone = true
	}
	c.mu.Unlock()
	if closeNow {
		c.nc.Close()
		c.socketClosed()
	}
}

// forceClose closes the socket now, for a drain that gave up waiting. A
// writer still holding the socket may be in a raw write on its
// descriptor, so the socket is shut down instead of closed under it: the
// write fails, and the writer closes it.
func (c *conn) forceClose() {
	c.closeSocket("shutdown_timeout")
	shutdownSocket(c.nc)
}

func (c *conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func (c *conn) logAttrs(level slog.Level, msg string, args ...any) {
	l := c.srv.log
	if !l.Enabled(context.Background(), level) {
		return
	}
	attrs := append([]any{"conn", c.id, "user", c.user(), "remote", c.remote}, args...)
	l.Log(context.Background(), level, msg, attrs...)
}

func (c *conn) info(msg string, args ...any)  { c.logAttrs(slog.LevelInfo, msg, args...) }
func (c *conn) debug(msg string, args ...any) { c.logAttrs(slog.LevelDebug, msg, args...) }
