package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// client is one benchmark WebSocket. The worker that dials it writes its
// only frame (subscribe) before starting the reader, so the socket never
// has two writers; from then on its reader (a read loop, or a goroutine
// of its own) owns it.
type client struct {
	r      *runner
	n      int      // connection number, 0…Connections-1
	stream int64    // stream index: n mod Streams
	nc     net.Conn // nil once a read loop owns the socket (fd)
	slow   bool     // a --slow connection: small SO_RCVBUF and MSS (slowSocketControl)
	t      *tally   // where deliveries are counted: the runner's, or a read loop's
	fd     int      // the socket's descriptor, once a read loop owns it

	// Read buffer: frames are parsed in place, so reading allocates
	// nothing once buf is big enough for the largest frame.
	buf    []byte
	rd, wr int

	subSent   time.Duration // since run start; when subscribe went out
	confirmed bool
	lastSeq   int64
}

// readBufSize fits a few ordinary frames; larger frames grow the buffer.
const readBufSize = 1024

// Frame prefixes and suffixes of what an Action Cable server sends.
var (
	prefixIdentifier = []byte(`{"identifier":`)
	keyMessage       = []byte(`,"message":`)
	suffixConfirm    = []byte(`"type":"confirm_subscription"}`)
	suffixReject     = []byte(`"type":"reject_subscription"}`)
	prefixPing       = []byte(`{"type":"ping"`)
	prefixWelcome    = []byte(`{"type":"welcome"`)
	prefixDisconnect = []byte(`{"type":"disconnect"`)
	// AnyCable puts the type first in confirmations and rejections.
	prefixConfirm = []byte(`{"type":"confirm_subscription"`)
	prefixReject  = []byte(`{"type":"reject_subscription"`)
)

// errStop ends a reader without counting a failure (the run is closing).
var errStop = errors.New("stop")

// failure is a classified error: kind is the short code counted in the
// summary.
type failure struct {
	kind string
	err  error
}

func (f *failure) Error() string { return f.kind + ": " + f.err.Error() }

func fail(kind string, err error) error { return &failure{kind: kind, err: err} }

// dial connects, upgrades and waits for welcome.
func (c *client) dial(ctx context.Context, target string, src *net.TCPAddr, timeout time.Duration) error {
	netDial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if src != nil {
			d.LocalAddr = src // a nil *TCPAddr in the interface would not be nil
		}
		if c.slow {
			d.Control = slowSocketControl(slowRcvBuf, slowMSS)
		}
		return d.DialContext(ctx, network, addr)
	}
	d := ws.Dialer{Protocols: []string{"actioncable-v1-json"}, Timeout: timeout, NetDial: netDial}
	nc, br, hs, err := d.Dial(ctx, target)
	if err != nil {
		return fail(dialKind(err), err)
	}
	c.nc = nc
	c.buf = make([]byte, readBufSize)
	if br != nil { // frames that came with the handshake response
		n := br.Buffered()
		if n > len(c.buf) {
			c.buf = make([]byte, n)
		}
		c.wr, _ = br.Read(c.buf[:n])
		ws.PutReader(br)
	}
	if hs.Protocol != "actioncable-v1-json" {
		return fail("handshake", fmt.Errorf("server chose subprotocol %q, not actioncable-v1-json", hs.Protocol))
	}
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		op, p, err := c.next()
		if err != nil {
			if isTimeout(err) {
				return fail("welcome_timeout", fmt.Errorf("no welcome within %v", timeout))
			}
			return fail("welcome", err)
		}
		if op != byte(ws.OpText) {
			return fail("welcome", fmt.Errorf("opcode %d before welcome", op))
		}
		switch {
		case bytes.HasPrefix(p, prefixWelcome):
			return nc.SetReadDeadline(time.Time{})
		case bytes.HasPrefix(p, prefixPing):
		case bytes.HasPrefix(p, prefixDisconnect):
			return fail(disconnectKind(p), errors.New(string(p)))
		default:
			return fail("welcome", fmt.Errorf("unexpected frame before welcome: %.100s", p))
		}
	}
}

// subscribe sends the subscribe command for identifier.
func (c *client) subscribe(identifier string) error {
	cmd, _ := json.Marshal(struct {
		Command    string `json:"command"`
		Identifier string `json:"identifier"`
	}{"subscribe", identifier})
	c.subSent = c.r.since()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.r.cfg.DialTimeout))
	if err := ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewTextFrame(cmd))); err != nil {
		return fail("subscribe_write", err)
	}
	return c.nc.SetWriteDeadline(time.Time{})
}

// read handles frames until the socket fails or the run closes it.
func (c *client) read() error {
	for {
		op, p, err := c.next()
		if err != nil {
			return c.readFailed(err)
		}
		if err := c.handle(op, p); err != nil {
			return err
		}
	}
}

// readFailed is what a failed read means: a failure, unless the run is
// closing the socket.
func (c *client) readFailed(err error) error {
	if c.r.closing.Load() {
		return errStop
	}
	return fail("read", err)
}

// errPeerClosed: the server closed the socket without a close frame.
var errPeerClosed = errors.New("connection closed by the server")

// handleBuffered handles every whole frame in the buffer, then makes room
// for the next one.
func (c *client) handleBuffered() error {
	for {
		op, p, need, err := c.parse()
		if err != nil {
			return err
		}
		if need > 0 {
			c.makeRoom(need)
			return nil
		}
		if err := c.handle(op, p); err != nil {
			return err
		}
	}
}

// handle acts on one frame.
func (c *client) handle(op byte, p []byte) error {
	switch ws.OpCode(op) {
	case ws.OpText:
		return c.onText(p)
	case ws.OpClose:
		if c.r.closing.Load() {
			return errStop
		}
		code := -1
		if len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
		return fail("server_close", fmt.Errorf("close frame, code %d", code))
	case ws.OpPing, ws.OpPong:
		return nil
	default:
		return fail("protocol", fmt.Errorf("unexpected opcode %d", op))
	}
}

// readerDone counts how a connection's reading ended: a failure unless
// the run closed it.
func (c *client) readerDone(err error) {
	r := c.r
	if err == errStop {
		return
	}
	r.lost.Add(1)
	if !c.confirmed && (r.cfg.Scenario == ScenarioFanout || !r.cfg.NoSubscribe) {
		r.lostUnconfirmed.Add(1)
	}
	r.fail("", err)
}

// onText handles one text frame; the hot path is a message frame.
func (c *client) onText(p []byte) error {
	r := c.r
	switch {
	case bytes.HasPrefix(p, prefixIdentifier):
		// The identifier is a JSON string, so the first unescaped
		// ,"message": is the real key.
		if i := bytes.Index(p, keyMessage); i >= 0 && p[len(p)-1] == '}' {
			c.onMessage(p[i+len(keyMessage) : len(p)-1])
			return nil
		}
		switch {
		case bytes.HasSuffix(p, suffixConfirm):
			c.onConfirm()
		case bytes.HasSuffix(p, suffixReject):
			return errRejected
		default:
			r.unknown.Add(1)
		}
	case bytes.HasPrefix(p, prefixConfirm):
		c.onConfirm()
	case bytes.HasPrefix(p, prefixReject):
		return errRejected
	case bytes.HasPrefix(p, prefixPing):
		r.pings.Add(1)
	case bytes.HasPrefix(p, prefixDisconnect):
		return fail(disconnectKind(p), errors.New(string(p)))
	default:
		r.unknown.Add(1)
	}
	return nil
}

// errRejected is the failure of a subscription the server refused.
var errRejected = fail("rejected", fmt.Errorf("reject_subscription (does the server have the route %s?)", ServerRoute))

// onConfirm counts the subscription's confirmation, once.
func (c *client) onConfirm() {
	if c.confirmed {
		return
	}
	c.confirmed = true
	c.r.subLat.record(c.r.since() - c.subSent)
	c.r.subscribed.Add(1)
}

// onMessage takes one broadcast payload: {"cbt":…,"r":…,"s":…,"seq":…}.
func (c *client) onMessage(m []byte) {
	r := c.r
	now := r.since()
	st, ok := parseStamp(m)
	if !ok || st.run != r.runID {
		r.foreign.Add(1) // not from this run: someone else publishes here
		return
	}
	t := c.t
	t.lat.record(now - time.Duration(st.at))
	t.delivered.Add(1)
	if st.stream != c.stream {
		r.misrouted.Add(1)
	}
	if st.seq <= c.lastSeq {
		r.outOfOrder.Add(1)
	} else {
		c.lastSeq = st.seq
	}
	if st.seq >= 0 && st.seq < int64(len(r.rounds)) {
		t.countRound(r, st.seq)
	}
}

// next returns the next frame; p aliases the read buffer and is valid
// until the following call.
func (c *client) next() (op byte, p []byte, err error) {
	for {
		op, p, need, err := c.parse()
		if err != nil || need == 0 {
			return op, p, err
		}
		c.makeRoom(need)
		n, err := c.nc.Read(c.buf[c.wr:])
		c.wr += n
		if err != nil && n == 0 {
			return 0, nil, err
		}
	}
}

// makeRoom makes the buffer hold need bytes from rd, moving what is
// unread to the front, or into a bigger buffer.
func (c *client) makeRoom(need int) {
	if c.rd == c.wr {
		c.rd, c.wr = 0, 0
	}
	if need > len(c.buf)-c.rd {
		buf := c.buf
		if need > len(buf) {
			buf = make([]byte, max(need, 2*len(buf)))
		}
		c.wr = copy(buf, c.buf[c.rd:c.wr])
		c.rd, c.buf = 0, buf
	}
}

// parse takes one whole frame off the buffer, or says how many bytes from
// rd the next frame needs (need > 0).
func (c *client) parse() (op byte, p []byte, need int, err error) {
	b := c.buf[c.rd:c.wr]
	if len(b) < 2 {
		return 0, nil, 2, nil
	}
	if b[0]&0x80 == 0 {
		return 0, nil, 0, fail("protocol", errors.New("fragmented server frame (cablecar never fragments)"))
	}
	if b[1]&0x80 != 0 {
		return 0, nil, 0, fail("protocol", errors.New("masked server frame"))
	}
	hl, n := 2, int(b[1]&0x7f)
	switch n {
	case 126:
		hl = 4
		if len(b) < hl {
			return 0, nil, hl, nil
		}
		n = int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		hl = 10
		if len(b) < hl {
			return 0, nil, hl, nil
		}
		n64 := binary.BigEndian.Uint64(b[2:])
		if n64 > maxFrameSize {
			return 0, nil, 0, fail("protocol", fmt.Errorf("server frame of %d bytes", n64))
		}
		n = int(n64)
	}
	if len(b) < hl+n {
		return 0, nil, hl + n, nil
	}
	c.rd += hl + n
	return b[0] & 0x0f, b[hl : hl+n], 0, nil
}

// stamp is what every benchmark payload carries.
type stamp struct {
	at     int64 // nanoseconds since run start, at publish
	seq    int64 // round
	stream int64 // stream index
	run    int64 // run id
}

// appendPayload writes a benchmark message, padded to size bytes. Its
// keys are in sorted order and its numbers below 2^53, so the message
// survives a server that decodes and re-encodes it (AnyCable does) as
// well as one that forwards it verbatim (Rails, cablecar).
func appendPayload(b []byte, st stamp, size int) []byte {
	start := len(b)
	b = append(b, `{"cbt":`...)
	b = strconv.AppendInt(b, st.at, 10)
	rest := len(`,"r":,"s":,"seq":}`) + digits(st.run) + digits(st.stream) + digits(st.seq)
	if pad := size - (len(b) - start) - rest - len(`,"pad":""`); pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	b = append(b, `,"r":`...)
	b = strconv.AppendInt(b, st.run, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, st.stream, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, st.seq, 10)
	return append(b, '}')
}

// digits is the length of v in decimal (v >= 0).
func digits(v int64) int {
	n := 1
	for ; v >= 10; v /= 10 {
		n++
	}
	return n
}

// parseStamp reads the fields appendPayload writes, in its order.
func parseStamp(m []byte) (st stamp, ok bool) {
	var fields = [...]struct {
		key string
		dst *int64
	}{{`{"cbt":`, &st.at}, {`,"r":`, &st.run}, {`,"s":`, &st.stream}, {`,"seq":`, &st.seq}}
	for k, f := range fields {
		if k == 1 {
			m = skipPad(m)
		}
		if len(m) < len(f.key) || string(m[:len(f.key)]) != f.key {
			return st, false
		}
		m = m[len(f.key):]
		var v int64
		i := 0
		for ; i < len(m) && m[i] >= '0' && m[i] <= '9'; i++ {
			v = v*10 + int64(m[i]-'0')
		}
		if i == 0 {
			return st, false
		}
		*f.dst, m = v, m[i:]
	}
	return st, true
}

// skipPad steps over the ,"pad":"xx…" field when m starts with it.
func skipPad(m []byte) []byte {
	const key = `,"pad":"`
	if len(m) < len(key) || string(m[:len(key)]) != key {
		return m
	}
	for i := len(key); i < len(m); i++ {
		if m[i] == '"' {
			return m[i+1:]
		}
	}
	return m
}

// dialKind names why a dial or handshake failed, so limits are visible:
// no_free_port is the ephemeral port range, too_many_open_files is
// RLIMIT_NOFILE, timeout is often a full listen backlog.
func dialKind(err error) string {
	var se ws.StatusError
	switch {
	case errors.As(err, &se):
		return "handshake_http_" + strconv.Itoa(int(se))
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "dial_no_free_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "dial_too_many_open_files"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "dial_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "dial_reset"
	case isTimeout(err):
		return "dial_timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return "dial"
	}
	return "handshake"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// disconnectKind turns {"type":"disconnect","reason":"too_slow",…} into
// "disconnect_too_slow".
func disconnectKind(p []byte) string {
	var d struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(p, &d) != nil || d.Reason == "" {
		return "disconnect"
	}
	return "disconnect_" + d.Reason
}

func itoa(n int) string { return strconv.Itoa(n) }
