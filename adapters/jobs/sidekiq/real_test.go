package sidekiq

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// follower polls a watcher in a loop, as the runner does, and keeps every
// event.
type follower struct {
	h      *harness
	cur    []byte
	events []jobs.Event
	skips  []jobs.Skip
}

func newFollower(t *testing.T, srv *redistest.Server) *follower {
	h := newHarnessOn(t, srv, Config{Settle: 500 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	f := &follower{h: h}
	f.cur = h.poll(nil).Cursor
	return f
}

// until polls until an event for id with status st has come, and returns
// it; it fails the test after timeout.
func (f *follower) until(id string, st jobs.Status, timeout time.Duration) jobs.Event {
	f.h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range f.events {
			if e.JobID == id && e.Status == st {
				return e
			}
		}
		if time.Now().After(deadline) {
			f.h.t.Fatalf("no %s event for %s within %v; events so far: %+v", st, id, timeout, f.events)
		}
		b := f.h.poll(f.cur)
		f.cur, f.events, f.skips = b.Cursor, append(f.events, b.Events...), append(f.skips, b.Skipped...)
	}
}

// of is the statuses reported for id, in order.
func (f *follower) of(id string) []jobs.Status {
	var out []jobs.Status
	for _, e := range f.events {
		if e.JobID == id {
			out = append(out, e.Status)
		}
	}
	return out
}

// TestRealSidekiq drives the watcher against Debian's real Sidekiq 6.
func TestRealSidekiq(t *testing.T) {
	t.Run("fates", testRealFates)
	t.Run("lost", testRealLost)
}

// testRealFates: a job that raises (retry: 1) is retrying with its error
// class, then dead once its retry (made due at once) raises again; a plain
// job and an ActiveJob job that outlive a heartbeat (8 s; Sidekiq 6 beats
// every 5 s) are running, then completed, with their arguments (the
// ActiveJob one by its job_id, with its GlobalID argument).
func testRealFates(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	sk := jobstest.StartSidekiq(t, srv.URL)
	f := newFollower(t, srv)

	failJID := sk.Enqueue("FailJob", 1, "two")
	sleepJID := sk.Enqueue("SleepJob", 8)
	ajID := sk.EnqueueActiveJob("SleepActiveJob", map[string]any{"document": 7}, 8)

	r := f.until(failJID, jobs.Retrying, 20*time.Second)
	if r.Class != "FailJob" || r.Queue != "default" || r.ErrorClass != "CablecarTestError" ||
		r.ErrorMessage != "failed on purpose" || !r.HasRetryCount || r.RetryCount != 0 {
		t.Errorf("retrying event %+v", r)
	}
	if d := r.NextRetryAt.Sub(r.At); d < 15*time.Second || d > 25*time.Second {
		t.Errorf("next retry %v after the failure, want 15 s to 25 s (15 + rand(10))", d)
	}
	if want := []any{json.Number("1"), "two"}; !argsEqual(r.Args, want) {
		t.Errorf("retrying args %#v, want %#v", r.Args, want)
	}
	makeDue(t, f.h, failJID)

	d := f.until(failJID, jobs.Dead, 30*time.Second)
	if d.Class != "FailJob" || d.ErrorClass != "CablecarTestError" || !d.HasRetryCount || d.RetryCount != 1 {
		t.Errorf("dead event %+v", d)
	}

	for _, tc := range []struct {
		id, class string
		args      []any
	}{
		{sleepJID, "SleepJob", []any{json.Number("8")}},
		{ajID, "SleepActiveJob", []any{map[string]any{"_aj_globalid": "gid://cablecar-test/Document/7"}, json.Number("8")}},
	} {
		c := f.until(tc.id, jobs.Completed, 30*time.Second)
		if got := f.of(tc.id); len(got) != 2 || got[0] != jobs.Running || got[1] != jobs.Completed {
			t.Errorf("%s: statuses %v, want [running completed]", tc.class, got)
		}
		if c.Class != tc.class || c.Queue != "default" || !argsEqual(c.Args, tc.args) {
			t.Errorf("%s: completed event %+v, want class %s args %#v", tc.class, c, tc.class, tc.args)
		}
	}
	for _, st := range f.of(failJID) {
		if st == jobs.Completed || st == jobs.Lost {
			t.Errorf("FailJob reported %s: %v", st, f.of(failJID))
		}
	}
	if len(f.skips) != 0 {
		t.Errorf("skipped %+v", f.skips)
	}
}

// testRealLost: a job running when its Sidekiq is killed with SIGKILL is
// lost once the process's heartbeat key expires. Sidekiq fixes that expiry
// at 60 s after the last heartbeat, so this waits up to about 65 s.
func testRealLost(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	sk := jobstest.StartSidekiq(t, srv.URL)
	f := newFollower(t, srv)

	jid := sk.Enqueue("SleepJob", 300)
	f.until(jid, jobs.Running, 20*time.Second)
	sk.Kill()
	l := f.until(jid, jobs.Lost, 80*time.Second)
	if l.Class != "SleepJob" || l.Queue != "default" || !argsEqual(l.Args, []any{json.Number("300")}) {
		t.Errorf("lost event %+v", l)
	}
	if got := f.of(jid); len(got) != 2 {
		t.Errorf("statuses %v, want [running lost]", got)
	}
}

// makeDue moves jid's retry entry to now, so that Sidekiq's poller
// enqueues it within a second or so instead of 15 to 25 s.
func makeDue(t *testing.T, h *harness, jid string) {
	t.Helper()
	ms, err := h.rdb.ZRange(h.ctx, "retry", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.Contains(m, `"jid":"`+jid+`"`) {
			if err := h.rdb.ZAddXX(h.ctx, "retry", goredis.Z{Score: h.now(), Member: m}).Err(); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no retry entry for %s", jid)
}

// argsEqual compares exactly: numbers must be json.Number.
func argsEqual(got, want []any) bool { return reflect.DeepEqual(got, want) }
