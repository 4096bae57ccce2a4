package sidekiq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// Watcher reads one Sidekiq's Redis and turns what it finds into job
// events. It implements jobs.Watcher; all its state between polls is in the
// cursor.
type Watcher struct {
	cfg Config
	rdb *goredis.Client
	log *slog.Logger
	// deadPage is how many dead set entries one poll reads at most
	// (a field so that tests can make ties span pages).
	deadPage int
}

var _ jobs.Watcher = (*Watcher)(nil)

// New checks cfg and returns a watcher for the Sidekiq whose Redis is
// cfg.URL. It does not connect yet; Poll and Check do, and report an
// unreachable Redis as their error.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, errors.New("CABLECAR_JOBS_SIDEKIQ_URL: want redis://[user:password@]host:port[/db] or rediss://…")
	}
	if opts.TLSConfig != nil && opts.TLSConfig.InsecureSkipVerify {
		return nil, errors.New("CABLECAR_JOBS_SIDEKIQ_URL: skip_verify is refused: Redis's certificate is always verified")
	}
	if opts.ClientName == "" {
		opts.ClientName = "cablecar-jobs-sidekiq"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, rdb: goredis.NewClient(opts), log: log, deadPage: deadPage}, nil
}

// Backend is jobs.Sidekiq.
func (w *Watcher) Backend() string { return jobs.Sidekiq }

// Close closes the Redis connections.
func (w *Watcher) Close() error { return w.rdb.Close() }

// poll is the state of one Poll: the cursor being advanced and what it
// found so far.
type poll struct {
	cur     *cursor
	now     float64 // Redis's clock, Unix seconds
	alive   map[string]bool
	events  []jobs.Event
	skipped []jobs.Skip
	// deadCovered is the dead set score up to which this poll has read.
	deadCovered float64
}

func (p *poll) skip(reason, format string, a ...any) {
	p.skipped = append(p.skipped, jobs.Skip{Reason: reason, Detail: fmt.Sprintf(format, a...)})
}

// Poll reads what changed since cursor: the processes' work lists
// (running, completed, lost), the dead set and the retry set. See the
// package documentation for how each is read without scanning it whole.
func (w *Watcher) Poll(ctx context.Context, cursorBytes []byte) (jobs.Batch, error) {
	cur, err := parseCursor(cursorBytes)
	if err != nil {
		// A cursor this watcher cannot read would fail every poll; start
		// afresh instead, as a first start would.
		w.log.Warn("sidekiq watcher: unreadable cursor, starting from now", "err", err)
		cur = nil
	}
	start := time.Now()
	t, err := w.rdb.Time(ctx).Result()
	if err != nil {
		return jobs.Batch{}, fmt.Errorf("sidekiq: read redis time: %w", err)
	}
	p := &poll{cur: cur, now: float64(t.UnixMicro()) / 1e6}
	upTo := p.now - w.cfg.Settle.Seconds()
	if p.cur == nil {
		p.cur = &cursor{V: cursorVersion, Failed: upTo, Dead: upTo, Sweep: sweepState{From: upTo, To: upTo}}
	}
	if err := w.readWork(ctx, p); err != nil {
		return jobs.Batch{}, err
	}
	// The failure reads come after the work lists: a job missing from a
	// work list raised (if it did) before it went missing, so its retry
	// or dead entry is already there for these reads.
	if err := w.readDead(ctx, p, upTo); err != nil {
		return jobs.Batch{}, err
	}
	if err := w.readRetry(ctx, p, upTo); err != nil {
		return jobs.Batch{}, err
	}
	if err := w.sweepRetry(ctx, p); err != nil {
		return jobs.Batch{}, err
	}
	w.settleRuns(p)
	sort.SliceStable(p.events, func(i, j int) bool { return p.events[i].At.Before(p.events[j].At) })
	lag := upTo - math.Min(p.cur.Failed, p.deadCovered)
	b := jobs.Batch{Events: p.events, Cursor: p.cur.encode(), Skipped: p.skipped}
	if lag > 0 {
		b.Lag = time.Duration(lag * float64(time.Second))
	}
	if b.Lag == 0 {
		w.pace(ctx, start)
	}
	return b, nil
}

// pace waits until PollInterval has passed since start, or until ctx is
// done, so that a runner calling Poll in a loop reads Sidekiq about once
// per interval, busy or not: each read covers the retry set's backoff
// jitter (15 s and more of failures), so reading back to back would decode
// the same entries over and over. A poll that is behind does not wait.
func (w *Watcher) pace(ctx context.Context, start time.Time) {
	t := time.NewTimer(w.cfg.PollInterval - time.Since(start))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// markFailed records that the run of jid that started at or before
// failedAt raised, so that its leaving the work list is no completion.
func (p *poll) markFailed(jid string, failedAt float64) {
	for _, r := range p.cur.Run {
		if r.JID == jid && float64(r.RunAt) <= failedAt {
			r.Failed = true
		}
	}
}
