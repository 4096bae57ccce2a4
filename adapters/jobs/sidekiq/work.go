package sidekiq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// maxCursorArgs bounds the arguments a running job keeps in the cursor for
// its completed or lost event, and maxCursorArgsTotal those of all running
// jobs; arguments beyond are left out of those events (the running event
// has them all), so that the cursor stays well under a megabyte.
const (
	maxCursorArgs      = 1024
	maxCursorArgsTotal = 128 << 10
)

// maxProcesses bounds the processes one poll reads.
const maxProcesses = 1000

// workEntry is one value of a process's work hash: the job a thread runs.
// Sidekiq 6.0 to 6.3 stored the payload as a JSON object, 6.4 and later as
// a string holding the job's JSON.
type workEntry struct {
	Queue   string          `json:"queue"`
	Payload json.RawMessage `json:"payload"`
	RunAt   json.Number     `json:"run_at"`
}

// procWork is what one process's keys say.
type procWork struct {
	alive   bool
	entries map[string]string // tid → work entry JSON
}

// readWork reads the work list of every known process (the processes set
// and the processes of the jobs in the cursor): a job newly listed is
// running; a listed job that is gone, or whose process's heartbeat key
// expired, is marked Gone for settleRuns.
func (w *Watcher) readWork(ctx context.Context, p *poll) error {
	procs, err := w.rdb.SMembers(ctx, w.cfg.key("processes")).Result()
	if err != nil {
		return fmt.Errorf("sidekiq: read processes: %w", err)
	}
	sort.Strings(procs)
	if len(procs) > maxProcesses {
		w.log.Warn("sidekiq watcher: too many processes, reading the first ones", "listed", len(procs), "read", maxProcesses)
		procs = procs[:maxProcesses]
	}
	for _, r := range p.cur.Run {
		if !slices.Contains(procs, r.Proc) {
			procs = append(procs, r.Proc)
		}
	}
	work, err := w.fetchWork(ctx, procs)
	if err != nil {
		return err
	}
	p.alive = make(map[string]bool, len(work))
	var bad []string
	for _, id := range procs {
		pw := work[id]
		p.alive[id] = pw.alive
		if !pw.alive {
			continue
		}
		tids := make([]string, 0, len(pw.entries))
		for tid := range pw.entries {
			tids = append(tids, tid)
		}
		sort.Strings(tids)
		for _, tid := range tids {
			if h := w.seeWork(p, id, tid, pw.entries[tid]); h != "" {
				bad = append(bad, h)
			}
		}
	}
	p.cur.BadWork = bad
	for _, r := range p.cur.Run {
		if r.Gone == 0 && (!p.alive[r.Proc] || !listed(work[r.Proc], r)) {
			r.Gone = p.now
		}
	}
	return nil
}

// fetchWork reads, in one round trip, whether each process's heartbeat
// key exists and its work hash: "<identity>:work" (Sidekiq 6.5 and later)
// and "<identity>:workers" (before).
func (w *Watcher) fetchWork(ctx context.Context, procs []string) (map[string]procWork, error) {
	type cmds struct {
		exists       *goredis.IntCmd
		work, worker *goredis.MapStringStringCmd
	}
	cs := make([]cmds, len(procs))
	_, err := w.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, id := range procs {
			cs[i].exists = pipe.Exists(ctx, w.cfg.key(id))
			cs[i].work = pipe.HGetAll(ctx, w.cfg.key(id+":work"))
			cs[i].worker = pipe.HGetAll(ctx, w.cfg.key(id+":workers"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sidekiq: read work lists: %w", err)
	}
	out := make(map[string]procWork, len(procs))
	for i, id := range procs {
		entries := make(map[string]string)
		for tid, v := range cs[i].worker.Val() {
			entries[tid] = v
		}
		for tid, v := range cs[i].work.Val() {
			entries[tid] = v
		}
		out[id] = procWork{alive: cs[i].exists.Val() > 0, entries: entries}
	}
	return out, nil
}

// listed reports whether r's run is still in its process's work list.
func listed(pw procWork, r *runRec) bool {
	v, ok := pw.entries[r.TID]
	if !ok {
		return false
	}
	var e workEntry
	if decode([]byte(v), &e) != nil {
		return false
	}
	j, err := entryJob(e)
	if err != nil {
		return false
	}
	runAt, _ := runAtSeconds(e.RunAt)
	return j.jid == r.JID && runAt == r.RunAt
}

// seeWork handles one work entry: a run not in the cursor yet becomes a
// running event and a runRec. It returns the entry's hash when the entry
// is bad (reported once, while it stays listed).
func (w *Watcher) seeWork(p *poll, proc, tid, raw string) string {
	where := fmt.Sprintf("work entry of process %s thread %s", proc, tid)
	bad := func(reason, detail string) string {
		h := memberHash(proc + "\x00" + tid + "\x00" + raw)
		if !slices.Contains(p.cur.BadWork, h) {
			p.skip(reason, "%s: %s", where, detail)
		}
		return h
	}
	if len(raw) > w.cfg.MaxJobBytes {
		return bad("too_large", fmt.Sprintf("%d bytes, over the %d byte limit", len(raw), w.cfg.MaxJobBytes))
	}
	var e workEntry
	if err := decode([]byte(raw), &e); err != nil {
		return bad("malformed_json", err.Error())
	}
	j, err := entryJob(e)
	if err != nil {
		return bad(skipReason(err), err.Error())
	}
	runAt, ok := runAtSeconds(e.RunAt)
	if !ok {
		return bad("missing_field", "no run_at")
	}
	if j.queue == "" {
		j.queue = e.Queue
	}
	rec := &runRec{Proc: proc, TID: tid, JID: j.jid, RunAt: runAt, Class: j.class, Queue: j.queue}
	if j.id != j.jid {
		rec.ID = j.id
	}
	for _, r := range p.cur.Run {
		if r.same(rec) {
			r.Gone = 0 // listed again: not gone after all
			return ""
		}
	}
	if len(p.cur.Run) >= w.cfg.MaxRunning {
		return bad("too_many_running", fmt.Sprintf("already %d running jobs remembered", w.cfg.MaxRunning))
	}
	if a, err := json.Marshal(j.args); err == nil && len(a) <= maxCursorArgs && j.args != nil &&
		cursorArgs(p.cur.Run)+len(a) <= maxCursorArgsTotal {
		rec.Args = a
	}
	p.cur.Run = append(p.cur.Run, rec)
	p.events = append(p.events, j.event(jobs.Running, seconds(float64(runAt))))
	return ""
}

// cursorArgs is the size of the arguments the runs keep.
func cursorArgs(runs []*runRec) int {
	n := 0
	for _, r := range runs {
		n += len(r.Args)
	}
	return n
}

// entryJob decodes a work entry's payload, string or object.
func entryJob(e workEntry) (*job, error) {
	raw := []byte(e.Payload)
	if bytes.HasPrefix(raw, []byte(`"`)) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		raw = []byte(s)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no payload", errMissing)
	}
	j, err := parseJob(raw)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return j, nil
}

// runAtSeconds reads run_at, Unix seconds in every version so far
// (milliseconds are accepted too, should a version switch).
func runAtSeconds(n json.Number) (int64, bool) {
	f, ok := stamp(&n)
	if !ok {
		return 0, false
	}
	return int64(f), true
}

// settleRuns ends the runs that left their work list once the failure
// reads have covered the moment they left: a run that raised was reported
// by those reads; one whose process still beats completed; one whose
// process's heartbeat key expired was lost.
func (w *Watcher) settleRuns(p *poll) {
	covered := min(p.cur.Failed, p.deadCovered)
	keep := p.cur.Run[:0]
	for _, r := range p.cur.Run {
		switch {
		case r.Gone == 0:
			keep = append(keep, r)
		case r.Failed:
			// reported as retrying or dead already
		case r.Gone > covered:
			keep = append(keep, r)
		case p.alive[r.Proc]:
			p.events = append(p.events, r.event(jobs.Completed, r.Gone))
		default:
			p.events = append(p.events, r.event(jobs.Lost, r.Gone))
		}
	}
	clear(p.cur.Run[len(keep):])
	p.cur.Run = keep
	if len(p.cur.Run) == 0 {
		p.cur.Run = nil
	}
}

// event is the run's completed or lost event.
func (r *runRec) event(st jobs.Status, at float64) jobs.Event {
	e := jobs.Event{Backend: jobs.Sidekiq, JobID: r.JID, Class: r.Class, Queue: r.Queue, Status: st, At: seconds(at)}
	if r.ID != "" {
		e.JobID = r.ID
	}
	if len(r.Args) > 0 {
		var args []any
		if decode(r.Args, &args) == nil {
			e.Args = args
		}
	}
	return e
}

// skipReason is the Skip reason for a parse error.
func skipReason(err error) string {
	if errors.Is(err, errMissing) {
		return "missing_field"
	}
	return "malformed_json"
}

// formatScore writes a score so that Redis parses back the same double.
func formatScore(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
