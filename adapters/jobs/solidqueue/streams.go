package solidqueue

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// idStream is a table followed by primary key: failed or claimed
// executions.
type idStream struct {
	table  string
	what   string // how a row is named in skip details
	status jobs.Status
	after  string // rows past an id
	in     string // rows by ids (%s)
}

func (w *Watcher) readFailed(ctx context.Context, c *cursor, r *round) error {
	s := idStream{table: w.t.failed, what: "failed execution", status: jobs.Failed, after: w.q.failedAfter, in: w.q.failedIn}
	return w.readIDs(ctx, s, &c.Failed, r)
}

func (w *Watcher) readClaimed(ctx context.Context, c *cursor, r *round) error {
	s := idStream{table: w.t.claimed, what: "claimed execution", status: jobs.Running, after: w.q.claimedAfter, in: w.q.claimedIn}
	return w.readIDs(ctx, s, &c.Claimed, r)
}

// readIDs looks up the holes again, then reads past the last id, page by
// page, up to MaxEvents rows.
func (w *Watcher) readIDs(ctx context.Context, s idStream, ic *idCursor, r *round) error {
	nowMs := r.now.UnixMilli()
	if len(ic.Holes) > 0 {
		ids := make([]int64, len(ic.Holes))
		for i, h := range ic.Holes {
			ids[i] = h.ID
		}
		query, args := w.d.in(s.in, ids)
		rows, err := w.queryRows(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("solid queue: read %s: %w", s.table, err)
		}
		found := make(map[int64]bool, len(rows))
		for _, row := range rows {
			found[row.id] = true
			w.emit(r, row, s.status, s.what)
		}
		ic.Holes = slices.DeleteFunc(ic.Holes, func(h hole) bool { return found[h.ID] || h.Until < nowMs })
	}
	until := r.now.Add(w.cfg.Settle).UnixMilli()
	count := 0
	for {
		rows, err := w.queryRows(ctx, s.after, ic.Last)
		if err != nil {
			return fmt.Errorf("solid queue: read %s: %w", s.table, err)
		}
		for _, row := range rows {
			if row.id > ic.Last+1 {
				ic.Holes = addHoles(ic.Holes, ic.Last, row.id, until, w.cfg.MaxHoles)
			}
			ic.Last = row.id
			w.emit(r, row, s.status, s.what)
		}
		count += len(rows)
		if len(rows) < w.cfg.BatchSize {
			return nil
		}
		if count >= w.cfg.MaxEvents {
			r.cut(rows[len(rows)-1].at.T)
			return nil
		}
	}
}

// emit adds row's event, or its skip, to the round.
func (w *Watcher) emit(r *round, row jobRow, status jobs.Status, what string) {
	what = fmt.Sprintf("%s %d", what, row.id)
	ev, bad := row.event(status, what, w.cfg.MaxArgsBytes)
	if bad == nil && status == jobs.Failed {
		ev.ErrorClass, ev.ErrorMessage, bad = decodeError(row.errText, row.errLen, w.cfg.MaxErrorBytes)
		if bad != nil {
			bad.detail = fmt.Sprintf("%s (job %d): error: %s", what, row.jobID, bad.detail)
		}
	}
	if bad != nil {
		r.skipped = append(r.skipped, jobs.Skip{Reason: bad.reason, Detail: bad.detail})
		return
	}
	if !row.at.Valid {
		ev.At = r.now
	}
	r.events = append(r.events, ev)
}

// finished is one (id, finished_at) of the keyset scan.
type finished struct {
	id int64
	at time.Time
}

// readFinished reports jobs whose finished_at was set. It reads the
// (finished_at, id) keyset from Mark on, through the index on
// finished_at, skipping the ids already reported; Mark trails the newest
// finished_at by the settle window, so a job stamped before its
// transaction committed is still found. Details are fetched by id for
// the new jobs only.
func (w *Watcher) readFinished(ctx context.Context, c *cursor, r *round) error {
	fc := &c.Finished
	seen := make(map[int64]bool, len(fc.Seen))
	for _, id := range fc.Seen {
		seen[id] = true
	}
	var scanned, fresh []finished
	last := finished{at: fc.Mark}
	cut := false
	for {
		page, err := w.finishedPage(ctx, last)
		if err != nil {
			return err
		}
		for _, f := range page {
			scanned = append(scanned, f)
			if !seen[f.id] {
				fresh = append(fresh, f)
			}
		}
		if len(page) < w.cfg.BatchSize {
			break
		}
		last = page[len(page)-1]
		if len(fresh) >= w.cfg.MaxEvents || len(scanned) >= w.cfg.MaxEvents+w.cfg.MaxSeen {
			cut = true
			break
		}
	}
	if err := w.finishedEvents(ctx, fresh, r); err != nil {
		return err
	}
	if cut && len(fresh) > 0 {
		r.cut(fresh[len(fresh)-1].at)
	} else if cut {
		r.cut(time.Time{})
	}
	w.advanceMark(fc, scanned, seen, cut, r.now)
	return nil
}

func (w *Watcher) finishedPage(ctx context.Context, after finished) ([]finished, error) {
	at := w.d.timeArg(after.at)
	rows, err := w.db.QueryContext(ctx, w.q.finishedAfter, at, at, after.id)
	if err != nil {
		return nil, fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
	}
	defer rows.Close()
	var page []finished
	for rows.Next() {
		var f finished
		var t dbTime
		if err := rows.Scan(&f.id, &t); err != nil {
			return nil, fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
		}
		f.at = t.T
		page = append(page, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
	}
	return page, nil
}

// finishedEvents fetches the jobs of fresh by id, a page at a time, and
// emits them in finishing order. A job deleted meanwhile is passed over.
func (w *Watcher) finishedEvents(ctx context.Context, fresh []finished, r *round) error {
	for chunk := range slices.Chunk(fresh, w.cfg.BatchSize) {
		ids := make([]int64, len(chunk))
		for i, f := range chunk {
			ids[i] = f.id
		}
		query, args := w.d.in(w.q.jobsIn, ids)
		rows, err := w.queryRows(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("solid queue: read %s: %w", w.t.jobs, err)
		}
		byID := make(map[int64]jobRow, len(rows))
		for _, row := range rows {
			byID[row.id] = row
		}
		for _, f := range chunk {
			if row, ok := byID[f.id]; ok {
				w.emit(r, row, jobs.Completed, "finished job")
			}
		}
	}
	return nil
}

// advanceMark moves Mark to the newest finished_at scanned less the settle
// window, but never past now less the window, so one worker with a clock
// ahead cannot make the watcher blind to the others. Seen keeps the ids
// at or after the new Mark.
func (w *Watcher) advanceMark(fc *finishCursor, scanned []finished, seen map[int64]bool, cut bool, now time.Time) {
	mark := fc.Mark
	if n := len(scanned); n > 0 {
		newest := scanned[n-1].at
		if limit := now.Add(-w.cfg.Settle); newest.After(limit) {
			newest = limit
		}
		if cand := newest.Add(-w.cfg.Settle); cand.After(mark) {
			mark = cand
		}
	}
	var keep []finished
	for _, f := range scanned {
		if !f.at.Before(mark) {
			keep = append(keep, f)
		}
		delete(seen, f.id)
	}
	if len(keep) > w.cfg.MaxSeen {
		// More jobs finished within the window than we may remember: move
		// Mark up to the oldest one kept. Only late commits inside this
		// burst can be missed.
		keep = keep[len(keep)-w.cfg.MaxSeen:]
		mark = keep[0].at
	}
	ids := make([]int64, 0, len(keep)+len(seen))
	for _, f := range keep {
		ids = append(ids, f.id)
	}
	if cut {
		// Ids seen before but beyond where this round stopped scanning.
		for id := range seen {
			ids = append(ids, id)
		}
	}
	fc.Mark = mark.UTC().Truncate(time.Microsecond)
	fc.Seen = capIDs(ids, w.cfg.MaxSeen+w.cfg.MaxEvents)
}

// readLost reports claims whose process is gone or silent, once per claim.
func (w *Watcher) readLost(ctx context.Context, c *cursor, r *round) error {
	rows, err := w.lostRows(ctx)
	if err != nil {
		return err
	}
	reported := make(map[int64]bool, len(c.Lost))
	for _, id := range c.Lost {
		reported[id] = true
	}
	current := make([]int64, 0, len(rows))
	for _, row := range rows {
		current = append(current, row.id)
		if reported[row.id] {
			continue
		}
		row.at = dbTime{T: r.now, Valid: true} // when the loss was noticed
		w.emit(r, row, jobs.Lost, "claimed execution")
	}
	if len(rows) < w.cfg.MaxSeen {
		c.Lost = capIDs(current, w.cfg.MaxSeen) // claims no longer lost are forgotten
	} else {
		c.Lost = capIDs(append(c.Lost, current...), w.cfg.MaxSeen)
	}
	return nil
}

func (w *Watcher) lostRows(ctx context.Context) ([]jobRow, error) {
	silentSince := w.d.timeArg(time.Now().Add(-w.cfg.AliveThreshold))
	rows, err := w.queryRows(ctx, w.q.lost, silentSince, w.cfg.MaxSeen)
	if err != nil {
		return nil, fmt.Errorf("solid queue: read %s and %s: %w", w.t.claimed, w.t.processes, err)
	}
	return rows, nil
}
