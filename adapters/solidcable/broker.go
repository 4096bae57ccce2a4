package solidcable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Solid Cable's trimming: each broadcast trims with probability
// trimChance/trimBatch, up to trimBatch rows (lib/solid_cable.rb,
// app/jobs/solid_cable/trim_job.rb).
const (
	trimBatch  = 100
	trimChance = 2
)

// maxConns bounds the broker's database connections.
const maxConns = 4

// Broker is the Solid Cable broker; it satisfies proxy.Broker. Create it
// with New: the zero value is not usable. All methods are safe for
// concurrent use. See the package documentation for the design.
type Broker struct {
	cfg    Config   // defaults applied; immutable
	db     database // immutable
	pool   *sql.DB
	log    *slog.Logger
	prefix string // ChannelPrefix + ":", or ""; immutable
	// trimRoll says whether this Publish trims; replaced by tests.
	trimRoll func() bool
	// afterPoll, when set by a test, is called by Run's goroutine after
	// each poll with its error.
	afterPoll func(error)

	closing   context.Context // done once Close is called
	stopAll   context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex // guards following
	running bool
	closed  bool
	runDone chan struct{} // closed when the active Run returns
	// want maps each stream the hub wants to the number of its latest
	// Subscribe; active is due once a poll started after that Subscribe
	// completes.
	want    map[string]uint64
	dirty   map[string]struct{} // streams touched since Run last looked
	subSeq  uint64
	lastOK  time.Time // when a poll last completed
	pollErr error     // why the last poll failed, nil after a success
	errKind errorClass

	stats counters
}

// counters are the Stats, kept as atomics so readers never take mu.
type counters struct {
	delivered, published, publishErrors, polls, pollErrors, recoveries atomic.Uint64
	pollNanos, lagNanos                                                atomic.Int64
}

// Stats are counters since New, for metrics.
type Stats struct {
	// Streams is the number of streams the hub wants now.
	Streams int
	// Delivered counts messages handed to deliver.
	Delivered uint64
	// Published and PublishErrors count Publish calls that succeeded and
	// failed.
	Published, PublishErrors uint64
	// Polls counts completed polls; PollErrors failed ones.
	Polls, PollErrors uint64
	// Reconnects counts recoveries: a poll that completed after one or
	// more failed.
	Reconnects uint64
	// PollTime is the time spent in polls, failed ones included: its rate
	// over Polls+PollErrors is the mean poll duration.
	PollTime time.Duration
	// Lag is how old the newest row of the last poll that delivered any
	// was when delivered, by its created_at: the polling interval, the
	// query and any backlog (0 until a row is delivered).
	Lag time.Duration
}

// New checks cfg and returns a stopped broker. It does no IO: Run polls. A
// nil logger discards logs. Call Close when done.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	db, err := parseURL(cfg.URL)
	if err := errors.Join(err, cfg.check()); err != nil {
		return nil, err
	}
	pool, err := sql.Open(db.driver, db.dsn)
	if err != nil {
		return nil, fmt.Errorf("solid_cable: open %s: %w", db.where, err)
	}
	return newBroker(cfg, db, pool, logger), nil
}

// newBroker returns a stopped broker over pool; cfg has its defaults.
func newBroker(cfg Config, db database, pool *sql.DB, logger *slog.Logger) *Broker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The poller holds one connection and Publish the others; a few are
	// plenty, and they keep the database's connection count low.
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	b := &Broker{
		cfg:   cfg,
		db:    db,
		pool:  pool,
		log:   logger,
		want:  map[string]uint64{},
		dirty: map[string]struct{}{},
		trimRoll: func() bool {
			return rand.Float64() < float64(trimChance)/trimBatch
		},
	}
	if cfg.ChannelPrefix != "" {
		b.prefix = cfg.ChannelPrefix + ":"
	}
	b.closing, b.stopAll = context.WithCancel(context.Background())
	return b
}

// Close stops Run (waiting for it to return) and closes the database
// connections. Publish fails afterwards. Calling it again returns the first
// result.
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
		b.closeErr = b.pool.Close()
	})
	return b.closeErr
}

// Subscribe records that the hub wants stream; Run's next poll covers it
// and reports it active. It never blocks and does no IO.
func (b *Broker) Subscribe(stream string) {
	b.mu.Lock()
	b.subSeq++
	b.want[stream] = b.subSeq
	b.dirty[stream] = struct{}{}
	b.mu.Unlock()
}

// Unsubscribe records that the hub no longer needs stream; its rows are
// no longer delivered. It never blocks and does no IO.
func (b *Broker) Unsubscribe(stream string) {
	b.mu.Lock()
	delete(b.want, stream)
	b.dirty[stream] = struct{}{}
	b.mu.Unlock()
}

// Publish inserts payload for stream as Solid Cable's broadcast does, so
// every listener of the table, cablecar or Rails, delivers it. It does not
// need Run. With Config.Trim it may then delete expired rows, as Solid
// Cable's autotrim does.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte) error {
	if b.closing.Err() != nil {
		return ErrClosed
	}
	if payload == nil {
		payload = []byte{} // the column is NOT NULL; nil would bind NULL
	}
	channel := b.prefix + stream
	created := time.Now().UTC().Format(timeLayout)
	if _, err := b.pool.ExecContext(ctx, b.db.insertQuery(), created, []byte(channel), payload, ChannelHash(channel)); err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("solid_cable publish %q: %w", stream, b.db.describe(err))
	}
	b.stats.published.Add(1)
	if b.cfg.Trim && b.trimRoll() {
		if _, err := b.trim(ctx); err != nil {
			b.log.Warn("solid_cable: trimming expired messages failed", "err", err)
		}
	}
	return nil
}

// trim deletes up to trimBatch rows older than MessageRetention and
// returns how many it deleted.
func (b *Broker) trim(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-b.cfg.MessageRetention).UTC().Format(timeLayout)
	res, err := b.pool.ExecContext(ctx, b.db.trimQuery(trimBatch), cutoff)
	if err != nil {
		return 0, b.db.describe(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Health returns nil when the last poll completed recently. Otherwise the
// error says why, e.g. "solid_cable: database unreachable (127.0.0.1:5432
// /app_cable): ... connection refused" or "solid_cable: table
// solid_cable_messages missing in ...: run bin/rails solid_cable:install
// ...".
func (b *Broker) Health(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.running:
		return ErrNotRunning
	case b.pollErr != nil:
		return b.pollErr
	case b.lastOK.IsZero():
		return ErrNotPolled
	}
	// A poll takes at most QueryTimeout, then waits one interval.
	if late := time.Since(b.lastOK); late > b.cfg.QueryTimeout+b.cfg.PollingInterval+time.Second {
		return fmt.Errorf("solid_cable: no poll of %s has completed for %v (database slow or stuck?)", b.db.where, late.Round(time.Millisecond))
	}
	return nil
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n := len(b.want)
	b.mu.Unlock()
	return Stats{
		Streams:       n,
		Delivered:     b.stats.delivered.Load(),
		Published:     b.stats.published.Load(),
		PublishErrors: b.stats.publishErrors.Load(),
		Polls:         b.stats.polls.Load(),
		PollErrors:    b.stats.pollErrors.Load(),
		Reconnects:    b.stats.recoveries.Load(),
		PollTime:      time.Duration(b.stats.pollNanos.Load()),
		Lag:           time.Duration(b.stats.lagNanos.Load()),
	}
}

// Reconnects returns Stats().Reconnects, for the reconnect metric.
func (b *Broker) Reconnects() uint64 { return b.stats.recoveries.Load() }
