package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// RunnerOptions configure a Runner; zero values mean the defaults.
type RunnerOptions struct {
	// Holder names this node in the lease (default: a random id).
	Holder string
	// LeaseTTL is how long a lease outlives its holder's last renewal: the
	// time another node waits before taking over from a dead one
	// (default 5s).
	LeaseTTL time.Duration
	// ErrorMessages sends exceptions' messages to pages
	// (CABLECAR_JOB_ERROR_MESSAGES; default false, since they can carry
	// internals).
	ErrorMessages bool
	// Backoff is the wait after a failed poll or commit (default 1s).
	Backoff time.Duration
	Log     *slog.Logger
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	if o.Holder == "" {
		o.Holder = randomHolder()
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Runner watches one backend: while this node holds the backend's lease it
// polls the watcher, maps each event to its streams, and commits the
// messages with the watcher's cursor. Create it with NewRunner.
type Runner struct {
	w       Watcher
	store   Store
	mapping *Mapping
	opts    RunnerOptions
	log     *slog.Logger
	stats   *Stats
}

// NewRunner runs w over store with mapping.
func NewRunner(w Watcher, store Store, mapping *Mapping, opts RunnerOptions) *Runner {
	opts = opts.withDefaults()
	return &Runner{w: w, store: store, mapping: mapping, opts: opts,
		log: opts.Log.With("backend", w.Backend()), stats: newStats(w.Backend())}
}

// Stats are the runner's counters, for metrics and the status page.
func (r *Runner) Stats() *Stats { return r.stats }

// Watcher returns the watcher, for doctor's checks.
func (r *Runner) Watcher() Watcher { return r.w }

// Run watches until ctx is done, then releases the lease. It returns nil
// then; failures along the way are logged, counted and retried.
func (r *Runner) Run(ctx context.Context) error {
	defer r.release()
	var cursor []byte
	held := false
	for ctx.Err() == nil {
		ok, err := r.store.Acquire(ctx, r.w.Backend(), r.opts.Holder, r.opts.LeaseTTL)
		if err != nil || !ok {
			r.standby(ctx, held, err)
			held = false
			continue
		}
		if !held {
			if cursor, err = r.store.Cursor(ctx, r.w.Backend()); err != nil {
				r.failed(ctx, "read cursor", err)
				continue
			}
			held = true
			r.stats.setWatching(true)
			r.log.Info("job watcher: this node watches the backend", "holder", r.opts.Holder)
		}
		next, err := r.step(ctx, cursor)
		if errors.Is(err, ErrLeaseLost) {
			held = false
			r.stats.setWatching(false)
			r.log.Warn("job watcher: lease lost to another node; standing by")
			continue
		}
		if err != nil {
			r.failed(ctx, "poll", err)
			continue
		}
		cursor = next
	}
	return nil
}

// step polls once and commits what it found. It returns the new cursor.
func (r *Runner) step(ctx context.Context, cursor []byte) ([]byte, error) {
	batch, err := r.w.Poll(ctx, cursor)
	if err != nil {
		if ctx.Err() != nil {
			return cursor, nil
		}
		return cursor, err
	}
	r.noteSkips(batch.Skipped)
	msgs, events := r.messages(batch.Events)
	if len(msgs) == 0 && string(batch.Cursor) == string(cursor) {
		r.stats.observe(nil, batch.Lag)
		return cursor, nil
	}
	if err := r.store.Commit(ctx, r.w.Backend(), r.opts.Holder, r.opts.LeaseTTL, msgs, batch.Cursor); err != nil {
		if ctx.Err() != nil {
			return cursor, nil
		}
		return cursor, err
	}
	r.stats.observe(events, batch.Lag)
	r.stats.clearError()
	for _, ev := range events {
		r.log.Debug("job event published", "job_id", ev.JobID, "class", ev.Class, "status", ev.Status)
	}
	return batch.Cursor, nil
}

// messages maps events to their streams. Events without a stream are
// counted and named, never guessed.
func (r *Runner) messages(events []Event) ([]Message, []*Event) {
	var msgs []Message
	var sent []*Event
	for i := range events {
		ev := &events[i]
		streams, err := r.mapping.Streams(ev)
		if errors.Is(err, ErrUnmapped) {
			if r.stats.unmapped(ev.Class) {
				r.log.Warn("job event dropped: no CABLECAR_JOB_STREAMS rule for its class (logged once per class)", "class", ev.Class)
			}
			continue
		}
		if err != nil {
			r.noteSkips([]Skip{{Reason: "unmappable", Detail: ev.Class + ": " + err.Error()}})
			continue
		}
		payload := ev.Encode(r.opts.ErrorMessages)
		for _, s := range streams {
			msgs = append(msgs, Message{Stream: s, Payload: payload})
		}
		sent = append(sent, ev)
	}
	return msgs, sent
}

// noteSkips counts bad job data and logs each cause once.
func (r *Runner) noteSkips(skips []Skip) {
	for _, s := range skips {
		if r.stats.skipped(s.Reason) {
			r.log.Warn("job skipped: "+s.Detail+" (logged once per reason; counted in cablecar_job_skipped_total)", "reason", s.Reason)
		}
	}
}

// standby waits while another node holds the lease or the store fails.
func (r *Runner) standby(ctx context.Context, wasHeld bool, err error) {
	if wasHeld {
		r.stats.setWatching(false)
	}
	if err != nil {
		r.failed(ctx, "lease", err)
		return
	}
	sleep(ctx, r.opts.LeaseTTL/3)
}

// failed records err, logs it when it is new, and backs off.
func (r *Runner) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	if r.stats.setError(what + ": " + err.Error()) {
		r.log.Error("job watcher: "+what+" failed; retrying (logged again only when the error changes)", "err", err)
	}
	sleep(ctx, r.opts.Backoff)
}

// release gives the lease up so another node takes over at once.
func (r *Runner) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.store.Release(ctx, r.w.Backend(), r.opts.Holder)
	r.stats.setWatching(false)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Group runs several runners and stops them together.
type Group []*Runner

// Run runs every runner until ctx is done.
func (g Group) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range g {
		wg.Go(func() { _ = r.Run(ctx) })
	}
	wg.Wait()
}
