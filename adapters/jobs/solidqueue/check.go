package solidqueue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Check implements jobs.Watcher: the database answers, Solid Queue's
// tables are there, how many rows they hold, and whether any worker is
// heartbeating. A missing table is an error (nothing can be watched);
// no live worker is a finding (jobs wait, but the watcher works).
func (w *Watcher) Check(ctx context.Context) ([]string, error) {
	if err := w.db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("solid queue database %s unreachable: %w", w.src.display, err)
	}
	lines := []string{fmt.Sprintf("solid queue: %s database %s reachable", w.d.name, w.src.display)}
	var missing []error
	for _, table := range []string{w.t.jobs, w.t.ready, w.t.claimed, w.t.failed, w.t.processes} {
		ok, err := w.d.tableExists(ctx, w.db, table)
		if err != nil {
			return lines, fmt.Errorf("solid queue: %w", err)
		}
		if !ok {
			missing = append(missing, fmt.Errorf("%s missing: is Solid Queue installed in this database?", table))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return lines, err
	}
	counts := ""
	for _, table := range []string{w.t.jobs, w.t.ready, w.t.claimed, w.t.failed, w.t.processes} {
		var n int64
		if err := w.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			return lines, fmt.Errorf("solid queue: count %s: %w", table, err)
		}
		if counts != "" {
			counts += ", "
		}
		counts += fmt.Sprintf("%s %d", table, n)
	}
	lines = append(lines, "solid queue rows: "+counts)
	live, total, err := w.liveProcesses(ctx)
	if err != nil {
		return lines, err
	}
	switch {
	case total == 0:
		lines = append(lines, "solid queue: no process registered in "+w.t.processes+": is bin/jobs (or the Puma plugin) running?")
	case live == 0:
		lines = append(lines, fmt.Sprintf("solid queue: none of %d processes heartbeated within %s: are the workers alive?", total, w.cfg.AliveThreshold))
	default:
		lines = append(lines, fmt.Sprintf("solid queue: %d of %d processes heartbeating (within %s)", live, total, w.cfg.AliveThreshold))
	}
	return lines, nil
}

// liveProcesses counts the registered processes and those heartbeating
// within the alive threshold.
func (w *Watcher) liveProcesses(ctx context.Context) (live, total int64, err error) {
	since := w.d.timeArg(time.Now().Add(-w.cfg.AliveThreshold))
	query := w.d.q("SELECT COUNT(*), COALESCE(SUM(CASE WHEN last_heartbeat_at >= ? THEN 1 ELSE 0 END), 0) FROM " + w.t.processes)
	if err := w.db.QueryRowContext(ctx, query, since).Scan(&total, &live); err != nil {
		return 0, 0, fmt.Errorf("solid queue: read %s: %w", w.t.processes, err)
	}
	return live, total, nil
}
