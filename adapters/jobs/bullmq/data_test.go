package bullmq

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/redistest"
)

// These tests write stream entries and job hashes by hand, in the shapes
// BullMQ 6.7.6's scripts write (see doc.go), for what a real worker does
// not produce on demand: bad data, a stall, a trimmed stream.

func xadd(t *testing.T, c *goredis.Client, key string, values ...string) string {
	t.Helper()
	id, err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: key, Values: values}).Result()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	return id
}

func TestPollSkipsBadData(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"q"}, MaxValue: 1024})
	cur := poll(t, w, nil).Cursor

	hset := func(id string, kv ...string) {
		if err := c.HSet(ctx, "bull:q:"+id, kv).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hset("1", "name", "Good", "data", `{"n":1}`, "atm", "0")
	hset("2", "name", "Broken", "data", `{"n":`)
	hset("3", "name", "Huge", "data", `{"s":"`+strings.Repeat("x", 2000)+`"}`)
	hset("4", "data", `{}`) // no name
	hset("6", "name", "Trailing", "data", `{} {}`)
	key := "bull:q:events"
	xadd(t, c, key, "event", "added", "jobId", "1", "name", "Good")
	xadd(t, c, key, "event", "active", "prev", "waiting") // no jobId
	xadd(t, c, key, "event", "active", "jobId", "2", "prev", "waiting")
	xadd(t, c, key, "event", "active", "jobId", "3", "prev", "waiting")
	xadd(t, c, key, "event", "active", "jobId", "4", "prev", "waiting")
	xadd(t, c, key, "event", "active", "jobId", "6", "prev", "waiting")
	xadd(t, c, key, "event", "progress", "jobId", "1", "data", `{"pct":`)
	xadd(t, c, key, "event", "progress", "jobId", "1", "data", `"`+strings.Repeat("y", 2000)+`"`)
	last := xadd(t, c, key, "event", "progress", "jobId", "1", "data", `7`)
	// A job already removed (removeOnComplete) is still reported.
	gone := xadd(t, c, key, "event", "completed", "jobId", "5", "returnvalue", "null", "prev", "active")
	failed := xadd(t, c, key, "event", "failed", "jobId", "7", "failedReason", "no disk", "prev", "active")
	end := xadd(t, c, key, "event", "retries-exhausted", "jobId", "7", "attemptsMade", "3")

	b := poll(t, w, cur)
	wantSkips := []string{"missing_field", "malformed_json", "too_large", "missing_field", "malformed_json", "malformed_json", "too_large"}
	var got []string
	for _, s := range b.Skipped {
		got = append(got, s.Reason)
		if strings.Contains(s.Detail, "xxxx") || strings.Contains(s.Detail, "yyyy") {
			t.Errorf("skip detail repeats the data: %q", s.Detail)
		}
	}
	if !reflect.DeepEqual(got, wantSkips) {
		t.Errorf("skips %v, want %v (%+v)", got, wantSkips, b.Skipped)
	}
	want := []jobs.Event{
		{Backend: jobs.BullMQ, JobID: "1", Class: "Good", Queue: "q", Status: jobs.Progress, Progress: json.RawMessage(`7`),
			At: idTime(last), Args: []any{map[string]any{"n": json.Number("1")}}},
		{Backend: jobs.BullMQ, JobID: "5", Queue: "q", Status: jobs.Completed, At: idTime(gone)},
		{Backend: jobs.BullMQ, JobID: "7", Queue: "q", Status: jobs.Failed, ErrorMessage: "no disk", RetryCount: 2, HasRetryCount: true, At: idTime(failed)},
	}
	if !reflect.DeepEqual(b.Events, want) {
		t.Errorf("events %s, want %s", dump(b.Events), dump(want))
	}
	if string(b.Cursor) != `{"ids":{"q":"`+end+`"}}` {
		t.Errorf("cursor %s, want past %s", b.Cursor, end)
	}
}

func TestPollStalled(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"q"}})
	cur := poll(t, w, nil).Cursor

	// A job that failed once, was retried and then stalled: the move to
	// wait that comes with the stall is not a retry.
	c.HSet(ctx, "bull:q:9", "name", "Slow", "data", `[]`, "atm", "1", "failedReason", "earlier",
		"stacktrace", `["Error: earlier\n    at x"]`)
	key := "bull:q:events"
	xadd(t, c, key, "event", "waiting", "jobId", "9", "prev", "active")
	stalled := xadd(t, c, key, "event", "stalled", "jobId", "9")

	b := poll(t, w, cur)
	want := []jobs.Event{{Backend: jobs.BullMQ, JobID: "9", Class: "Slow", Queue: "q", Status: jobs.Retrying,
		ErrorMessage: stalledMessage, At: idTime(stalled), NextRetryAt: idTime(stalled), Args: []any{[]any{}}}}
	if !reflect.DeepEqual(b.Events, want) || len(b.Skipped) != 0 {
		t.Errorf("events %s skips %v, want %s", dump(b.Events), b.Skipped, dump(want))
	}
}

func TestPollReportsTrimmedEvents(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"q"}})
	key := "bull:q:events"
	xadd(t, c, key, "event", "drained")
	cur := poll(t, w, nil).Cursor
	for i := 0; i < 5; i++ {
		xadd(t, c, key, "event", "completed", "jobId", "gone", "prev", "active")
	}
	kept := xadd(t, c, key, "event", "completed", "jobId", "kept", "prev", "active")
	// What BullMQ's MAXLEN trimming does to a reader that fell behind.
	if err := c.XTrimMaxLen(ctx, key, 1).Err(); err != nil {
		t.Fatal(err)
	}
	b := poll(t, w, cur)
	if len(b.Skipped) != 1 || b.Skipped[0].Reason != "events_trimmed" {
		t.Fatalf("skips %+v, want one events_trimmed", b.Skipped)
	}
	if len(b.Events) != 1 || b.Events[0].JobID != "kept" {
		t.Fatalf("events %s, want the one kept", dump(b.Events))
	}
	// Reported once: the next Poll starts after the trimmed part.
	if again := pollQuick(t, w, b.Cursor); len(again.Skipped) != 0 || len(again.Events) != 0 {
		t.Errorf("second Poll: %+v", again)
	}
	_ = kept

	// A stream that did not exist at the start (cursor 0-0), then was
	// trimmed before the first read.
	w2 := newWatcher(t, Config{URL: srv.URL, Queues: []string{"later"}})
	cur = poll(t, w2, nil).Cursor
	for i := 0; i < 3; i++ {
		xadd(t, c, "bull:later:events", "event", "drained")
	}
	if err := c.XTrimMaxLen(ctx, "bull:later:events", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if b := poll(t, w2, cur); len(b.Skipped) != 1 || b.Skipped[0].Reason != "events_trimmed" {
		t.Errorf("new stream trimmed: skips %+v", b.Skipped)
	}
}

// pollQuick polls with a short block, for Polls that should find nothing.
func pollQuick(t *testing.T, w *Watcher, cursor []byte) jobs.Batch {
	t.Helper()
	w.cfg.Block = 50 * time.Millisecond
	return poll(t, w, cursor)
}

func TestPollBadCursorStartsNow(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"q"}})
	last := xadd(t, c, "bull:q:events", "event", "completed", "jobId", "old", "prev", "active")
	for _, cur := range []string{`{`, `{"ids":{"q":"nonsense"}}`} {
		b := poll(t, w, []byte(cur))
		if len(b.Skipped) != 1 || b.Skipped[0].Reason != "bad_cursor" || len(b.Events) != 0 ||
			string(b.Cursor) != `{"ids":{"q":"`+last+`"}}` {
			t.Errorf("cursor %s: got %+v", cur, b)
		}
	}
}

func TestPollLag(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"q"}, Count: 1})
	key := "bull:q:events"
	cur := poll(t, w, nil).Cursor
	first, _ := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: key, ID: "1000-0", Values: []string{"event", "drained"}}).Result()
	last, _ := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: key, ID: "4000-0", Values: []string{"event", "drained"}}).Result()
	b := poll(t, w, cur)
	if string(b.Cursor) != `{"ids":{"q":"`+first+`"}}` || b.Lag != 3*time.Second {
		t.Errorf("after one of two: cursor %s lag %v, want %s and 3s", b.Cursor, b.Lag, first)
	}
	b = poll(t, w, b.Cursor)
	if string(b.Cursor) != `{"ids":{"q":"`+last+`"}}` || b.Lag != 0 {
		t.Errorf("caught up: cursor %s lag %v", b.Cursor, b.Lag)
	}
}

func TestCheck(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{"here", "absent"}})
	xadd(t, c, "bull:here:events", "event", "drained")
	c.HSet(context.Background(), "bull:here:meta", "opts.maxLenEvents", "500")
	lines, err := w.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "bullmq queue here: events stream bull:here:events holds 1 entries (newest ") ||
		!strings.Contains(lines[0], "trims it to about 500,") ||
		!strings.HasPrefix(lines[1], "bullmq queue absent: no events stream bull:absent:events yet") {
		t.Errorf("Check:\n%s", strings.Join(lines, "\n"))
	}
	srv.Kill()
	if _, err := w.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("Check with Redis down: %v", err)
	}
	if _, err := w.Poll(context.Background(), nil); err == nil {
		t.Error("Poll with Redis down: no error")
	}
}

func TestConfig(t *testing.T) {
	if (Config{}).Configured() || !(Config{URL: "redis://x"}).Configured() {
		t.Error("Configured: want true exactly when URL is set")
	}
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Queues: []string{"a"}}, "CABLECAR_JOBS_BULLMQ_URL is not set"},
		{Config{URL: "redis://127.0.0.1:1", Queues: []string{" ", ""}}, "CABLECAR_JOBS_BULLMQ_QUEUES is not set"},
		{Config{URL: "http://secret@x", Queues: []string{"a"}}, "CABLECAR_JOBS_BULLMQ_URL: redis: invalid URL scheme"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, quiet())
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%+v): %v, want %q", tt.cfg, err, tt.want)
		}
	}
	w, err := New(Config{URL: "redis://127.0.0.1:1", Queues: []string{" a", "b", "a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !reflect.DeepEqual(w.queues, []string{"a", "b"}) || w.cfg.Prefix != "bull" || w.cfg.Block != time.Second ||
		w.cfg.Count != 500 || w.cfg.MaxValue != 64<<10 || w.Backend() != jobs.BullMQ {
		t.Errorf("defaults: %+v %v", w.cfg, w.queues)
	}
}
