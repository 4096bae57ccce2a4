package solidqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// TestLateCommit: on PostgreSQL a lower id, or an earlier finished_at, can
// commit after a higher one was read. Two real transactions commit out of
// order; the event held back by the open one still arrives, once.
func testLateCommit(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	slowFail := f.enqueue(t, "SlowJob", "default", "aj-slow-fail", `[]`)
	fastFail := f.enqueue(t, "FastJob", "default", "aj-fast-fail", `[]`)
	slowDone := f.enqueue(t, "SlowJob", "default", "aj-slow-done", `[]`)
	fastDone := f.enqueue(t, "FastJob", "default", "aj-fast-done", `[]`)
	for _, id := range []int64{slowFail, fastFail, slowDone, fastDone} {
		f.claim(t, f.db, id, worker, 0)
	}
	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor

	slow, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback()
	f.fail(t, slow, slowFail, errorJSON("Timeout::Error", "slow"), 5*time.Second) // takes the lower id
	f.finish(t, slow, slowDone, 5*time.Second)                                    // stamped earlier
	f.fail(t, f.db, fastFail, errorJSON("ArgumentError", "fast"), 6*time.Second)
	f.finish(t, f.db, fastDone, 6*time.Second)

	b := poll(t, w, cur)
	fastFailed := f.ev(jobs.Failed, "aj-fast-fail", "FastJob", "default", 6*time.Second)
	fastFailed.ErrorClass, fastFailed.ErrorMessage = "ArgumentError", "fast"
	expectEvents(t, b.Events, fastFailed, f.ev(jobs.Completed, "aj-fast-done", "FastJob", "default", 6*time.Second))
	var c cursor
	if err := json.Unmarshal(b.Cursor, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Failed.Holes) != 1 {
		t.Fatalf("failed holes %+v, want the slow transaction's id", c.Failed.Holes)
	}

	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	b = poll(t, w, b.Cursor)
	slowFailed := f.ev(jobs.Failed, "aj-slow-fail", "SlowJob", "default", 5*time.Second)
	slowFailed.ErrorClass, slowFailed.ErrorMessage = "Timeout::Error", "slow"
	expectEvents(t, b.Events, slowFailed, f.ev(jobs.Completed, "aj-slow-done", "SlowJob", "default", 5*time.Second))
	expectEvents(t, poll(t, w, b.Cursor).Events)
}

// TestHoleExpiry: ids skipped over are looked up again until the settle
// window passes, then forgotten, so the cursor stays small.
func testHoleExpiry(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, func(c *Config) { c.Settle = 300 * time.Millisecond })
	cur := poll(t, w, nil).Cursor
	// A claim that was deleted before the poll (the job ended)
	// leaves a hole below the next one.
	a := f.enqueue(t, "HoleJob", "default", "aj-a", `[]`)
	b := f.enqueue(t, "HoleJob", "default", "aj-b", `[]`)
	f.claim(t, f.db, a, worker, time.Second)
	f.exec(t, "DELETE FROM solid_queue_claimed_executions WHERE job_id = ?", a)
	f.claim(t, f.db, b, worker, 2*time.Second)
	batch := poll(t, w, cur)
	expectEvents(t, batch.Events, f.ev(jobs.Running, "aj-b", "HoleJob", "default", 2*time.Second))
	if !strings.Contains(string(batch.Cursor), `"holes":[[`) {
		t.Fatalf("cursor %s: want one hole", batch.Cursor)
	}
	time.Sleep(400 * time.Millisecond)
	batch = poll(t, w, batch.Cursor)
	expectEvents(t, batch.Events)
	if strings.Contains(string(batch.Cursor), `"holes"`) {
		t.Fatalf("cursor %s: hole kept after the settle window", batch.Cursor)
	}
}

// TestLost: a claim whose process stopped heartbeating for longer than the
// alive threshold, or whose process row is gone, is lost, reported once;
// a claim of a live process is not. Claims already lost when the watcher
// first starts are history.
func testLost(t *testing.T, f *fixture) {
	f.schema(t)
	live := f.register(t, "live", time.Now())
	silent := f.register(t, "silent", time.Now().Add(-10*time.Minute))
	gone := f.register(t, "gone", time.Now())
	before := f.enqueue(t, "OldJob", "default", "aj-before", `[]`)
	f.claim(t, f.db, before, silent, 0)

	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor

	running := f.enqueue(t, "LiveJob", "default", "aj-live", `[]`)
	stuck := f.enqueue(t, "StuckJob", "critical", "aj-stuck", `[5]`)
	orphan := f.enqueue(t, "OrphanJob", "default", "aj-orphan", `[]`)
	f.claim(t, f.db, running, live, time.Second)
	f.claim(t, f.db, stuck, silent, 2*time.Second)
	f.claim(t, f.db, orphan, gone, 3*time.Second)
	f.exec(t, "DELETE FROM solid_queue_processes WHERE id = ?", gone) // SIGKILL: the row stays until pruned; here it is gone
	b := poll(t, w, cur)
	expectNoSkips(t, b)
	var lost, other []jobs.Event
	for _, e := range b.Events {
		if e.Status == jobs.Lost {
			if e.At.IsZero() || time.Since(e.At) > time.Minute {
				t.Errorf("lost %s at %v: want the time it was noticed", e.JobID, e.At)
			}
			e.At = time.Time{}
			lost = append(lost, e)
		} else {
			other = append(other, e)
		}
	}
	expectEvents(t, other,
		f.ev(jobs.Running, "aj-live", "LiveJob", "default", time.Second),
		f.ev(jobs.Running, "aj-stuck", "StuckJob", "critical", 2*time.Second, json.Number("5")),
		f.ev(jobs.Running, "aj-orphan", "OrphanJob", "default", 3*time.Second))
	wantStuck := f.ev(jobs.Lost, "aj-stuck", "StuckJob", "critical", 0, json.Number("5"))
	wantOrphan := f.ev(jobs.Lost, "aj-orphan", "OrphanJob", "default", 0)
	wantStuck.At, wantOrphan.At = time.Time{}, time.Time{}
	expectEvents(t, lost, wantStuck, wantOrphan)

	b = poll(t, w, b.Cursor)
	expectEvents(t, b.Events) // once only
	// The process comes back to life: nothing to report; when it
	// dies again with the claim, that claim was reported already.
	f.exec(t, "UPDATE solid_queue_processes SET last_heartbeat_at = ? WHERE id = ?", f.d.timeArg(time.Now()), silent)
	b = poll(t, w, b.Cursor)
	expectEvents(t, b.Events)
	var c cursor
	if err := json.Unmarshal(b.Cursor, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Lost) != 1 {
		t.Errorf("cursor remembers %v lost claims, want only the orphan's (the others are alive again)", c.Lost)
	}
}

// TestBadData: malformed or oversized rows are skipped with a reason, the
// good rows around them still arrive, and nothing stops.
func testBadData(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor

	huge := f.serialize("HugeJob", "default", "aj-huge", `["`+strings.Repeat("x", 70<<10)+`"]`)
	cases := []struct {
		class, raw string
		errJSON    string
	}{
		{"TruncatedJob", `{"job_class":"TruncatedJob","arguments":[1,`, errorJSON("E", "m")},
		{"NoArgsJob", `{"job_class":"NoArgsJob","job_id":"x"}`, errorJSON("E", "m")},
		{"HugeJob", huge, errorJSON("E", "m")},
		{"GoodJob", f.serialize("GoodJob", "default", "aj-good", `[1]`), errorJSON("RuntimeError", "boom")},
		{"BadErrorJob", f.serialize("BadErrorJob", "default", "aj-bad-error", `[]`), `{"exception_class":`},
		{"NoClassJob", f.serialize("NoClassJob", "default", "aj-no-class", `[]`), `{"message":"m"}`},
	}
	var failIDs, jobIDs []int64
	for i, c := range cases {
		id := f.enqueueRaw(t, c.class, "default", "aj-"+strings.ToLower(c.class), c.raw)
		f.claim(t, f.db, id, worker, time.Second)
		failIDs = append(failIDs, f.fail(t, f.db, id, c.errJSON, time.Duration(10+i)*time.Second))
		jobIDs = append(jobIDs, id)
	}
	b := poll(t, w, cur)
	good := f.ev(jobs.Failed, "aj-goodjob", "GoodJob", "default", 13*time.Second, json.Number("1"))
	good.ErrorClass, good.ErrorMessage = "RuntimeError", "boom"
	expectEvents(t, b.Events, good)
	want := []jobs.Skip{
		{Reason: "malformed_json", Detail: fmt.Sprintf("failed execution %d (job %d): arguments: invalid JSON at byte 43", failIDs[0], jobIDs[0])},
		{Reason: "missing_field", Detail: fmt.Sprintf(`failed execution %d (job %d): arguments: no "arguments" array`, failIDs[1], jobIDs[1])},
		{Reason: "too_large", Detail: fmt.Sprintf("failed execution %d (job %d): arguments: %d bytes, over the 65536 byte cap", failIDs[2], jobIDs[2], len(huge))},
		{Reason: "malformed_json", Detail: fmt.Sprintf("failed execution %d (job %d): error: invalid JSON at byte 19", failIDs[4], jobIDs[4])},
		{Reason: "missing_field", Detail: fmt.Sprintf("failed execution %d (job %d): error: no exception_class", failIDs[5], jobIDs[5])},
	}
	if fmt.Sprint(b.Skipped) != fmt.Sprint(want) {
		t.Fatalf("skipped:\n got %v\nwant %v", b.Skipped, want)
	}
	// The cursor moved past the bad rows: they are not retried.
	b = poll(t, w, b.Cursor)
	expectEvents(t, b.Events)
	if len(b.Skipped) != 0 {
		t.Fatalf("skipped again: %v", b.Skipped)
	}
}

// TestLimits: a backlog larger than one poll's share comes over several
// polls, without waiting between them, with the lag reported, in order.
func testLimits(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, func(c *Config) {
		c.BatchSize, c.MaxEvents = 2, 3
		c.PollInterval = time.Hour // a cut-short round must not wait
	})
	cur := poll(t, w, nil).Cursor
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("aj-%d", i)
		id := f.enqueue(t, "BulkJob", "default", name, `[]`)
		f.claim(t, f.db, id, worker, 0)
		f.exec(t, "DELETE FROM solid_queue_claimed_executions WHERE job_id = ?", id)
		f.finish(t, f.db, id, time.Duration(i)*time.Second)
		want = append(want, name)
	}
	var got []string
	for round := 0; len(got) < 5 && round < 5; round++ {
		b := poll(t, w, cur)
		if round == 0 && (len(b.Events) != 4 || b.Lag <= 0) {
			t.Fatalf("first round: %d events, lag %v; want 4 (two pages of 2 reach the cap of 3) and a lag", len(b.Events), b.Lag)
		}
		for _, e := range b.Events {
			got = append(got, e.JobID)
		}
		cur = b.Cursor
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("completed %v, want %v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := w.Poll(ctx, cur); err != context.DeadlineExceeded {
		t.Fatalf("caught-up poll with a 1h interval: %v, want it to wait until ctx ends", err)
	}
}

// TestPostgresRestart: the database dies; Poll reports errors; it comes
// back and the events written before the crash arrive, once.
func TestPostgresRestart(t *testing.T) {
	f := newFixture(t, "postgres", nil, 0)
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor
	id := f.enqueue(t, "CrashJob", "default", "aj-crash", `[]`)
	f.claim(t, f.db, id, worker, time.Second)
	f.fail(t, f.db, id, errorJSON("PG::ConnectionBad", "gone"), 2*time.Second)

	f.pg.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 2 {
		if b, err := w.Poll(ctx, cur); err == nil {
			t.Fatalf("poll with the database down: no error, %d events", len(b.Events))
		}
	}
	f.pg.Restart(t)
	var b jobs.Batch
	var err error
	for range 20 { // the pool drops its dead connections on the way
		if b, err = w.Poll(ctx, cur); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("poll after restart: %v", err)
	}
	want := f.ev(jobs.Failed, "aj-crash", "CrashJob", "default", 2*time.Second)
	want.ErrorClass, want.ErrorMessage = "PG::ConnectionBad", "gone"
	expectEvents(t, b.Events, want)
	expectEvents(t, poll(t, w, b.Cursor).Events)
}

// testClockAhead: a worker whose clock runs an hour ahead stamps a future
// finished_at; the jobs other workers finish now are still reported, and
// the future one only once.
func testClockAhead(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor
	ahead := f.enqueue(t, "AheadJob", "default", "aj-ahead", `[]`)
	f.claim(t, f.db, ahead, worker, 0)
	f.finish(t, f.db, ahead, 2*time.Hour) // base is an hour ago: an hour from now
	b := poll(t, w, cur)
	expectEvents(t, b.Events, f.ev(jobs.Completed, "aj-ahead", "AheadJob", "default", 2*time.Hour))
	now := f.enqueue(t, "NowJob", "default", "aj-now", `[]`)
	f.claim(t, f.db, now, worker, 0)
	f.finish(t, f.db, now, time.Hour)
	b = poll(t, w, b.Cursor)
	expectEvents(t, b.Events, f.ev(jobs.Completed, "aj-now", "NowJob", "default", time.Hour))
	expectEvents(t, poll(t, w, b.Cursor).Events)
}
