package solidqueue

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// ev builds an expected event.
func (f *fixture) ev(status jobs.Status, jobID, class, queue string, at time.Duration, args ...any) jobs.Event {
	if args == nil {
		args = []any{}
	}
	return jobs.Event{Backend: jobs.SolidQueue, JobID: jobID, Class: class, Queue: queue, Status: status,
		At: f.base.Add(at), Args: args}
}

func expectEvents(t *testing.T, got []jobs.Event, want ...jobs.Event) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %s\nwant %s", describe(got), describe(want))
	}
}

func expectNoSkips(t *testing.T, b jobs.Batch) {
	t.Helper()
	if len(b.Skipped) != 0 {
		t.Fatalf("unexpected skips: %+v", b.Skipped)
	}
}

// TestLifecycle follows jobs through Solid Queue's tables: history before
// the first poll is not replayed; claims are running, finished_at is
// completed, failed executions are failed, with the job's ActiveJob
// arguments decoded (numbers as json.Number, GlobalIDs kept).
func testLifecycle(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	// History: one finished, one failed before the watcher starts.
	old := f.enqueue(t, "OldJob", "default", "old-1", `[]`)
	f.claim(t, f.db, old, worker, time.Second)
	f.finish(t, f.db, old, 2*time.Second)
	oldFail := f.enqueue(t, "OldJob", "default", "old-2", `[]`)
	f.claim(t, f.db, oldFail, worker, time.Second)
	f.fail(t, f.db, oldFail, errorJSON("RuntimeError", "old"), 2*time.Second)

	w := f.watcher(t, nil)
	b := poll(t, w, nil)
	expectEvents(t, b.Events)
	cur := b.Cursor
	b = poll(t, w, cur)
	expectEvents(t, b.Events)
	cur = b.Cursor

	export := f.enqueue(t, "ExportJob", "exports", "aj-export", `[{"_aj_globalid":"gid://shop/User/42"},7,"csv",1.5]`)
	mail := f.enqueue(t, "MailJob", "mailers", "aj-mail", `["welcome",{"id":3,"_aj_symbol_keys":["id"]}]`)
	f.claim(t, f.db, export, worker, 10*time.Second)
	f.claim(t, f.db, mail, worker, 11*time.Second)
	b = poll(t, w, cur)
	expectNoSkips(t, b)
	exportArgs := []any{map[string]any{"_aj_globalid": "gid://shop/User/42"}, json.Number("7"), "csv", json.Number("1.5")}
	mailArgs := []any{"welcome", map[string]any{"id": json.Number("3"), "_aj_symbol_keys": []any{"id"}}}
	expectEvents(t, b.Events,
		f.ev(jobs.Running, "aj-export", "ExportJob", "exports", 10*time.Second, exportArgs...),
		f.ev(jobs.Running, "aj-mail", "MailJob", "mailers", 11*time.Second, mailArgs...))
	cur = b.Cursor

	f.fail(t, f.db, mail, errorJSON("Net::SMTPFatalError", "550 mailbox unavailable"), 12*time.Second)
	f.finish(t, f.db, export, 12500*time.Millisecond+123456*time.Microsecond)
	b = poll(t, w, cur)
	expectNoSkips(t, b)
	failed := f.ev(jobs.Failed, "aj-mail", "MailJob", "mailers", 12*time.Second, mailArgs...)
	failed.ErrorClass, failed.ErrorMessage = "Net::SMTPFatalError", "550 mailbox unavailable"
	expectEvents(t, b.Events, failed,
		f.ev(jobs.Completed, "aj-export", "ExportJob", "exports", 12500*time.Millisecond+123456*time.Microsecond, exportArgs...))
	if b.Lag != 0 {
		t.Errorf("lag %v, want 0 when caught up", b.Lag)
	}
	cur = b.Cursor

	// A job claimed and finished between two polls: its claim is
	// never seen, its completion is.
	quick := f.enqueue(t, "QuickJob", "default", "aj-quick", `[]`)
	f.claim(t, f.db, quick, worker, 20*time.Second)
	f.finish(t, f.db, quick, 20*time.Second)
	b = poll(t, w, cur)
	expectEvents(t, b.Events, f.ev(jobs.Completed, "aj-quick", "QuickJob", "default", 20*time.Second))
	b = poll(t, w, b.Cursor)
	expectEvents(t, b.Events)
}

// TestResume polls again from an older cursor, as the runner does after a
// failed commit: the same events come back, then nothing twice, nothing
// missing.
func testResume(t *testing.T, f *fixture) {
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, nil)
	start := poll(t, w, nil).Cursor

	var want []jobs.Event
	for i, name := range []string{"a", "b", "c"} {
		id := f.enqueue(t, "ResumeJob", "default", "aj-"+name, `[]`)
		f.claim(t, f.db, id, worker, time.Duration(i)*time.Second)
		f.finish(t, f.db, id, time.Duration(10+i)*time.Second)
		want = append(want, f.ev(jobs.Completed, "aj-"+name, "ResumeJob", "default", time.Duration(10+i)*time.Second))
	}
	first := poll(t, w, start)
	expectEvents(t, first.Events, want...)
	again := poll(t, w, start)
	expectEvents(t, again.Events, want...)
	if string(again.Cursor) != string(first.Cursor) {
		t.Errorf("cursor differs on replay:\n%s\n%s", first.Cursor, again.Cursor)
	}

	// A second watcher (another node after a handover) goes on
	// from the committed cursor.
	w2 := f.watcher(t, nil)
	expectEvents(t, poll(t, w2, first.Cursor).Events)
	d := f.enqueue(t, "ResumeJob", "default", "aj-d", `[]`)
	f.claim(t, f.db, d, worker, 20*time.Second)
	f.fail(t, f.db, d, errorJSON("KeyError", "key not found: :id"), 21*time.Second)
	b := poll(t, w2, first.Cursor)
	failed := f.ev(jobs.Failed, "aj-d", "ResumeJob", "default", 21*time.Second)
	failed.ErrorClass, failed.ErrorMessage = "KeyError", "key not found: :id"
	// Claimed and failed between polls: only the failure is seen.
	expectEvents(t, b.Events, failed)
	expectEvents(t, poll(t, w2, b.Cursor).Events)
}
