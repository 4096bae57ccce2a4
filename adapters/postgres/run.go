package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/outage"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// listenBatch is the most LISTEN or UNLISTEN statements sent in one round
// trip.
const listenBatch = 1000

// callbacks are Run's deliver and active.
type callbacks struct {
	deliver func(stream string, payload []byte)
	active  func(stream string)
}

// Run keeps one listening connection, LISTENs for every wanted stream and
// delivers their notifications until ctx is done or Close is called,
// reconnecting with backoff whenever the connection fails. It returns nil
// when stopped, ErrAlreadyRunning if another Run is active, or ErrClosed
// after Close. deliver and active are called from Run's goroutine, one call
// at a time; after Run returns neither is called again.
func (b *Broker) Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error {
	if deliver == nil || active == nil {
		return errors.New("postgres broker: Run needs deliver and active callbacks")
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.running:
		b.mu.Unlock()
		return ErrAlreadyRunning
	}
	done := make(chan struct{})
	b.running, b.runDone = true, done
	b.up, b.everUp, b.healthErr, b.lostAt = false, false, ErrNotConnected, time.Time{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running, b.runDone, b.up = false, nil, false
		b.mu.Unlock()
		close(done)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.closing, cancel)() // Close stops Run too
	cb := callbacks{deliver: deliver, active: active}
	outage.Retry(ctx, b.cfg.BackoffMin, b.cfg.BackoffMax,
		func(ctx context.Context) (bool, error) { return b.session(ctx, cb) }, b.noteFailure)
	return nil
}

// session connects, LISTENs for everything wanted and serves the
// connection until it fails or ctx is done. wasUp reports whether it got
// that far.
func (b *Broker) session(ctx context.Context, cb callbacks) (wasUp bool, err error) {
	conn, err := b.connect(ctx)
	if err != nil {
		b.setDown(err)
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
	}()
	clear(b.listening)
	err = b.exec(ctx, conn, "LISTEN "+quoteIdent(b.rawChannel))
	if err == nil {
		b.mu.Lock()
		for c := range b.byChan {
			b.dirty[c] = struct{}{}
		}
		for s := range b.want {
			b.pending[s] = struct{}{}
		}
		b.mu.Unlock()
		err = b.serve(ctx, conn, cb)
	}
	b.mu.Lock()
	wasUp = b.up
	b.up, b.waitCancel = false, nil
	b.mu.Unlock()
	if ctx.Err() == nil {
		b.setDown(err)
	}
	return wasUp, err
}

// connect opens the listening connection, bounded by connectTimeout unless
// the URL sets connect_timeout.
func (b *Broker) connect(ctx context.Context) (*pgx.Conn, error) {
	if b.listenCfg.ConnectTimeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	return pgx.ConnectConfig(ctx, b.listenCfg.Copy())
}

// serve applies subscription changes and waits for notifications, pinging
// the connection when nothing has proved it works for PingInterval.
func (b *Broker) serve(ctx context.Context, conn *pgx.Conn, cb callbacks) error {
	for {
		if err := b.apply(ctx, conn, cb); err != nil {
			return err
		}
		waitCtx, cancel := b.waitContext(ctx)
		if waitCtx == nil {
			// More work arrived meanwhile; first hand over what the
			// round trips just made brought along.
			b.drain(conn, cb)
			continue
		}
		n, err := conn.WaitForNotification(waitCtx)
		b.mu.Lock()
		b.waitCancel = nil
		b.mu.Unlock()
		cancel()
		if n != nil {
			b.touch()
			b.handle(n, cb)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case conn.IsClosed() || waitCtx.Err() == nil:
			return fmt.Errorf("wait for notification: %w", err)
		}
		// Checked on every turn, not only when a wait times out: a steady
		// stream of Subscribe calls interrupts every wait.
		if b.pingDue() {
			if err := b.ping(ctx, conn); err != nil {
				return err
			}
		}
	}
}

// drain delivers the notifications conn has already read, without IO: a
// wait on a done context returns those first.
func (b *Broker) drain(conn *pgx.Conn, cb callbacks) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		n, _ := conn.WaitForNotification(done)
		if n == nil {
			return
		}
		b.touch()
		b.handle(n, cb)
	}
}

// waitContext returns the context of the next wait for a notification,
// which Subscribe and Unsubscribe cancel and which ends when a ping is due,
// or nil when there is work to do first.
func (b *Broker) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dirty) > 0 || len(b.pending) > 0 {
		return nil, nil
	}
	waitCtx, cancel := context.WithDeadline(ctx, b.lastOK.Add(b.cfg.PingInterval))
	b.waitCancel = cancel
	return waitCtx, cancel
}

// pingDue reports whether nothing has proved the connection works for
// PingInterval.
func (b *Broker) pingDue() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Since(b.lastOK) >= b.cfg.PingInterval
}

// ping makes one round trip on the idle listening connection.
func (b *Broker) ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, b.cfg.PingTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	b.touch()
	return nil
}

// touch records that the listening connection just proved to work.
func (b *Broker) touch() {
	b.mu.Lock()
	b.lastOK = time.Now()
	b.mu.Unlock()
}

// exec runs sql on conn, bounded by PingTimeout: LISTEN and UNLISTEN
// answer at once, even a batch of them.
func (b *Broker) exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	ectx, cancel := context.WithTimeout(ctx, b.cfg.PingTimeout)
	defer cancel()
	_, err := conn.Exec(ectx, sql)
	return err
}

// apply brings the connection's LISTENs in line with the wanted streams,
// then reports active for every stream subscribed since its last active.
func (b *Broker) apply(ctx context.Context, conn *pgx.Conn, cb callbacks) error {
	b.mu.Lock()
	var listen, unlisten []string
	for c := range b.dirty {
		_, on := b.listening[c]
		switch wanted := len(b.byChan[c]) > 0; {
		case wanted && !on:
			listen = append(listen, c)
		case !wanted && on:
			unlisten = append(unlisten, c)
		}
	}
	clear(b.dirty)
	pending := make([]string, 0, len(b.pending))
	for s := range b.pending {
		pending = append(pending, s)
	}
	clear(b.pending)
	b.mu.Unlock()

	if err := b.execAll(ctx, conn, "UNLISTEN ", unlisten); err != nil {
		return err
	}
	for _, c := range unlisten {
		delete(b.listening, c)
	}
	if err := b.execAll(ctx, conn, "LISTEN ", listen); err != nil {
		return err
	}
	if len(listen) > 0 || len(unlisten) > 0 {
		b.touch()
	}
	b.activate(pending, cb)
	b.markUp()
	return nil
}

// execAll runs verb for every channel, listenBatch statements per round
// trip, and records LISTENs in b.listening. A statement the server refuses
// is logged and skipped; a broken connection is returned.
func (b *Broker) execAll(ctx context.Context, conn *pgx.Conn, verb string, channels []string) error {
	for len(channels) > 0 {
		batch := channels[:min(listenBatch, len(channels))]
		channels = channels[len(batch):]
		var sql strings.Builder
		for _, c := range batch {
			sql.WriteString(verb)
			sql.WriteString(quoteIdent(c))
			sql.WriteString(";")
		}
		err := b.exec(ctx, conn, sql.String())
		if err != nil && !conn.IsClosed() && ctx.Err() == nil && isServerRefusal(err) {
			// One bad statement aborts the whole batch: redo it one by
			// one so the others still happen.
			err = b.execEach(ctx, conn, verb, batch)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSpace(verb), err)
		}
		if verb == "LISTEN " {
			for _, c := range batch {
				b.listening[c] = struct{}{}
			}
		}
	}
	return nil
}

// execEach runs verb for each channel alone, logging and skipping the ones
// the server refuses (they stay out of b.listening, so never active).
func (b *Broker) execEach(ctx context.Context, conn *pgx.Conn, verb string, channels []string) error {
	for _, c := range channels {
		err := b.exec(ctx, conn, verb+quoteIdent(c))
		switch {
		case err == nil:
			if verb == "LISTEN " {
				b.listening[c] = struct{}{}
			}
		case isServerRefusal(err) && !conn.IsClosed():
			b.log.Warn("postgres refused a channel; its streams get no messages", "statement", strings.TrimSpace(verb), "channel", c, "err", err)
		default:
			return err
		}
	}
	return nil
}

// isServerRefusal reports whether err is the server refusing one
// statement, as opposed to the connection failing.
func isServerRefusal(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Severity == "ERROR"
}

// activate calls active for each stream still wanted and LISTENed (or
// carried by the side channel, LISTENed since the connection opened).
func (b *Broker) activate(streams []string, cb callbacks) {
	if len(streams) == 0 {
		return
	}
	b.cbMu.Lock()
	defer b.cbMu.Unlock()
	for _, s := range streams {
		b.mu.Lock()
		_, wanted := b.want[s]
		b.mu.Unlock()
		if !wanted {
			continue
		}
		if c, ok := b.channelOf(s); ok {
			if _, on := b.listening[c]; !on {
				continue
			}
		}
		cb.active(s)
	}
}

// markUp records the first complete apply of a connection: from now on
// Health is nil and the outage, if any, is over.
func (b *Broker) markUp() {
	b.mu.Lock()
	if b.up {
		b.mu.Unlock()
		return
	}
	b.up, b.lastOK = true, time.Now()
	reconnected, lostAt, streams := b.everUp, b.lostAt, len(b.want)
	b.everUp = true
	b.mu.Unlock()
	if reconnected {
		b.reconnects.Add(1)
		b.log.Info("postgres listening connection back; every stream LISTENed again",
			"streams", streams, "down_for", time.Since(lostAt).Round(time.Millisecond))
	}
}

// handle passes a notification to the hub.
func (b *Broker) handle(n *pgconn.Notification, cb callbacks) {
	if n.Channel == b.rawChannel {
		b.handleRaw(n.Payload, cb)
		return
	}
	var one [1]string
	streams := one[:0]
	b.mu.Lock()
	for s := range b.byChan[n.Channel] {
		streams = append(streams, s)
	}
	b.mu.Unlock()
	if len(streams) == 0 {
		return
	}
	payload := []byte(n.Payload)
	b.cbMu.Lock()
	for _, s := range streams {
		cb.deliver(s, payload)
	}
	b.cbMu.Unlock()
}

// handleRaw delivers a side-channel message, skipping a malformed one.
func (b *Broker) handleRaw(text string, cb callbacks) {
	stream, payload, err := decodeRaw(text)
	if err != nil {
		b.log.Warn("postgres: skipped a malformed message on cablecar's side channel", "channel", b.rawChannel, "err", err)
		return
	}
	b.mu.Lock()
	_, wanted := b.want[stream]
	b.mu.Unlock()
	if !wanted {
		return
	}
	b.cbMu.Lock()
	cb.deliver(stream, payload)
	b.cbMu.Unlock()
}

// setDown records err as the reason Health reports until the next
// connection is up.
func (b *Broker) setDown(err error) {
	b.mu.Lock()
	b.up = false
	b.healthErr = describe(err, b.addr)
	b.mu.Unlock()
}

// noteFailure logs why the listening connection is down: once when a
// working connection is lost (or the first one cannot be made), then only
// at debug level for each further attempt.
func (b *Broker) noteFailure(err error, wasUp bool, failures int, retryIn time.Duration) {
	reason := describe(err, b.addr)
	b.mu.Lock()
	first := !b.everUp && failures == 1
	if wasUp {
		b.lostAt = time.Now()
	}
	streams := len(b.want)
	b.mu.Unlock()
	msgs := outage.Messages{
		Lost:          "postgres listening connection lost; messages NOTIFYed until it is back are missed",
		CannotConnect: "postgres listening connection cannot connect; retrying",
		Retry:         "postgres reconnect failed",
	}
	msgs.Log(b.log, outage.Attempt{Reason: reason, WasUp: wasUp, First: first, Failures: failures, RetryIn: retryIn, Streams: streams})
}
