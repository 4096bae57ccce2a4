package celery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// Watcher reads Celery's Redis result backend. It implements jobs.Watcher.
// Besides its Redis client it holds a live subscription while it is being
// polled, and the last batch, to answer a repeated Poll alike.
type Watcher struct {
	cfg     Config
	rdb     *goredis.Client
	log     *slog.Logger
	pattern string

	mu      sync.Mutex // guards following
	sub     *subscription
	idle    *time.Timer
	idleGen uint64 // which arming of idle may still stop sub
	// last is the previous Poll: its cursor, the batch it returned.
	lastIn, lastOut []byte
	lastBatch       jobs.Batch
	closed          bool
}

var _ jobs.Watcher = (*Watcher)(nil)

// New checks cfg and returns a watcher. It does not connect: Poll and
// Check do, and report an unreachable Redis as their error.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{cfg: cfg, rdb: goredis.NewClient(opts), log: log, pattern: globEscape(cfg.KeyPrefix) + "*"}, nil
}

// Backend returns jobs.Celery.
func (w *Watcher) Backend() string { return jobs.Celery }

// Close ends the subscription and closes the Redis connections.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	w.stopLocked()
	w.mu.Unlock()
	return w.rdb.Close()
}

// Poll reports the results published since the last Poll, and those the
// sweep finds that nobody reported; see the package documentation.
func (w *Watcher) Poll(ctx context.Context, cursor []byte) (jobs.Batch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return jobs.Batch{}, errors.New("celery: watcher closed")
	}
	// The idle time counts from the end of a Poll, which may block.
	w.idleGen++ // a timer already firing sees it and does nothing
	if w.idle != nil {
		w.idle.Stop()
	}
	defer w.touchLocked()
	if w.lastOut != nil && bytes.Equal(cursor, w.lastIn) {
		// The runner could not commit the last batch: the same again.
		return w.lastBatch, nil
	}
	if w.sub != nil && w.lastOut != nil && !bytes.Equal(cursor, w.lastOut) {
		// Another node moved on meanwhile; what this subscription
		// holds may be reported already. The sweep finds what is not.
		w.sub.drain()
	}
	if err := w.subscribeLocked(ctx); err != nil {
		return jobs.Batch{}, err
	}
	var batch jobs.Batch
	var st state
	if cursor == nil {
		now := time.Now().UTC()
		st = state{cycle: now, floor: now}
	} else {
		var err error
		if st, err = decodeState(cursor); err != nil {
			batch.Skipped = append(batch.Skipped, jobs.Skip{Reason: "bad_cursor",
				Detail: fmt.Sprintf("celery cursor: %v; starting from now", err)})
			now := time.Now().UTC()
			st = state{cycle: now, floor: now}
		}
	}
	if cursor != nil && len(batch.Skipped) == 0 {
		found, err := w.sweep(ctx, &st)
		if err != nil {
			return jobs.Batch{}, err
		}
		wait := w.cfg.Block
		if len(found) > 0 {
			wait = 0
		}
		// The subscription's results first, then what only the sweep
		// found, so that a task's states keep their order.
		seen := st.index()
		live, liveSkips, lag := w.live(ctx, &st, seen, wait, w.cfg.Batch)
		batch.Events, batch.Lag = live, lag
		batch.Skipped = liveSkips
		for _, r := range found {
			if key := seenKey(r.event.JobID, r.status, r.rawDay); !seen[key] {
				seen[key] = true
				st.add(key, r.done)
				batch.Events = append(batch.Events, r.event)
			}
		}
	}
	st.prune(w.cfg.SeenMax)
	st.seq++
	batch.Cursor = st.encode()
	w.lastIn, w.lastOut, w.lastBatch = append([]byte(nil), cursor...), batch.Cursor, batch
	if cursor == nil {
		w.lastIn = nil
	}
	return batch, nil
}

// sweep makes one SCAN step over the result keys and returns the finished
// results it finds that are newer than the floor and at least Grace old
// (younger ones are left to the subscription, which reports them in order;
// a later cycle finds them if it missed them). When SCAN completes a cycle,
// the floor moves up to the cycle's start, less Skew: every result finished
// before it was there for the whole cycle and so was visited.
func (w *Watcher) sweep(ctx context.Context, st *state) ([]result, error) {
	keys, next, err := w.rdb.Scan(ctx, st.scan, w.pattern, int64(w.cfg.SweepCount)).Result()
	if err != nil {
		return nil, fmt.Errorf("celery: scan result keys: %w", err)
	}
	var values []any
	if len(keys) > 0 {
		if values, err = w.rdb.MGet(ctx, keys...).Result(); err != nil {
			return nil, fmt.Errorf("celery: read results: %w", err)
		}
	}
	now := time.Now().UTC()
	var found []result
	for i, v := range values {
		s, ok := v.(string)
		if !ok {
			continue // expired since SCAN
		}
		r, skip := parse([]byte(s), w.cfg.MaxValue, "key "+keys[i], now)
		if skip != nil {
			// A bad result stays in Redis and is met again every cycle;
			// the subscription reported it when it was published.
			continue
		}
		if r.report && ready[r.status] && !r.done.Before(st.floor) && !r.done.After(now.Add(-w.cfg.Grace)) {
			found = append(found, r)
		}
	}
	st.scan = next
	if next == 0 {
		if f := st.cycle.Add(-w.cfg.Skew); f.After(st.floor) {
			st.floor = f
		}
		st.cycle = now
	}
	return found, nil
}

// live takes up to max results the subscription received, waiting up to
// wait for the first. Finished ones are deduplicated against the sweep.
func (w *Watcher) live(ctx context.Context, st *state, seen map[uint64]bool, wait time.Duration, max int) ([]jobs.Event, []jobs.Skip, time.Duration) {
	msgs, dropped, lag := w.sub.take(ctx, wait, max)
	var events []jobs.Event
	var skips []jobs.Skip
	if dropped > 0 {
		skips = append(skips, jobs.Skip{Reason: "live_overflow", Detail: fmt.Sprintf(
			"%d published results dropped while the buffer was full; finished ones are found by the sweep", dropped)})
	}
	for _, m := range msgs {
		r, skip := parse([]byte(m.payload), w.cfg.MaxValue, "channel "+m.channel, m.at)
		if skip != nil {
			skips = append(skips, *skip)
			continue
		}
		if !r.report {
			continue
		}
		if ready[r.status] {
			key := seenKey(r.event.JobID, r.status, r.rawDay)
			if seen[key] {
				continue
			}
			seen[key] = true
			st.add(key, r.done)
		}
		events = append(events, r.event)
	}
	return events, skips, lag
}

// touchLocked (re)arms the idle timer that ends the subscription when
// Polls stop, as when this node loses the lease.
func (w *Watcher) touchLocked() {
	if w.closed || w.sub == nil {
		return
	}
	if w.idle != nil {
		w.idle.Stop()
	}
	w.idleGen++
	gen := w.idleGen
	w.idle = time.AfterFunc(w.cfg.IdleStop, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if gen != w.idleGen {
			return // a Poll came meanwhile
		}
		w.log.Info("celery watcher: no Poll for a while, ending the subscription", "idle", w.cfg.IdleStop)
		w.stopLocked()
	})
}

// stopLocked ends the subscription and forgets the last batch: without a
// subscription, a repeated Poll cannot be answered from it.
func (w *Watcher) stopLocked() {
	if w.idle != nil {
		w.idle.Stop()
		w.idle = nil
	}
	if w.sub != nil {
		w.sub.stop()
		w.sub = nil
	}
	w.lastIn, w.lastOut, w.lastBatch = nil, nil, jobs.Batch{}
}

// subscribeLocked starts the subscription if it is not running, and
// returns once Redis confirmed it.
func (w *Watcher) subscribeLocked(ctx context.Context) error {
	if w.sub != nil {
		return nil
	}
	sub, err := startSubscription(ctx, w.rdb, w.pattern, w.cfg.Buffer, w.log)
	if err != nil {
		return fmt.Errorf("celery: subscribe to %s: %w", w.pattern, err)
	}
	w.sub = sub
	return nil
}

// Check inspects the result backend for `cablecar doctor`.
func (w *Watcher) Check(ctx context.Context) ([]string, error) {
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("celery: Redis is not reachable: %w", err)
	}
	// A bounded look for a sample: SCAN steps until one key shows up.
	var sample string
	var scan uint64
	for i := 0; i < 10 && sample == ""; i++ {
		keys, next, err := w.rdb.Scan(ctx, scan, w.pattern, int64(w.cfg.SweepCount)).Result()
		if err != nil {
			return nil, fmt.Errorf("celery: scan result keys: %w", err)
		}
		if len(keys) > 0 {
			sample = keys[0]
		}
		if scan = next; scan == 0 {
			break
		}
	}
	if sample == "" {
		return []string{fmt.Sprintf("celery: no result key matching %s found yet: no task has finished, or CABLECAR_JOBS_CELERY_URL (its database) or CABLECAR_JOBS_CELERY_KEY_PREFIX differ from Celery's result_backend", w.pattern)}, nil
	}
	lines := []string{fmt.Sprintf("celery: result keys found (%s)", sample)}
	v, err := w.rdb.Get(ctx, sample).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("celery: read %s: %w", sample, err)
	}
	r, skip := parse([]byte(v), w.cfg.MaxValue, "key "+sample, time.Now())
	switch {
	case skip != nil && skip.Reason == "malformed_json":
		lines = append(lines, fmt.Sprintf("celery: %s is not JSON: set result_serializer = 'json' (Celery's default) so the watcher can read results", sample))
	case skip != nil:
		lines = append(lines, "celery: "+skip.Detail)
	case r.report && r.event.Class == "" && !strings.Contains(v, `"name"`):
		lines = append(lines, "celery: results lack the task name and arguments: set result_extended = True in Celery so events carry the class and stream mappings can use args")
	}
	return lines, nil
}

// globEscape escapes the glob characters of a literal for PSUBSCRIBE and
// SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
