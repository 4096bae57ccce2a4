package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Broker is the PostgreSQL LISTEN/NOTIFY broker; it satisfies proxy.Broker.
// Create it with New: the zero value is not usable. All methods are safe for
// concurrent use. See the package documentation for the design.
type Broker struct {
	cfg        Config          // defaults applied; immutable
	log        *slog.Logger    // never nil; immutable
	listenCfg  *pgx.ConnConfig // the listening connection; immutable, copied per dial
	pool       *pgxpool.Pool   // NOTIFY; never the listening connection
	addr       string          // host:port, for messages; immutable
	rawChannel string          // the side channel's PostgreSQL name; immutable
	closing    context.Context // done once Close is called
	stopAll    context.CancelFunc
	closeOnce  sync.Once
	reconnects atomic.Uint64 // listening connections re-established after a loss

	// cbMu serialises calls into the hub (deliver and active). It is never
	// taken while mu is held.
	cbMu sync.Mutex

	// listening holds the channels LISTENed on the current connection.
	// Only Run's goroutine touches it.
	listening map[string]struct{}

	mu      sync.Mutex                     // guards following
	running bool                           // a Run call is active
	closed  bool                           // Close was called
	runDone chan struct{}                  // closed when the active Run returns
	want    map[string]struct{}            // streams the hub asked for
	byChan  map[string]map[string]struct{} // PostgreSQL channel -> wanted streams on it
	dirty   map[string]struct{}            // channels whose LISTEN state may have to change
	pending map[string]struct{}            // streams subscribed since their last active
	// waitCancel interrupts the listening connection's wait for a
	// notification, so new work is done at once; nil when not waiting.
	waitCancel context.CancelFunc
	// Health.
	up        bool      // the current connection has LISTENed for everything wanted
	everUp    bool      // up at some time during this Run
	healthErr error     // why the broker is not up; meaningful while !up
	lastOK    time.Time // last proof the listening connection works
	lostAt    time.Time // when a working connection was lost
}

// New checks cfg and returns a stopped broker. It does no IO: Run connects,
// and Publish's pool connects on first use. A nil logger discards logs.
// Call Close when done.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	listenCfg, poolCfg, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	b := &Broker{
		cfg:        cfg,
		log:        logger,
		listenCfg:  listenCfg,
		pool:       pool,
		addr:       net.JoinHostPort(listenCfg.Host, strconv.Itoa(int(listenCfg.Port))),
		rawChannel: Channel(cfg.ChannelPrefix, rawStream),
		listening:  map[string]struct{}{},
		want:       map[string]struct{}{},
		byChan:     map[string]map[string]struct{}{},
		dirty:      map[string]struct{}{},
		pending:    map[string]struct{}{},
	}
	b.closing, b.stopAll = context.WithCancel(context.Background())
	return b, nil
}

// Close stops Run (waiting for it to return) and closes the publishing
// pool. Publish fails afterwards. It must not be called from inside deliver
// or active. Calling it again does nothing.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.stopAll()
		b.mu.Lock()
		b.closed = true
		done := b.runDone
		b.mu.Unlock()
		if done != nil {
			<-done
		}
		b.pool.Close()
	})
	return nil
}

// channelOf returns the channel stream is LISTENed on, and false for a
// stream PostgreSQL cannot name, which travels on the side channel.
func (b *Broker) channelOf(stream string) (string, bool) {
	c := Channel(b.cfg.ChannelPrefix, stream)
	if c == "" || !isText(c) {
		return "", false
	}
	return c, true
}

// Subscribe records that the hub wants stream; Run LISTENs and reports it
// active. It never blocks and does no IO.
func (b *Broker) Subscribe(stream string) {
	b.mu.Lock()
	b.want[stream] = struct{}{}
	b.pending[stream] = struct{}{}
	if c, ok := b.channelOf(stream); ok {
		set := b.byChan[c]
		if set == nil {
			set = map[string]struct{}{}
			b.byChan[c] = set
		}
		set[stream] = struct{}{}
		b.dirty[c] = struct{}{}
	}
	b.wakeLocked()
	b.mu.Unlock()
}

// Unsubscribe records that the hub no longer needs stream; Run UNLISTENs
// its channel when no other wanted stream shares it. It never blocks and
// does no IO.
func (b *Broker) Unsubscribe(stream string) {
	b.mu.Lock()
	delete(b.want, stream)
	delete(b.pending, stream)
	if c, ok := b.channelOf(stream); ok {
		if set := b.byChan[c]; set != nil {
			delete(set, stream)
			if len(set) == 0 {
				delete(b.byChan, c)
			}
		}
		b.dirty[c] = struct{}{}
	}
	b.wakeLocked()
	b.mu.Unlock()
}

// wakeLocked interrupts the listening connection's wait, if it is waiting,
// so Run picks up new work. Cancelling a context does no IO.
func (b *Broker) wakeLocked() {
	if b.waitCancel != nil {
		b.waitCancel()
		b.waitCancel = nil
	}
}

// Publish sends payload to stream's channel with pg_notify, as Rails'
// NOTIFY does, on a pooled connection (never the listening one). It does
// not need Run. A payload of 8000 bytes or more fails with
// ErrPayloadTooLarge. A payload or stream name that is not UTF-8 or holds
// a NUL byte, which PostgreSQL text cannot carry, goes base64-encoded on
// cablecar's side channel instead: other cablecar nodes get it, Rails does
// not.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte) error {
	channel, text, err := b.message(stream, payload)
	if err != nil {
		return fmt.Errorf("postgres publish %q: %w", stream, err)
	}
	if b.closing.Err() != nil {
		return fmt.Errorf("postgres publish %q: %w", stream, ErrClosed)
	}
	err = b.notify(ctx, channel, text)
	if err != nil && pgconn.SafeToRetry(err) {
		// Nothing reached the server, e.g. a pooled connection the
		// server had closed: one more try on a fresh one.
		err = b.notify(ctx, channel, text)
	}
	if err != nil {
		return fmt.Errorf("postgres publish %q: %w", stream, describe(err, b.addr))
	}
	return nil
}

// notify runs pg_notify once.
func (b *Broker) notify(ctx context.Context, channel, payload string) error {
	_, err := b.pool.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload)
	return err
}

// message returns the channel and payload text Publish sends.
func (b *Broker) message(stream string, payload []byte) (channel, text string, err error) {
	channel, ok := b.channelOf(stream)
	text = string(payload)
	if !ok || !isText(text) {
		channel, text = b.rawChannel, encodeRaw(stream, payload)
		if len(text) > maxPayload {
			return "", "", fmt.Errorf("%w: %d bytes, which base64 for PostgreSQL makes %d; NOTIFY takes at most %d",
				ErrPayloadTooLarge, len(payload), len(text), maxPayload)
		}
		return channel, text, nil
	}
	if len(text) > maxPayload {
		return "", "", fmt.Errorf("%w: %d bytes; NOTIFY takes at most %d", ErrPayloadTooLarge, len(text), maxPayload)
	}
	return channel, text, nil
}

// Health returns nil while the listening connection is up, has LISTENed
// for every wanted stream and has proved itself within PingInterval plus
// PingTimeout. Otherwise the error says why, e.g. "postgres: connection
// refused by 127.0.0.1:5432 (is PostgreSQL running there?)".
func (b *Broker) Health(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.running:
		return ErrNotRunning
	case !b.up:
		return b.healthErr
	}
	if quiet := time.Since(b.lastOK); quiet > b.cfg.PingInterval+b.cfg.PingTimeout {
		return fmt.Errorf("postgres: listening connection to %s has not answered for %v", b.addr, quiet.Round(time.Second))
	}
	return nil
}

// Stats are counters since New, for metrics.
type Stats struct {
	// Reconnects counts listening connections re-established (every
	// stream LISTENed again) after a working one was lost.
	Reconnects uint64
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{Reconnects: b.reconnects.Load()}
}

// Reconnects returns Stats().Reconnects, for the reconnect metric.
func (b *Broker) Reconnects() uint64 { return b.reconnects.Load() }
