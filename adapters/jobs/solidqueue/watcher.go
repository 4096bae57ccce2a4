package solidqueue

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Watcher polls Solid Queue's tables. It implements jobs.Watcher.
type Watcher struct {
	cfg Config
	log *slog.Logger
	src source
	db  *sql.DB
	d   dialect
	t   tables
	q   queries

	// Pacing only, not state: Poll waits out the interval since the last
	// round unless that round was cut short by a limit.
	lastPoll time.Time
	hurry    bool
}

var _ jobs.Watcher = (*Watcher)(nil)

// New checks cfg and opens the database lazily: a database that is down
// now is Poll's error to report, not New's.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	src, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(src.driver, src.dsn)
	if err != nil {
		return nil, fmt.Errorf("solid queue: open %s: %w", src.display, err)
	}
	d := postgres
	if src.driver == "sqlite" {
		d = sqlite
	}
	// One poller and the occasional doctor check: two connections do.
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	if log == nil {
		log = slog.Default()
	}
	t := newTables(cfg.TablePrefix)
	return &Watcher{
		cfg: cfg, log: log.With("backend", jobs.SolidQueue), src: src, db: db, d: d, t: t,
		q: newQueries(d, t, cfg.MaxArgsBytes, cfg.MaxErrorBytes, cfg.BatchSize),
	}, nil
}

// Backend implements jobs.Watcher.
func (w *Watcher) Backend() string { return jobs.SolidQueue }

// Close implements jobs.Watcher.
func (w *Watcher) Close() error { return w.db.Close() }

// round collects one poll's output.
type round struct {
	now     time.Time
	events  []jobs.Event
	skipped []jobs.Skip
	lag     time.Duration
	hurry   bool // a limit cut the round short
}

// cut notes that a stream stopped at a limit with its last event at.
func (r *round) cut(at time.Time) {
	r.hurry = true
	if at.IsZero() {
		return
	}
	r.lag = max(r.lag, r.now.Sub(at))
}

// Poll implements jobs.Watcher. On error the cursor given stays the one to
// retry with: nothing is half-applied.
func (w *Watcher) Poll(ctx context.Context, cur []byte) (jobs.Batch, error) {
	if err := w.pace(ctx); err != nil {
		return jobs.Batch{Cursor: cur}, err
	}
	w.lastPoll = time.Now()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RoundTimeout)
	defer cancel()
	if cur == nil {
		return w.startBatch(ctx)
	}
	c, err := decodeCursor(cur)
	if err != nil {
		// Only a bug or a foreign value gets here; looping on it would stop
		// the watcher for good, so start again from now.
		w.log.Warn("unreadable cursor, starting from now", "err", err)
		return w.startBatch(ctx)
	}
	r := &round{now: time.Now().UTC().Truncate(time.Microsecond)}
	steps := []func(context.Context, *cursor, *round) error{w.readFailed, w.readClaimed, w.readFinished, w.readLost}
	for _, step := range steps {
		if err := step(ctx, &c, r); err != nil {
			return jobs.Batch{}, err
		}
	}
	w.hurry = r.hurry
	slices.SortStableFunc(r.events, func(a, b jobs.Event) int { return a.At.Compare(b.At) })
	return jobs.Batch{Events: r.events, Cursor: c.encode(), Lag: r.lag, Skipped: r.skipped}, nil
}

// pace waits until PollInterval has passed since the previous round.
func (w *Watcher) pace(ctx context.Context) error {
	if w.hurry || w.lastPoll.IsZero() {
		return ctx.Err()
	}
	wait := time.Until(w.lastPoll.Add(w.cfg.PollInterval))
	if wait <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// startBatch is the first round: no events, the cursor for "from now",
// and no wait before the next round, which reads.
func (w *Watcher) startBatch(ctx context.Context) (jobs.Batch, error) {
	c, err := w.start(ctx)
	if err != nil {
		return jobs.Batch{}, err
	}
	w.hurry = true
	return jobs.Batch{Cursor: c.encode()}, nil
}

// start makes the cursor for "from now": the current highest ids, the
// newest finished_at, and the claims already lost (old news too).
func (w *Watcher) start(ctx context.Context) (cursor, error) {
	c := cursor{V: cursorVersion}
	if err := w.db.QueryRowContext(ctx, w.q.maxFailed).Scan(&c.Failed.Last); err != nil {
		return c, fmt.Errorf("solid queue: read %s: %w", w.t.failed, err)
	}
	if err := w.db.QueryRowContext(ctx, w.q.maxClaimed).Scan(&c.Claimed.Last); err != nil {
		return c, fmt.Errorf("solid queue: read %s: %w", w.t.claimed, err)
	}
	var newest dbTime
	if err := w.db.QueryRowContext(ctx, w.q.maxFinished).Scan(&newest); err != nil {
		return c, fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
	}
	if newest.Valid {
		c.Finished.Mark = newest.T
		ids, err := w.queryIDs(ctx, w.q.finishedAt, w.d.timeArg(newest.T), w.cfg.MaxSeen)
		if err != nil {
			return c, fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
		}
		c.Finished.Seen = ids
	}
	lost, err := w.lostRows(ctx)
	if err != nil {
		return c, err
	}
	for _, row := range lost {
		c.Lost = append(c.Lost, row.id)
	}
	return c, nil
}

func (w *Watcher) queryIDs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := w.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// queryRows runs one of the event queries.
func (w *Watcher) queryRows(ctx context.Context, query string, args ...any) ([]jobRow, error) {
	rows, err := w.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		r, err := scanJobRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
