package solidcable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/outage"
)

// maxBackoff caps the wait between polls while the database fails (or the
// polling interval, when that is longer).
const maxBackoff = 2 * time.Second

// Run polls and delivers until ctx is done or Close is called. It returns
// nil then, ErrAlreadyRunning at once if another Run call is active, or
// ErrClosed after Close. Database errors never end it: Health reports them
// and polling resumes from the last row read. After it returns no callback
// is running or will be called; Run may be called again.
func (b *Broker) Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error {
	if deliver == nil || active == nil {
		return errors.New("solid_cable broker: Run needs deliver and active callbacks")
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
	b.running, b.runDone = true, make(chan struct{})
	b.lastOK, b.pollErr = time.Time{}, nil
	for s := range b.want { // a new loop knows no stream yet
		b.dirty[s] = struct{}{}
	}
	done := b.runDone
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running = false
		close(done)
		b.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.closing, cancel)
	defer stop()

	l := &loop{b: b, deliver: deliver, active: active, subs: map[string]*sub{},
		byChannel: map[string]*sub{}, fresh: map[string]*sub{}, unacked: map[string]uint64{},
		seen: map[int64]struct{}{}}
	failures := 0
	for {
		qctx, qcancel := context.WithTimeout(ctx, b.cfg.QueryTimeout)
		start := time.Now()
		more, err := l.cycle(qctx)
		b.stats.pollNanos.Add(int64(time.Since(start)))
		qcancel()
		if ctx.Err() != nil {
			return nil
		}
		b.report(err, l.cursor)
		if b.afterPoll != nil {
			b.afterPoll(err)
		}
		wait := b.cfg.PollingInterval
		switch {
		case err != nil:
			failures++
			wait = outage.Doubling(b.cfg.PollingInterval, max(maxBackoff, b.cfg.PollingInterval), failures)
		case more:
			failures, wait = 0, 0 // a full batch: read on at once
		default:
			failures = 0
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// report records a poll's outcome for Health, and logs once when polling
// starts failing (or fails for a new reason) and once when it recovers.
func (b *Broker) report(err error, cursor int64) {
	if err == nil {
		b.stats.polls.Add(1)
		b.mu.Lock()
		wasDown := b.pollErr != nil
		b.pollErr, b.lastOK = nil, time.Now()
		b.mu.Unlock()
		if wasDown {
			b.stats.recoveries.Add(1)
			b.log.Info("solid_cable: polling works again; resuming after the last message read", "after_id", cursor)
		}
		return
	}
	b.stats.pollErrors.Add(1)
	kind, desc := b.db.classify(err), b.db.describe(err)
	b.mu.Lock()
	announce := b.pollErr == nil || b.errKind != kind
	b.pollErr, b.errKind = desc, kind
	b.mu.Unlock()
	if announce {
		b.log.Error(desc.Error())
	}
	if announce && kind == unreachable {
		// Idle connections to a database that went away are dead too;
		// drop them so Publish dials afresh instead of failing on each.
		b.pool.SetMaxIdleConns(0)
		b.pool.SetMaxIdleConns(maxConns)
	}
}

// loop is Run's polling state, owned by Run's goroutine.
type loop struct {
	b       *Broker
	deliver func(stream string, payload []byte)
	active  func(stream string)

	cursor  int64 // the largest id read
	started bool  // cursor holds the table's last id at Run's start, or later
	// Ids are handed out before commit, so a row can become visible after
	// a larger id was read (two writers racing). Polls therefore reread
	// from lowWater, the cursor as it was LateCommitWindow ago, leaving
	// out the ids already read there (seen).
	lowWater int64
	seen     map[int64]struct{}
	marks    []mark          // the cursor after each recent poll, oldest first
	subs     map[string]*sub // by stream
	// byChannel indexes subs by their channel column value.
	byChannel map[string]*sub
	// fresh are subs whose starting id is not known yet.
	fresh map[string]*sub
	// unacked maps streams to the Subscribe number due an active call
	// once a poll completes.
	unacked map[string]uint64
	hashes  []int64 // distinct hashes of subs; nil when they changed
}

// mark is the cursor after one poll.
type mark struct {
	at     time.Time
	cursor int64
}

// sub is one subscribed stream.
type sub struct {
	stream  string
	channel string // stream with the channel prefix
	hash    int64
	from    int64 // rows up to this id predate the subscription
}

// cycle is one poll: take in the hub's changes, then run one query, or two
// when streams are new (their starting id first). It reports whether the
// batch was full, so more rows may be waiting.
func (l *loop) cycle(ctx context.Context) (more bool, err error) {
	l.applyChanges()
	if !l.started || len(l.fresh) > 0 || len(l.subs) == 0 {
		var last int64
		if err := l.b.pool.QueryRowContext(ctx, maxIDQuery).Scan(&last); err != nil {
			return false, fmt.Errorf("read the last message id: %w", err)
		}
		if !l.started || len(l.subs) == 0 {
			// Nobody listened to what lies before last: skip it.
			l.cursor, l.started = max(l.cursor, last), true
			l.lowWater, l.marks = l.cursor, l.marks[:0]
			clear(l.seen)
		}
		for s, sb := range l.fresh {
			sb.from = last
			delete(l.fresh, s)
		}
	}
	n := 0
	if len(l.subs) > 0 {
		if n, err = l.read(ctx); err != nil {
			return false, err
		}
	}
	l.acknowledge()
	return n == l.b.cfg.BatchSize, nil
}

// applyChanges brings subs in line with the streams the hub wants.
func (l *loop) applyChanges() {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.dirty {
		seq, wanted := b.want[s]
		old := l.subs[s]
		switch {
		case wanted && old == nil:
			channel := b.prefix + s
			sb := &sub{stream: s, channel: channel, hash: ChannelHash(channel)}
			l.subs[s], l.byChannel[channel], l.fresh[s] = sb, sb, sb
			l.hashes = nil
			l.unacked[s] = seq
		case wanted:
			l.unacked[s] = seq
		case old != nil:
			delete(l.subs, s)
			delete(l.byChannel, old.channel)
			delete(l.fresh, s)
			delete(l.unacked, s)
			l.hashes = nil
		}
	}
	clear(b.dirty)
}

// read runs the poll query and delivers the matching rows it has not read
// before, recording each as it goes (so a failure midway loses nothing
// and repeats nothing). It returns the number of rows read.
func (l *loop) read(ctx context.Context) (int, error) {
	if l.hashes == nil {
		seen := make(map[int64]struct{}, len(l.subs))
		l.hashes = make([]int64, 0, len(l.subs))
		for _, sb := range l.subs {
			if _, dup := seen[sb.hash]; !dup {
				seen[sb.hash] = struct{}{}
				l.hashes = append(l.hashes, sb.hash)
			}
		}
	}
	seen := make([]int64, 0, len(l.seen))
	for id := range l.seen {
		seen = append(seen, id)
	}
	query, args := l.b.db.pollQuery(l.hashes, l.lowWater, seen, l.b.cfg.BatchSize)
	rows, err := l.b.pool.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("poll: %w", err)
	}
	defer rows.Close()
	n := 0
	var channel, payload, created sql.RawBytes
	var newest time.Time // created_at of the last row delivered
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &channel, &payload, &created); err != nil {
			return n, fmt.Errorf("poll: read row: %w", err)
		}
		n++
		l.seen[id] = struct{}{}
		l.cursor = max(l.cursor, id)
		// A different channel with the same hash, or a row from before
		// the stream was subscribed, is skipped.
		if sb := l.byChannel[string(channel)]; sb != nil && id > sb.from && l.b.wanted(sb.stream) {
			l.deliver(sb.stream, payload)
			l.b.stats.delivered.Add(1)
			if at, err := time.Parse(timeLayout, string(created)); err == nil {
				newest = at
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("poll: %w", err)
	}
	now := time.Now()
	if !newest.IsZero() {
		// Clocks of the app's hosts may run ahead: no negative lag.
		l.b.stats.lagNanos.Store(max(int64(now.Sub(newest)), 0))
	}
	l.advance(now)
	return n, nil
}

// advance records the cursor after a poll and moves lowWater up to the
// cursor of the newest poll older than LateCommitWindow, forgetting the
// ids read below it.
func (l *loop) advance(now time.Time) {
	l.marks = append(l.marks, mark{now, l.cursor})
	cut := now.Add(-l.b.cfg.LateCommitWindow)
	i := 0
	for i < len(l.marks) && !l.marks[i].at.After(cut) {
		l.lowWater = l.marks[i].cursor
		i++
	}
	if i == 0 {
		return
	}
	l.marks = append(l.marks[:0], l.marks[i:]...)
	for id := range l.seen {
		if id <= l.lowWater {
			delete(l.seen, id)
		}
	}
}

// acknowledge calls active for every stream whose latest Subscribe the
// completed poll covered.
func (l *loop) acknowledge() {
	if len(l.unacked) == 0 {
		return
	}
	var due []string
	l.b.mu.Lock()
	for s, seq := range l.unacked {
		if cur, ok := l.b.want[s]; !ok || cur == seq {
			delete(l.unacked, s)
			if ok {
				due = append(due, s)
			}
		} // else a later Subscribe is pending: the next poll reports it
	}
	l.b.mu.Unlock()
	for _, s := range due {
		l.active(s)
	}
}

// wanted reports whether the hub still wants stream.
func (b *Broker) wanted(stream string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.want[stream]
	return ok
}
