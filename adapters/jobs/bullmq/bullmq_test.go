package bullmq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWatcher(t *testing.T, cfg Config) *Watcher {
	t.Helper()
	w, err := New(cfg, quiet())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// poll calls Poll and fails the test on an error.
func poll(t *testing.T, w *Watcher, cursor []byte) jobs.Batch {
	t.Helper()
	b, err := w.Poll(context.Background(), cursor)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return b
}

// mark is a cursor a batch returned and how many events came before it.
type mark struct {
	cursor []byte
	seen   int
}

// collect polls from cursor until done says the events so far suffice or
// the deadline passes, and returns the events and the cursor after each
// batch.
func collect(t *testing.T, w *Watcher, cursor []byte, done func([]jobs.Event) bool) ([]jobs.Event, []mark) {
	t.Helper()
	var events []jobs.Event
	var cursors []mark
	deadline := time.Now().Add(30 * time.Second)
	for !done(events) {
		if time.Now().After(deadline) {
			t.Fatalf("events so far: %s", dump(events))
		}
		b := poll(t, w, cursor)
		if len(b.Skipped) > 0 {
			t.Fatalf("unexpected skips: %+v", b.Skipped)
		}
		events = append(events, b.Events...)
		cursor = b.Cursor
		cursors = append(cursors, mark{cursor, len(events)})
	}
	return events, cursors
}

func dump(events []jobs.Event) string {
	var sb strings.Builder
	for _, e := range events {
		fmt.Fprintf(&sb, "\n  %s %s %s retry=%d/%v err=%s:%q", e.JobID, e.Class, e.Status, e.RetryCount, e.HasRetryCount, e.ErrorClass, e.ErrorMessage)
	}
	return sb.String()
}

// ofJob returns the events of one job, with At and NextRetryAt checked and
// cleared so the rest compares exactly.
func ofJob(t *testing.T, events []jobs.Event, id string, start time.Time) []jobs.Event {
	t.Helper()
	var out []jobs.Event
	for _, e := range events {
		if e.JobID != id {
			continue
		}
		if e.At.Before(start.Add(-time.Second)) || e.At.After(time.Now().Add(time.Second)) {
			t.Errorf("job %s %s: At %v is not around now", id, e.Status, e.At)
		}
		if e.Status == jobs.Retrying && e.NextRetryAt.Before(e.At) {
			t.Errorf("job %s: NextRetryAt %v before At %v", id, e.NextRetryAt, e.At)
		}
		if e.Status != jobs.Retrying && !e.NextRetryAt.IsZero() {
			t.Errorf("job %s %s: NextRetryAt %v set", id, e.Status, e.NextRetryAt)
		}
		e.At, e.NextRetryAt = time.Time{}, time.Time{}
		out = append(out, e)
	}
	return out
}

func count(events []jobs.Event, status jobs.Status) int {
	n := 0
	for _, e := range events {
		if e.Status == status {
			n++
		}
	}
	return n
}

func TestPollRealWorker(t *testing.T) {
	srv := redistest.Start(t)
	const queue = "reports"
	w := newWatcher(t, Config{URL: srv.URL, Queues: []string{queue}})

	// A first start records where the streams end and reports nothing.
	first := poll(t, w, nil)
	if len(first.Events) != 0 || string(first.Cursor) != `{"ids":{"reports":"0-0"}}` {
		t.Fatalf("first Poll: events %v cursor %s", first.Events, first.Cursor)
	}

	start := time.Now()
	worker := jobstest.StartBullMQ(t, srv.URL, queue)
	good := worker.Add("ExportReport", map[string]any{"document_id": 42, "progress": []any{50, map[string]any{"step": "render"}}}, 0)
	bad := worker.Add("SendMail", map[string]any{"fail": "smtp down"}, 2)
	late := worker.AddOpts("Resize", map[string]any{"fail": "no such image"},
		map[string]any{"attempts": 2, "backoff": map[string]any{"type": "fixed", "delay": 300}})
	once := worker.AddOpts("Flaky", map[string]any{"failOnce": "try again"}, map[string]any{"attempts": 3})

	events, cursors := collect(t, w, first.Cursor, func(ev []jobs.Event) bool {
		return count(ev, jobs.Failed) == 2 && count(ev, jobs.Completed) == 2
	})

	goodArgs := []any{map[string]any{"document_id": json.Number("42"),
		"progress": []any{json.Number("50"), map[string]any{"step": "render"}}}}
	base := jobs.Event{Backend: jobs.BullMQ, JobID: good, Class: "ExportReport", Queue: queue, Args: goodArgs}
	want := []jobs.Event{
		with(base, func(e *jobs.Event) { e.Status = jobs.Running }),
		with(base, func(e *jobs.Event) { e.Status, e.Progress = jobs.Progress, json.RawMessage(`50`) }),
		with(base, func(e *jobs.Event) { e.Status, e.Progress = jobs.Progress, json.RawMessage(`{"step":"render"}`) }),
		with(base, func(e *jobs.Event) { e.Status = jobs.Completed }),
	}
	if got := ofJob(t, events, good, start); !reflect.DeepEqual(got, want) {
		t.Errorf("good job:\n got %s\nwant %s", dump(got), dump(want))
	}

	failing := func(id, class, msg string, args any) []jobs.Event {
		b := jobs.Event{Backend: jobs.BullMQ, JobID: id, Class: class, Queue: queue, Args: []any{args}}
		return []jobs.Event{
			with(b, func(e *jobs.Event) { e.Status = jobs.Running }),
			with(b, func(e *jobs.Event) {
				e.Status, e.ErrorClass, e.ErrorMessage, e.HasRetryCount = jobs.Retrying, "Error", msg, true
			}),
			with(b, func(e *jobs.Event) { e.Status = jobs.Running }),
			with(b, func(e *jobs.Event) {
				e.Status, e.ErrorClass, e.ErrorMessage, e.RetryCount, e.HasRetryCount = jobs.Failed, "Error", msg, 1, true
			}),
		}
	}
	if got, want := ofJob(t, events, bad, start), failing(bad, "SendMail", "smtp down", map[string]any{"fail": "smtp down"}); !reflect.DeepEqual(got, want) {
		t.Errorf("failing job:\n got %s\nwant %s", dump(got), dump(want))
	}
	if got, want := ofJob(t, events, late, start), failing(late, "Resize", "no such image", map[string]any{"fail": "no such image"}); !reflect.DeepEqual(got, want) {
		t.Errorf("failing job with backoff:\n got %s\nwant %s", dump(got), dump(want))
	}
	for _, e := range events {
		if e.JobID == late && e.Status == jobs.Retrying {
			if d := e.NextRetryAt.Sub(e.At); d < 250*time.Millisecond || d > time.Second {
				t.Errorf("backoff retry: NextRetryAt %v after At, want the 300ms backoff", d)
			}
		}
		if e.JobID == bad && e.Status == jobs.Retrying && !e.NextRetryAt.Equal(e.At) {
			t.Errorf("immediate retry: NextRetryAt %v, want At %v", e.NextRetryAt, e.At)
		}
	}
	onceBase := jobs.Event{Backend: jobs.BullMQ, JobID: once, Class: "Flaky", Queue: queue, Args: []any{map[string]any{"failOnce": "try again"}}}
	wantOnce := []jobs.Event{
		with(onceBase, func(e *jobs.Event) { e.Status = jobs.Running }),
		with(onceBase, func(e *jobs.Event) {
			e.Status, e.ErrorClass, e.ErrorMessage, e.HasRetryCount = jobs.Retrying, "Error", "try again", true
		}),
		with(onceBase, func(e *jobs.Event) { e.Status = jobs.Running }),
		with(onceBase, func(e *jobs.Event) { e.Status = jobs.Completed }),
	}
	if got := ofJob(t, events, once, start); !reflect.DeepEqual(got, wantOnce) {
		t.Errorf("job failing once:\n got %s\nwant %s", dump(got), dump(wantOnce))
	}

	// Resuming from any earlier cursor yields exactly what followed it:
	// nothing twice, nothing missed. A quiet Poll first fixes the end.
	tail := poll(t, w, cursors[len(cursors)-1].cursor)
	events = append(events, tail.Events...)
	end := tail.Cursor
	resumes := append([]mark{{cursor: first.Cursor}}, cursors...)
	for _, r := range resumes {
		var again []jobs.Event
		for cur, polls := r.cursor, 0; string(cur) != string(end); polls++ {
			if polls > 50 {
				t.Fatalf("resume from %s: never reached %s", r.cursor, end)
			}
			b := poll(t, w, cur)
			again, cur = append(again, b.Events...), b.Cursor
		}
		if want := events[r.seen:]; len(again)+len(want) > 0 && !reflect.DeepEqual(again, want) {
			t.Errorf("resume from %s:\n got %s\nwant %s", r.cursor, dump(again), dump(want))
		}
	}
}

func with(e jobs.Event, f func(*jobs.Event)) jobs.Event {
	f(&e)
	return e
}
