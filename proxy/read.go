package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/gobwas/ws"
)

// Reading a connection
//
// Where the poller runs (Linux), an idle connection has no goroutine: its
// socket waits in the poller's epoll set, and each time bytes arrive a
// short-lived goroutine reads what is there (readReady), acts on the whole
// frames in it (consume) and hands the socket back to the poller. Elsewhere
// one goroutine per connection blocks in Read (readBlocking). Both feed the
// same parser, so the protocol rules are written once.
//
// Exactly one party at a time reads a connection: conn.reading says whether
// a reader holds it. Whoever ends the connection's life (end) is decided
// under conn.mu through conn.released: the reader when reading stops, or, for
// a socket closed while it waits in the poller, whoever closed it — nobody
// else would notice.

// readBufSize is the buffer a reader borrows (in a rawIO) for one
// readiness event; Action Cable commands are a few hundred bytes.
const readBufSize = 4 << 10

// readState is what a connection keeps between reads while a frame or a
// fragmented message is incomplete. It is nil otherwise, so an idle
// connection holds no read buffer.
type readState struct {
	partial []byte    // the start of a frame whose rest has not arrived
	msg     []byte    // the unmasked fragments of a message so far
	op      ws.OpCode // that message's opcode; 0 when no message is open
}

// consume acts on every whole frame in data, after any partial frame kept
// from the last read, exactly as a blocking reader would have, frame by
// frame. It reports false once the connection is closing and reading must
// stop. Frames are unmasked in place; nothing keeps data afterwards.
func (c *conn) consume(data []byte) bool {
	if c.rd != nil && len(c.rd.partial) > 0 {
		c.rd.partial = append(c.rd.partial, data...)
		data = c.rd.partial
	}
	for len(data) > 0 {
		n, ok := c.nextFrame(data)
		if !ok {
			return false
		}
		if n == 0 {
			break // the rest of this frame has not arrived yet
		}
		data = data[n:]
	}
	c.keepPartial(data)
	return true
}

// keepPartial keeps the bytes of an incomplete frame for the next read and
// drops the read state once nothing is pending.
func (c *conn) keepPartial(rest []byte) {
	if len(rest) > 0 {
		if c.rd == nil {
			c.rd = &readState{}
		}
		// rest may alias partial itself; append copies with memmove.
		c.rd.partial = append(c.rd.partial[:0], rest...)
		return
	}
	if c.rd == nil {
		return
	}
	c.rd.partial = nil
	if c.rd.op == 0 {
		c.rd = nil
	}
}

// nextFrame acts on the frame at the start of data. It returns the frame's
// length, or 0 when data holds only part of it, and false once reading must
// stop. A header is checked as soon as it is complete, before its payload
// arrives, so an oversized message is refused without reading it.
func (c *conn) nextFrame(data []byte) (int, bool) {
	h, hn, err := parseHeader(data)
	if err != nil {
		return 0, c.refuse(protocolError(err.Error()))
	}
	if hn == 0 {
		return 0, true
	}
	if err := c.checkHeader(h); err != nil {
		return 0, c.refuse(err)
	}
	end := hn + int(h.Length) // checkHeader bounded Length
	if len(data) < end {
		return 0, true
	}
	p := data[hn:end]
	ws.Cipher(p, h.Mask, 0)
	return end, c.onFrame(h, p)
}

// checkHeader applies the protocol's rules and the message size limit to a
// client frame header, in the order the blocking reader applied them.
func (c *conn) checkHeader(h ws.Header) error {
	if !h.Masked {
		return protocolError("client frame is not masked")
	}
	if h.Rsv != 0 {
		return protocolError("reserved bits set; no extension was negotiated")
	}
	if h.OpCode.IsControl() {
		if h.Length > 125 || !h.Fin {
			return protocolError("control frame too long or fragmented")
		}
		return nil
	}
	var open ws.OpCode
	var sofar int
	if c.rd != nil {
		open, sofar = c.rd.op, len(c.rd.msg)
	}
	switch {
	case !h.OpCode.IsData() && h.OpCode != ws.OpContinuation:
		return protocolError("unknown opcode " + strconv.Itoa(int(h.OpCode)))
	case h.OpCode == ws.OpContinuation && open == 0:
		return protocolError("continuation frame without a first frame")
	case h.OpCode != ws.OpContinuation && open != 0:
		return protocolError("new message inside a fragmented one")
	}
	if int64(sofar)+h.Length > int64(c.srv.cfg.MaxMessageSize) {
		return &closeError{frame: frameCloseTooBig, reason: "message_too_big",
			detail: fmt.Sprintf("message over CABLECAR_MAX_MESSAGE_SIZE (%d bytes)", c.srv.cfg.MaxMessageSize)}
	}
	return nil
}

// onFrame acts on one whole, unmasked frame: pings are answered through the
// flusher, a close ends reading, fragments are gathered until the message
// is whole.
func (c *conn) onFrame(h ws.Header, p []byte) bool {
	if h.OpCode.IsControl() {
		switch h.OpCode {
		case ws.OpPing:
			c.send(pongFrame(p))
		case ws.OpClose:
			c.finish("client_closed", frameCloseNormal)
			return false
		}
		return true
	}
	if h.Fin && h.OpCode != ws.OpContinuation {
		return c.onMessage(h.OpCode, p) // the usual case: one frame, no copy
	}
	if c.rd == nil {
		c.rd = &readState{}
	}
	if h.OpCode != ws.OpContinuation {
		c.rd.op = h.OpCode
	}
	c.rd.msg = append(c.rd.msg, p...)
	if !h.Fin {
		return true
	}
	op, msg := c.rd.op, c.rd.msg
	c.rd.op, c.rd.msg = 0, nil
	return c.onMessage(op, msg)
}

// onMessage runs one whole data message, charged to the command budget.
func (c *conn) onMessage(op ws.OpCode, msg []byte) bool {
	if !c.spend() {
		c.info("closing connection: more than CABLECAR_MAX_COMMAND_RATE commands per second", "reason", "command_rate")
		c.finish("command_rate", frameClosePolicy)
		return false
	}
	if op == ws.OpBinary {
		c.info("ignored a binary frame: Action Cable speaks text", "bytes", len(msg))
		return true
	}
	c.handle(msg)
	return true
}

// refuse closes the connection with err's close frame; it reports false,
// for reading to stop.
func (c *conn) refuse(err error) bool {
	ce := err.(*closeError)
	c.info("closing connection: "+ce.Error(), "reason", ce.reason)
	c.finish(ce.reason, ce.frame)
	return false
}

// parseHeader decodes the frame header at the start of b as
// ws.ReadHeader does, with the same errors. It returns the header's length,
// or 0 when b holds only part of it.
func parseHeader(b []byte) (ws.Header, int, error) {
	var h ws.Header
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	length := b[1] & 0x7f
	switch length {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.Masked {
		n += 4
	}
	if len(b) < n {
		return h, 0, nil
	}
	switch length {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		if b[2]&0x80 != 0 {
			return h, 0, ws.ErrHeaderLengthMSB
		}
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]))
	default:
		h.Length = int64(length)
	}
	if h.Masked {
		copy(h.Mask[:], b[n-4:n])
	}
	return h, n, nil
}

// startReading hands a new connection to the poller, or to a goroutine of
// its own where there is none. The upgrading goroutine, which held it so
// far, returns right after with its handshake-sized stack.
func (c *conn) startReading() {
	if p := c.srv.poller; p != nil {
		r := c.srv.rawIOs.Get().(*rawIO)
		c.park(p, r, false)
		c.srv.rawIOs.Put(r)
		return
	}
	go c.readBlocking()
}

// readReady is the reader the poller starts for a readable socket: it
// reads what is there without waiting, acts on it and hands the socket
// back.
func (c *conn) readReady(p *poller) {
	r := c.srv.rawIOs.Get().(*rawIO)
	defer c.srv.rawIOs.Put(r)
	if c.readAvailable(r) {
		c.park(p, r, true)
		return
	}
	c.readingDone()
}

// readAvailable reads and consumes until the socket has nothing more. It
// reports false once reading must stop.
func (c *conn) readAvailable(r *rawIO) bool {
	buf := r.buf[:]
	for {
		n, err := r.readNow(c.nc)
		switch {
		case errors.Is(err, errWouldBlock):
			return true
		case err != nil || n == 0: // n == 0: the peer's FIN
			c.closeSocket("client_gone")
			return false
		}
		if !c.consume(buf[:n]) {
			return false
		}
		if n < len(buf) {
			return true // drained; more will be reported
		}
	}
}

// park stops reading and gives the socket to the poller (again, when
// rearm). If that fails, the socket was usually closed meanwhile and the
// connection ends here, unless its closer ended it; otherwise (the poller
// stopped, say) a goroutine of its own reads it instead.
func (c *conn) park(p *poller, r *rawIO, rearm bool) {
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	err := p.watch(c, r, rearm)
	if err == nil || !c.claimRead() {
		return
	}
	c.mu.Lock()
	closed := c.state == stateClosed
	c.mu.Unlock()
	if closed {
		c.readingDone()
		return
	}
	c.debug("reading with a goroutine instead of the poller", "err", err)
	go c.readBlocking()
}

var (
	// errWouldBlock is readNow's "nothing to read now" and writevNow's
	// "no room now".
	errWouldBlock = errors.New("socket would block")
	// errNoPoller: this platform has no epoll.
	errNoPoller = errors.New("no epoll on this platform")
)

// readBlocking is the reader where the poller is not available: one
// goroutine per connection, parked in Read. Frames are handled on a
// short-lived goroutine (offLoop), so the parked one keeps a small stack.
func (c *conn) readBlocking() {
	buf := make([]byte, 1<<10)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			ok := false
			c.offLoop(func() { ok = c.consume(buf[:n]) })
			if !ok {
				break
			}
		}
		if err != nil {
			c.closeSocket("client_gone")
			break
		}
	}
	c.readingDone()
}

// offLoop runs fn on a short-lived goroutine and waits for it. Commands
// need a deep stack (JSON, authorization, logging); run on a parked
// reader, that stack would stay with every idle connection.
func (c *conn) offLoop(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// readingDone is the reader's last act: the connection ends unless a
// closer already ended it.
func (c *conn) readingDone() {
	c.mu.Lock()
	c.reading = false
	mine := !c.released
	c.released = true
	c.mu.Unlock()
	if mine {
		c.end()
	}
}

// claimRead makes the caller the connection's reader, unless the
// connection already ended.
func (c *conn) claimRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return false
	}
	c.reading = true
	return true
}

// socketClosed is called by whoever closed the socket. A connection that
// waits in the poller has no reader to notice, so the closer ends it.
func (c *conn) socketClosed() {
	c.mu.Lock()
	orphan := !c.reading && !c.released
	if orphan {
		c.released = true
	}
	c.mu.Unlock()
	if orphan {
		c.end()
	}
}

// end releases a connection whose reading is over: the hub, its
// subscriptions, the disconnected line and hook. It runs once.
func (c *conn) end() {
	c.srv.hub.removeConn(c)
	info := c.snapshot()
	c.release()
	c.closeSocket("client_gone")
	reason := c.closeReason()
	c.info("disconnected", "reason", reason)
	if h := c.srv.hooks.ConnClosed; h != nil {
		h(info, reason)
	}
	c.srv.conns.Done()
}
