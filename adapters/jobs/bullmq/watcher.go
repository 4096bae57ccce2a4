package bullmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// tailCount caps the stream entries read after a batch to describe its
// events as of their own moment (attempt numbers, the stalled pairing).
const tailCount = 100

// Watcher reads BullMQ's events streams. It implements jobs.Watcher; its
// only state is the Redis client, everything else is in the cursor.
type Watcher struct {
	cfg    Config
	queues []string
	rdb    *goredis.Client
	log    *slog.Logger
}

var _ jobs.Watcher = (*Watcher)(nil)

// New checks cfg and returns a watcher for its queues. It does not connect:
// Poll and Check do, and report an unreachable Redis as their error.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	opts, queues, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{cfg: cfg, queues: queues, rdb: goredis.NewClient(opts), log: log}, nil
}

// Backend returns jobs.BullMQ.
func (w *Watcher) Backend() string { return jobs.BullMQ }

// Close closes the Redis connections.
func (w *Watcher) Close() error { return w.rdb.Close() }

// eventsKey is the events stream of queue.
func (w *Watcher) eventsKey(queue string) string {
	return w.cfg.Prefix + ":" + queue + ":events"
}

// jobKey is the hash of a job.
func (w *Watcher) jobKey(queue, id string) string {
	return w.cfg.Prefix + ":" + queue + ":" + id
}

// streamInfo is what XINFO STREAM says about one queue's events; exists is
// false when the stream is not there (yet).
type streamInfo struct {
	exists      bool
	length      int64
	added       int64 // entries ever added (Redis 7), 0 if unknown
	lastID      string
	firstID     string
	lastEntryAt time.Time
}

// infos runs XINFO STREAM for every queue in one round trip.
func (w *Watcher) infos(ctx context.Context) (map[string]streamInfo, error) {
	cmds := make([]*goredis.XInfoStreamCmd, len(w.queues))
	// Each command carries its own error (a connection error too), so
	// Pipelined's summary of them adds nothing.
	_, _ = w.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, q := range w.queues {
			cmds[i] = p.XInfoStream(ctx, w.eventsKey(q))
		}
		return nil
	})
	out := make(map[string]streamInfo, len(w.queues))
	for i, q := range w.queues {
		info, err := cmds[i].Result()
		switch {
		case err == nil:
			out[q] = streamInfo{exists: true, length: info.Length, added: info.EntriesAdded, lastID: info.LastGeneratedID,
				firstID: info.FirstEntry.ID, lastEntryAt: idTime(info.LastEntry.ID)}
		case isNoSuchKey(err):
			out[q] = streamInfo{lastID: "0-0"}
		default:
			return nil, fmt.Errorf("bullmq: read events stream %s: %w", w.eventsKey(q), err)
		}
	}
	return out, nil
}

// isNoSuchKey reports XINFO STREAM's answer for a missing stream.
func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// Poll reads what the queues' events streams hold after cursor; see the
// package documentation for the mapping.
func (w *Watcher) Poll(ctx context.Context, cursor []byte) (jobs.Batch, error) {
	var batch jobs.Batch
	pos, err := decodeCursor(cursor)
	if err != nil {
		batch.Skipped = append(batch.Skipped, jobs.Skip{Reason: "bad_cursor",
			Detail: fmt.Sprintf("bullmq cursor: %v; starting from now", err)})
		pos = map[string]string{}
	}
	infos, err := w.infos(ctx)
	if err != nil {
		return jobs.Batch{}, err
	}
	// Queues without a position start now: at the stream's last id, or
	// at 0-0 when it does not exist yet (its first entry is news).
	fresh := false
	for _, q := range w.queues {
		if _, ok := pos[q]; !ok {
			pos[q] = infos[q].lastID
			fresh = true
		}
	}
	if fresh {
		batch.Cursor = encodeCursor(pos, w.queues)
		return batch, nil
	}
	for _, q := range w.queues {
		if skip, lost := w.trimmed(q, infos[q], pos[q]); lost {
			batch.Skipped = append(batch.Skipped, skip)
		}
	}

	entries, err := w.read(ctx, pos)
	if err != nil {
		return jobs.Batch{}, err
	}
	if len(entries) > 0 {
		events, skips, err := w.describe(ctx, entries)
		if err != nil {
			return jobs.Batch{}, err
		}
		batch.Events, batch.Skipped = events, append(batch.Skipped, skips...)
		for _, e := range entries {
			if compareIDs(e.id, pos[e.queue]) > 0 {
				pos[e.queue] = e.id
			}
		}
	}
	batch.Cursor = encodeCursor(pos, w.queues)
	for _, q := range w.queues {
		if last := infos[q].lastID; compareIDs(last, pos[q]) > 0 {
			if lag := idTime(last).Sub(idTime(pos[q])); lag > batch.Lag {
				batch.Lag = lag
			}
		}
	}
	return batch, nil
}

// trimmed tells whether entries after pos were trimmed from the queue's
// stream before they were read. MAXLEN trimming cuts from the head, so they
// were when the oldest entry left is newer than pos. (If the cut fell
// exactly after pos, nothing was lost and this reports it once anyway.)
// For a stream that did not exist when the cursor was made (pos 0-0), Redis
// 7's entries-added count says whether any entry is gone.
func (w *Watcher) trimmed(q string, info streamInfo, pos string) (jobs.Skip, bool) {
	if !info.exists {
		return jobs.Skip{}, false
	}
	lost := compareIDs(info.firstID, pos) > 0
	if pos == "0-0" {
		lost = info.added > info.length
	}
	if !lost {
		return jobs.Skip{}, false
	}
	return jobs.Skip{Reason: "events_trimmed", Detail: fmt.Sprintf(
		"queue %s: events after %s and before %s were trimmed from %s before they were read (BullMQ keeps about 10,000)",
		q, pos, info.firstID, w.eventsKey(q))}, true
}

// entry is one stream entry of one queue.
type entry struct {
	queue  string
	id     string
	fields map[string]any
}

func (e entry) field(name string) string {
	s, _ := e.fields[name].(string)
	return s
}

// read waits up to Block for entries after pos, at most Count per queue.
func (w *Watcher) read(ctx context.Context, pos map[string]string) ([]entry, error) {
	streams := make([]string, 0, 2*len(w.queues))
	for _, q := range w.queues {
		streams = append(streams, w.eventsKey(q))
	}
	for _, q := range w.queues {
		streams = append(streams, pos[q])
	}
	res, err := w.rdb.XRead(ctx, &goredis.XReadArgs{Streams: streams, Count: int64(w.cfg.Count), Block: w.cfg.Block}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil // asked to stop: nothing read, the cursor stays
		}
		return nil, fmt.Errorf("bullmq: XREAD events streams: %w", err)
	}
	queueOf := make(map[string]string, len(w.queues))
	for _, q := range w.queues {
		queueOf[w.eventsKey(q)] = q
	}
	var out []entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, entry{queue: queueOf[s.Stream], id: m.ID, fields: m.Values})
		}
	}
	return out, nil
}

// describe turns a batch's entries into events. It reads, in one MULTI, the
// hashes of the jobs concerned and the entries written after the batch, so
// that the hashes and the stream agree.
func (w *Watcher) describe(ctx context.Context, entries []entry) ([]jobs.Event, []jobs.Skip, error) {
	type jobRef struct{ queue, id string }
	var refs []jobRef
	seen := map[jobRef]bool{}
	last := map[string]string{}
	for _, e := range entries {
		last[e.queue] = e.id
		if !wanted[e.field("event")] {
			continue
		}
		r := jobRef{e.queue, e.field("jobId")}
		if r.id != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	hashCmds := make([]*goredis.MapStringStringCmd, len(refs))
	tailCmds := map[string]*goredis.XMessageSliceCmd{}
	_, err := w.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, r := range refs {
			hashCmds[i] = p.HGetAll(ctx, w.jobKey(r.queue, r.id))
		}
		for q, id := range last {
			tailCmds[q] = p.XRangeN(ctx, w.eventsKey(q), "("+id, "+", tailCount)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bullmq: read job hashes: %w", err)
	}
	hashes := map[string]map[string]string{}
	for i, r := range refs {
		if h := hashCmds[i].Val(); len(h) > 0 {
			hashes[r.queue+"\x00"+r.id] = h
		}
	}
	// Each queue's entries in stream order, the tail after the batch's.
	perQueue := map[string][]entry{}
	for _, e := range entries {
		perQueue[e.queue] = append(perQueue[e.queue], e)
	}
	for q, cmd := range tailCmds {
		for _, m := range cmd.Val() {
			perQueue[q] = append(perQueue[q], entry{queue: q, id: m.ID, fields: m.Values})
		}
	}
	var events []jobs.Event
	var skips []jobs.Skip
	for _, q := range w.queues {
		list := perQueue[q]
		n := 0
		for _, e := range entries {
			if e.queue == q {
				n++
			}
		}
		d := describer{w: w, list: list, hashes: hashes}
		for i := 0; i < n; i++ {
			ev, ok, skip := d.event(i)
			if skip != nil {
				skips = append(skips, *skip)
			}
			if ok {
				events = append(events, ev)
			}
		}
	}
	// Queues are read side by side: order the events by time, keeping
	// each queue's stream order.
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	return events, skips, nil
}

// wanted are the events whose job hash describe reads.
var wanted = map[string]bool{"active": true, "progress": true, "completed": true, "failed": true,
	"waiting": true, "delayed": true, "stalled": true}

// Check inspects each queue's events stream for `cablecar doctor`.
func (w *Watcher) Check(ctx context.Context) ([]string, error) {
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("bullmq: Redis is not reachable: %w", err)
	}
	infos, err := w.infos(ctx)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, q := range w.queues {
		info, key := infos[q], w.eventsKey(q)
		if !info.exists {
			lines = append(lines, fmt.Sprintf("bullmq queue %s: no events stream %s yet: no job was added to it, or CABLECAR_JOBS_BULLMQ_PREFIX or CABLECAR_JOBS_BULLMQ_QUEUES differ from the application's", q, key))
			continue
		}
		maxLen := "10000"
		if v, err := w.rdb.HGet(ctx, w.cfg.Prefix+":"+q+":meta", "opts.maxLenEvents").Result(); err == nil {
			maxLen = v
		}
		newest := "no entries"
		if !info.lastEntryAt.IsZero() {
			newest = "newest " + time.Since(info.lastEntryAt).Round(time.Second).String() + " ago"
		}
		lines = append(lines, fmt.Sprintf("bullmq queue %s: events stream %s holds %d entries (%s); BullMQ trims it to about %s, so a watcher down or behind by more events than that loses them",
			q, key, info.length, newest, maxLen))
	}
	return lines, nil
}

// decodeCursor reads the cursor: {"ids":{"queue":"stream id"}}.
func decodeCursor(b []byte) (map[string]string, error) {
	pos := map[string]string{}
	if len(b) == 0 {
		return pos, nil
	}
	var c struct {
		IDs map[string]string `json:"ids"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	for q, id := range c.IDs {
		if _, _, ok := parseID(id); !ok {
			return nil, fmt.Errorf("queue %s: bad stream id %q", q, id)
		}
		pos[q] = id
	}
	return pos, nil
}

// encodeCursor writes the positions of the watched queues only, so a queue
// dropped from the settings leaves the cursor.
func encodeCursor(pos map[string]string, queues []string) []byte {
	ids := make(map[string]string, len(queues))
	for _, q := range queues {
		ids[q] = pos[q]
	}
	b, _ := json.Marshal(struct {
		IDs map[string]string `json:"ids"`
	}{ids}) // strings only: cannot fail
	return b
}

// parseID splits a stream id "ms-seq".
func parseID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// compareIDs orders stream ids; a malformed id sorts first.
func compareIDs(a, b string) int {
	am, as, _ := parseID(a)
	bm, bs, _ := parseID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

// idTime is the time in a stream id: Redis's clock when it was added.
func idTime(id string) time.Time {
	ms, _, ok := parseID(id)
	if !ok || ms == 0 {
		return time.Time{}
	}
	return jobs.UnixMillis(int64(ms))
}
