package celery

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/redistest"
)

// These tests publish and store results by hand, in the shape Celery 5.2's
// Redis backend writes them (SET the key, PUBLISH the same JSON to the
// channel of that name), for what a real worker does not produce on
// demand: bad data, a result too large.

// store writes a result as Celery's backend does.
func store(t *testing.T, c *goredis.Client, id, value string) {
	t.Helper()
	ctx := context.Background()
	key := DefaultKeyPrefix + id
	if err := c.Set(ctx, key, value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, key, value).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestPollSkipsBadData(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL, MaxValue: 1024})
	cur := poll(t, w, nil).Cursor

	store(t, c, "a", `{"status": "SUCCESS", "task_id": `)
	store(t, c, "b", `{"status": "SUCCESS", "result": 1, "date_done": "2026-01-01T00:00:00"}`)
	store(t, c, "c", `{"status": "STARTED", "task_id": "c", "result": "`+strings.Repeat("x", 2000)+`"}`)
	store(t, c, "d", `{"status": "SUCCESS", "task_id": "d", "date_done": "yesterday"}`)
	store(t, c, "e", `{"status": "FAILURE", "task_id": "e", "date_done": null}`)
	store(t, c, "f", `{"status": "STARTED", "task_id": "f", "args": {"not": "a list"}}`)
	store(t, c, "g", `{"status": "PENDING", "task_id": "g"}`)
	store(t, c, "h", `{"status": "RETRY", "task_id": "h", "result": null, "date_done": null, "retries": 2}`)
	store(t, c, "i", `{"status": "FAILURE", "task_id": "i", "result": {"exc_type": "KeyError", "exc_message": ["k", 2], "exc_module": "builtins"}, "date_done": "2026-12-04T14:55:06"}`)

	var b jobs.Batch
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Events) < 2 && time.Now().Before(deadline) {
		next := poll(t, w, cur)
		b.Events, b.Skipped, cur = append(b.Events, next.Events...), append(b.Skipped, next.Skipped...), next.Cursor
	}
	var reasons []string
	for _, s := range b.Skipped {
		reasons = append(reasons, s.Reason)
		if strings.Contains(s.Detail, "xxxx") {
			t.Errorf("skip detail repeats the data: %q", s.Detail)
		}
	}
	if want := []string{"malformed_json", "missing_field", "too_large", "malformed_date", "missing_field", "malformed_json"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("skips %v, want %v: %+v", reasons, want, b.Skipped)
	}
	for i := range b.Events {
		if b.Events[i].JobID == "h" && time.Since(b.Events[i].At) > time.Minute {
			t.Errorf("RETRY At %v: want the time it was received", b.Events[i].At)
		}
		if b.Events[i].JobID == "h" {
			b.Events[i].At = time.Time{}
		}
	}
	want := []jobs.Event{
		{Backend: jobs.Celery, JobID: "h", Status: jobs.Retrying, RetryCount: 2, HasRetryCount: true},
		{Backend: jobs.Celery, JobID: "i", Status: jobs.Failed, ErrorClass: "KeyError", ErrorMessage: `["k",2]`, HasRetryCount: false,
			At: time.Date(2026, 12, 4, 14, 55, 6, 0, time.UTC)},
	}
	if !reflect.DeepEqual(b.Events, want) {
		t.Errorf("events %s, want %s", dump(b.Events), dump(want))
	}
}

func TestParseMessages(t *testing.T) {
	tests := []struct {
		result  string
		class   string
		message string
	}{
		{`{"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"}`, "ValueError", "bad"},
		{`{"exc_type": "Outer.Inner", "exc_message": "plain", "exc_module": "app"}`, "Outer.Inner", "plain"},
		{`{"exc_type": "Timeout", "exc_message": [], "exc_module": "app"}`, "Timeout", ""},
		{`{"exc_type": "KeyError", "exc_message": [1, "x"], "exc_module": "builtins"}`, "KeyError", `[1,"x"]`},
		{`null`, "", ""},
		{`"a string"`, "", ""},
	}
	for _, tt := range tests {
		class, msg := describeExc(json.RawMessage(tt.result))
		if class != tt.class || msg != tt.message {
			t.Errorf("%s: %q %q, want %q %q", tt.result, class, msg, tt.class, tt.message)
		}
	}
	for in, want := range map[string]time.Time{
		"2026-12-04T14:55:06.071994":       time.Date(2026, 12, 4, 14, 55, 6, 71994000, time.UTC),
		"2026-12-04T14:55:06":              time.Date(2026, 12, 4, 14, 55, 6, 0, time.UTC),
		"2026-12-04T14:55:06.5+00:00":      time.Date(2026, 12, 4, 14, 55, 6, 500000000, time.UTC),
		"2026-12-04T16:55:06.071994+02:00": time.Date(2026, 12, 4, 14, 55, 6, 71994000, time.UTC),
	} {
		if got, err := parseDate(in); err != nil || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestPollRepeatsBatchForSameCursor(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL})
	cur := poll(t, w, nil).Cursor
	store(t, c, "x", `{"status": "STARTED", "task_id": "x", "name": "t"}`)
	b1 := poll(t, w, cur)
	if len(b1.Events) != 1 {
		t.Fatalf("events %s", dump(b1.Events))
	}
	store(t, c, "y", `{"status": "STARTED", "task_id": "y", "name": "t"}`)
	// The runner failed to commit b1 and asks again: the same answer.
	b2 := poll(t, w, cur)
	if !reflect.DeepEqual(b1, b2) {
		t.Errorf("repeated Poll: %s / %s, want the same batch", dump(b1.Events), dump(b2.Events))
	}
	b3 := poll(t, w, b1.Cursor)
	if len(b3.Events) != 1 || b3.Events[0].JobID != "y" {
		t.Errorf("next Poll: %s, want y", dump(b3.Events))
	}
}

func TestSubscriptionFollowsPolls(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	w := newWatcher(t, Config{URL: srv.URL, IdleStop: 200 * time.Millisecond})
	numpat := func() int64 { return c.PubSubNumPat(ctx).Val() }
	cur := poll(t, w, nil).Cursor
	if n := numpat(); n != 1 {
		t.Fatalf("after a Poll: %d pattern subscriptions, want 1", n)
	}
	// Redis drops a closed connection's subscriptions soon, not at once.
	waitNone := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for numpat() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: subscription still on", when)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitNone("no Poll for IdleStop")
	poll(t, w, cur)
	if n := numpat(); n != 1 {
		t.Errorf("polled again: %d pattern subscriptions, want 1", n)
	}
	_ = w.Close()
	waitNone("after Close")
}

func TestCursor(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_123).UTC()
	s := state{scan: 42, cycle: now, floor: now.Add(-time.Hour)}
	for i := 0; i < 5; i++ {
		s.add(seenKey("t", "SUCCESS", string(rune('a'+i))), now.Add(time.Duration(i-3)*time.Hour))
	}
	got, err := decodeState(s.encode())
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, s)
	}
	// Finished before the floor: the sweep no longer reports them.
	s.prune(100)
	if len(s.seen) != 3 {
		t.Errorf("prune by floor kept %d, want 3", len(s.seen))
	}
	s.prune(2)
	if len(s.seen) != 2 || s.seen[1].done != uint32(now.Add(time.Hour).Unix()) {
		t.Errorf("prune by count kept %+v, want the 2 newest", s.seen)
	}
	for _, bad := range []string{`{`, `{"scan":"x","cycle":1,"floor":1,"seen":""}`, `{"scan":"1","cycle":1,"floor":1,"seen":"AAAA"}`, `{"scan":"1","seen":""}`} {
		if _, err := decodeState([]byte(bad)); err == nil {
			t.Errorf("decodeState(%s): no error", bad)
		}
	}
	// A cursor of the full size stays well under a megabyte.
	s = state{cycle: now, floor: now}
	for i := 0; i < DefaultSeenMax; i++ {
		s.add(uint64(i), now)
	}
	if n := len(s.encode()); n > 200<<10 {
		t.Errorf("cursor with %d seen is %d bytes", DefaultSeenMax, n)
	}
}

func TestPollBadCursor(t *testing.T) {
	srv := redistest.Start(t)
	w := newWatcher(t, Config{URL: srv.URL})
	b := poll(t, w, []byte(`{"scan":`))
	if len(b.Skipped) != 1 || b.Skipped[0].Reason != "bad_cursor" || len(b.Events) != 0 {
		t.Fatalf("batch %+v", b)
	}
	if _, err := decodeState(b.Cursor); err != nil {
		t.Errorf("new cursor %s: %v", b.Cursor, err)
	}
}

func TestCheck(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	w := newWatcher(t, Config{URL: srv.URL})
	check := func() string {
		t.Helper()
		lines, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	if got := check(); !strings.HasPrefix(got, "celery: no result key matching celery-task-meta-* found yet") {
		t.Errorf("empty: %s", got)
	}
	c.Set(ctx, DefaultKeyPrefix+"1", `{"status": "SUCCESS", "task_id": "1", "result": 1, "date_done": "2026-12-04T14:55:06"}`, 0)
	if got := check(); !strings.Contains(got, "set result_extended = True") {
		t.Errorf("without result_extended: %s", got)
	}
	c.Set(ctx, DefaultKeyPrefix+"1", "\x80\x04\x95pickle", 0)
	if got := check(); !strings.Contains(got, "result_serializer = 'json'") {
		t.Errorf("pickled: %s", got)
	}
	c.Set(ctx, DefaultKeyPrefix+"1", `{"status": "SUCCESS", "task_id": "1", "result": 1, "date_done": "2026-12-04T14:55:06", "name": "t", "args": []}`, 0)
	if got := check(); got != "celery: result keys found (celery-task-meta-1)" {
		t.Errorf("healthy: %s", got)
	}
	srv.Kill()
	if _, err := w.Check(ctx); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("Redis down: %v", err)
	}
	if _, err := w.Poll(ctx, nil); err == nil {
		t.Error("Poll with Redis down: no error")
	}
}

func TestConfig(t *testing.T) {
	if (Config{}).Configured() || !(Config{URL: "redis://x"}).Configured() {
		t.Error("Configured: want true exactly when URL is set")
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "CABLECAR_JOBS_CELERY_URL is not set"},
		{Config{URL: "http://secret@x"}, "CABLECAR_JOBS_CELERY_URL: redis: invalid URL scheme"},
		{Config{URL: "redis://x", Grace: time.Minute, Skew: time.Second}, "Grace 1m0s must be shorter than Skew 1s"},
	} {
		if _, err := New(tt.cfg, quiet()); err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%+v): %v, want %q", tt.cfg, err, tt.want)
		}
	}
	w, err := New(Config{URL: "redis://127.0.0.1:1", KeyPrefix: "app[1]*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.pattern != `app\[1\]\**` || w.Backend() != jobs.Celery || w.cfg.Block != time.Second || w.cfg.Grace != 5*time.Second {
		t.Errorf("pattern %q cfg %+v", w.pattern, w.cfg)
	}
}

// TestSweepPaced stores results without publishing them, as if written
// while no node listened, in a keyspace the sweep crosses a few keys at a
// time: each finished one is reported exactly once, history never.
func TestSweepPaced(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		c.Set(ctx, fmt.Sprintf("%sold%d", DefaultKeyPrefix, i),
			fmt.Sprintf(`{"status": "SUCCESS", "task_id": "old%d", "date_done": "2020-01-01T00:00:00"}`, i), 0)
	}
	w := newWatcher(t, Config{URL: srv.URL, SweepCount: 3, Block: 10 * time.Millisecond, Skew: 300 * time.Millisecond})
	cur := poll(t, w, nil).Cursor
	want := map[string]bool{}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("new%d", i)
		done := time.Now().UTC().Format("2006-01-02T15:04:05.000000")
		c.Set(ctx, DefaultKeyPrefix+id, fmt.Sprintf(`{"status": "SUCCESS", "task_id": %q, "date_done": %q}`, id, done), 0)
		want[id] = true
	}
	c.Set(ctx, DefaultKeyPrefix+"running", `{"status": "STARTED", "task_id": "running", "date_done": null}`, 0)
	time.Sleep(300 * time.Millisecond) // past Grace

	written := time.Now()
	got := map[string]int{}
	cycles := 0
	// Until two sweep cycles passed and the floor passed the results'
	// second, so the cursor may forget them.
	for polls := 0; ; polls++ {
		if polls > 1000 {
			t.Fatalf("floor never passed the results in %d polls", polls)
		}
		b := poll(t, w, cur)
		for _, e := range b.Events {
			got[e.JobID]++
		}
		cur = b.Cursor
		st, _ := decodeState(cur)
		if st.scan != 0 {
			continue
		}
		cycles++
		if cycles >= 2 && st.floor.After(written.Add(time.Second)) {
			break
		}
		time.Sleep(100 * time.Millisecond) // let the floor move on
	}
	for id, n := range got {
		if !want[id] || n != 1 {
			t.Errorf("task %s reported %d times", id, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("reported %d tasks, want %d", len(got), len(want))
	}
	// The floor passed the results: the cursor forgot them.
	if st, _ := decodeState(cur); len(st.seen) != 0 {
		t.Errorf("cursor still remembers %d results", len(st.seen))
	}
}

// Running results, published once each, are reported once each, however
// fast the Polls come. Two Polls within one millisecond that carried only
// running events used to return the cursor they were given; the next Poll
// then looked like the runner repeating an uncommitted batch and got the
// same batch again, for ever.
func TestRunningReportedOnce(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	w := newWatcher(t, Config{URL: srv.URL, Batch: 1})
	cur := poll(t, w, nil).Cursor
	// Published only, not stored: with no keys the sweep ends its cycle
	// on every Poll, so nothing in the cursor but the time moves.
	const n = 200
	for i := range n {
		value := fmt.Sprintf(`{"status": "STARTED", "task_id": "r%d", "result": {"pid": 1}, "date_done": null}`, i)
		if err := c.Publish(context.Background(), DefaultKeyPrefix+fmt.Sprintf("r%d", i), value).Err(); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for polls := 0; len(seen) < n && polls < 2*n && time.Now().Before(deadline); polls++ {
		b := poll(t, w, cur)
		for _, e := range b.Events {
			if seen[e.JobID]++; e.Status != jobs.Running || seen[e.JobID] > 1 {
				t.Fatalf("poll %d: %s reported again or not as running: %s", polls, e.JobID, dump(b.Events))
			}
		}
		cur = b.Cursor
	}
	if len(seen) != n {
		t.Errorf("%d of %d running tasks reported", len(seen), n)
	}
}
