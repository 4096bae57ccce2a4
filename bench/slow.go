package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/auth"
)

// Slow subscribers (Config.Slow): connections that subscribe like the
// others and then never read again. The server must cut them off
// (CABLECAR_MAX_PENDING_BYTES, then too_slow) without the normal
// subscribers' latency moving; the fan-out figures are the normal
// subscribers' only.

// Socket options a slow connection sets before it connects, so that the
// kernels hold little of the backlog and the server's own queue (what
// --slow is about) fills after a few frames:
//
//   - slowRcvBuf is its SO_RCVBUF (Linux doubles it): the window it offers.
//   - slowMSS is the TCP_MAXSEG it advertises: an Ethernet-sized segment.
//     The server's kernel sizes a socket's send buffer from the segment
//     size; with loopback's 64 KiB segments it grows to several MiB
//     (tcp_wmem's maximum) per connection, which would hide the server's
//     queue behind the kernel's. An Internet client gets about 1460.
const (
	slowRcvBuf = 4096
	slowMSS    = 1460
)

// How the end of the run finds out what became of each slow connection: it
// reads what is waiting on the socket until the server's disconnect frame,
// the end of the socket, or slowQuiet without a byte (the server still
// holds the connection open), all within slowObserveMax.
const (
	slowQuiet      = time.Second
	slowObserveMax = 10 * time.Second
)

// Outcomes a slow connection can end the run with, besides
// "disconnect_<reason>" when the server's disconnect frame was read.
const (
	slowOpen   = "open"            // still connected: the server never gave up on it
	slowClosed = "closed_no_frame" // the socket ended without a disconnect frame reaching it
)

// SlowResult is what became of the slow connections. They are not in
// Connect, Fanout or Failures, except that a slow connection that could
// not connect or subscribe is a failure of kind slow_connect: the run then
// did not measure what it was asked to.
type SlowResult struct {
	Requested int   `json:"requested"`
	Confirmed int64 `json:"confirmed"` // subscribed, then stopped reading
	// RcvBufBytes and MSS are the SO_RCVBUF and TCP_MAXSEG each set
	// before connecting.
	RcvBufBytes int `json:"rcvbuf_bytes"`
	MSS         int `json:"mss"`
	// Disconnected counts the confirmed ones the server closed: its
	// disconnect frame was read after the run (Outcomes "disconnect_<reason>",
	// e.g. disconnect_too_slow), or the socket ended without one
	// ("closed_no_frame": closed after a write timeout, before the frame
	// could be sent).
	Disconnected int64 `json:"disconnected"`
	// StillOpen counts the ones the server never disconnected.
	StillOpen int64            `json:"still_open"`
	Outcomes  map[string]int64 `json:"outcomes"`
	// DrainedBytes is what the server had managed to send them (frame
	// payloads, read after the run).
	DrainedBytes int64 `json:"drained_bytes"`
}

// text is the summary line.
func (s *SlowResult) text() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.Outcomes)) {
		if k != slowOpen {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Outcomes[k]))
		}
	}
	by := ""
	if len(parts) > 0 {
		by = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("%d/%d subscribed, then stopped reading (SO_RCVBUF %d, MSS %d): %d disconnected by the server%s, %d still open; %s read after the run; not in the figures above",
		s.Confirmed, s.Requested, s.RcvBufBytes, s.MSS, s.Disconnected, by, s.StillOpen, kib(s.DrainedBytes/1024))
}

// connectSlow opens Config.Slow slow connections and waits for each one's
// confirmation. It returns the confirmed ones.
func (r *runner) connectSlow(ctx context.Context) []*client {
	n := r.cfg.Slow
	if n == 0 {
		return nil
	}
	r.setPhase("slow")
	mint, err := r.slowMinter()
	if err != nil {
		r.failN("slow_connect", int64(n), err)
		return nil
	}
	conns := make([]*client, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(r.cfg.Concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				c, err := r.dialSlow(ctx, j, mint)
				if err != nil {
					r.failN("slow_connect", 1, fmt.Errorf("slow connection %d: %w", j, err))
					continue
				}
				conns[j] = c
			}
		}()
	}
	for j := range n {
		work <- j
	}
	close(work)
	wg.Wait()
	return slices.DeleteFunc(conns, func(c *client) bool { return c == nil })
}

// slowMinter returns the URL for slow connection j: with a JWT secret, one
// token each, like the normal connections.
func (r *runner) slowMinter() (func(j int, stream string) (string, error), error) {
	if r.cfg.JWTSecret == "" {
		return func(int, string) (string, error) { return r.cfg.URL, nil }, nil
	}
	a, err := auth.New(auth.Config{JWTSecret: r.cfg.JWTSecret, StreamsClaim: r.cfg.StreamsClaim})
	if err != nil {
		return nil, fmt.Errorf("jwt-secret: %w", err)
	}
	sep := "?"
	if strings.Contains(r.cfg.URL, "?") {
		sep = "&"
	}
	return func(j int, stream string) (string, error) {
		tok, err := a.Mint("bench-slow-"+itoa(j), []string{stream}, r.cfg.Timeout+time.Hour)
		if err != nil {
			return "", err
		}
		return r.cfg.URL + sep + "token=" + url.QueryEscape(tok), nil
	}, nil
}

// dialSlow connects slow connection j with a small receive buffer,
// subscribes it and reads until the confirmation; nothing reads it after.
func (r *runner) dialSlow(ctx context.Context, j int, mint func(int, string) (string, error)) (*client, error) {
	stream := j % r.cfg.Streams
	target, err := mint(j, r.streams[stream])
	if err != nil {
		return nil, err
	}
	c := &client{r: r, n: -1, stream: int64(stream), lastSeq: -1, slow: true, t: &r.tally}
	var src *net.TCPAddr
	if len(r.sources) > 0 {
		src = r.sources[j%len(r.sources)]
	}
	err = c.dial(ctx, target, src, r.cfg.DialTimeout)
	if err == nil {
		err = c.subscribe(expand(r.cfg.Identifier, stream))
	}
	if err == nil {
		err = c.awaitConfirm(r.cfg.DrainTimeout)
	}
	if err != nil {
		if c.nc != nil {
			c.nc.Close()
		}
		return nil, err
	}
	return c, nil
}

// awaitConfirm reads frames until confirm_subscription, without touching
// the run's counters.
func (c *client) awaitConfirm(timeout time.Duration) error {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		op, p, err := c.next()
		if err != nil {
			if isTimeout(err) {
				return fail("confirm_timeout", fmt.Errorf("no confirmation within %v", timeout))
			}
			return fail("read", err)
		}
		switch {
		case op != byte(ws.OpText):
		case bytes.HasPrefix(p, prefixIdentifier) && bytes.HasSuffix(p, suffixConfirm):
			return nil
		case bytes.HasPrefix(p, prefixIdentifier) && bytes.HasSuffix(p, suffixReject):
			return fail("rejected", errors.New("reject_subscription"))
		case bytes.HasPrefix(p, prefixDisconnect):
			return fail(disconnectKind(p), errors.New(string(p)))
		}
	}
}

// observeSlow finds out, after the fan-out, which slow connections the
// server disconnected, then closes them all.
func (r *runner) observeSlow(conns []*client) *SlowResult {
	if r.cfg.Slow == 0 {
		return nil
	}
	res := &SlowResult{Requested: r.cfg.Slow, Confirmed: int64(len(conns)), RcvBufBytes: slowRcvBuf, MSS: slowMSS, Outcomes: map[string]int64{}}
	until := time.Now().Add(slowObserveMax)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome, n := c.drainSlow(until)
			if tc, ok := c.nc.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.nc.Close()
			mu.Lock()
			defer mu.Unlock()
			res.Outcomes[outcome]++
			res.DrainedBytes += n
		}()
	}
	wg.Wait()
	res.StillOpen = res.Outcomes[slowOpen]
	res.Disconnected = res.Confirmed - res.StillOpen
	return res
}

// drainSlow reads what the server queued for a slow connection. Reading
// lets a server that has given up on it finish: its last write completes
// and the disconnect frame follows. It returns the outcome and the payload
// bytes read.
func (c *client) drainSlow(until time.Time) (outcome string, n int64) {
	for {
		deadline := time.Now().Add(slowQuiet)
		if until.Before(deadline) {
			deadline = until
		}
		_ = c.nc.SetReadDeadline(deadline)
		op, p, err := c.next()
		if err != nil {
			if isTimeout(err) {
				return slowOpen, n
			}
			return slowClosed, n // EOF or reset: the server closed it
		}
		n += int64(len(p))
		switch {
		case op == byte(ws.OpClose):
			return slowClosed, n
		case op == byte(ws.OpText) && bytes.HasPrefix(p, prefixDisconnect):
			return disconnectKind(p), n
		}
	}
}
