package celery

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

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWatcher(t *testing.T, cfg Config) *Watcher {
	t.Helper()
	if cfg.Grace == 0 {
		cfg.Grace = 200 * time.Millisecond
	}
	if cfg.Block == 0 {
		cfg.Block = 300 * time.Millisecond
	}
	w, err := New(cfg, quiet())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func poll(t *testing.T, w *Watcher, cursor []byte) jobs.Batch {
	t.Helper()
	b, err := w.Poll(context.Background(), cursor)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return b
}

// collect polls from cursor until done is satisfied, then polls on until
// the sweep has had the time to report anything twice, and returns all
// events and the last cursor.
func collect(t *testing.T, w *Watcher, cursor []byte, done func([]jobs.Event) bool) ([]jobs.Event, []byte) {
	t.Helper()
	var events []jobs.Event
	deadline := time.Now().Add(30 * time.Second)
	var quietUntil time.Time
	for quietUntil.IsZero() || time.Now().Before(quietUntil) {
		if time.Now().After(deadline) {
			t.Fatalf("events so far: %s", dump(events))
		}
		b := poll(t, w, cursor)
		if len(b.Skipped) > 0 {
			t.Fatalf("unexpected skips: %+v", b.Skipped)
		}
		events, cursor = append(events, b.Events...), b.Cursor
		if quietUntil.IsZero() && done(events) {
			quietUntil = time.Now().Add(4 * w.cfg.Grace)
		}
	}
	return events, cursor
}

func dump(events []jobs.Event) string {
	var sb strings.Builder
	for _, e := range events {
		fmt.Fprintf(&sb, "\n  %s %s %s %s retry=%d/%v err=%s:%q progress=%s args=%v", e.JobID, e.Class, e.Queue, e.Status,
			e.RetryCount, e.HasRetryCount, e.ErrorClass, e.ErrorMessage, e.Progress, e.Args)
	}
	return sb.String()
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

// ofTask returns one task's events with At checked and cleared: a finished
// state's At is the date_done stored in Redis, the others' around now.
func ofTask(t *testing.T, c *goredis.Client, events []jobs.Event, id string) []jobs.Event {
	t.Helper()
	var stored struct {
		DateDone string `json:"date_done"`
	}
	raw, _ := c.Get(context.Background(), DefaultKeyPrefix+id).Result()
	_ = json.Unmarshal([]byte(raw), &stored)
	done, _ := parseDate(stored.DateDone)
	var out []jobs.Event
	for _, e := range events {
		if e.JobID != id {
			continue
		}
		switch e.Status {
		case jobs.Completed, jobs.Failed:
			if !e.At.Equal(done) {
				t.Errorf("task %s %s: At %v, want date_done %v", id, e.Status, e.At, done)
			}
		default:
			if d := time.Since(e.At); d < 0 || d > time.Minute {
				t.Errorf("task %s %s: At %v not around now", id, e.Status, e.At)
			}
		}
		e.At = time.Time{}
		out = append(out, e)
	}
	return out
}

func with(e jobs.Event, f func(*jobs.Event)) jobs.Event {
	f(&e)
	return e
}

func TestPollRealWorker(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	ctx := context.Background()
	// A result from before the watcher's first start is history.
	old := `{"status": "SUCCESS", "result": 1, "traceback": null, "children": [], "date_done": "2020-01-02T03:04:05.000006", "task_id": "old"}`
	c.Set(ctx, DefaultKeyPrefix+"old", old, 0)

	w := newWatcher(t, Config{URL: srv.URL})
	first := poll(t, w, nil)
	if len(first.Events) != 0 {
		t.Fatalf("first Poll: %s", dump(first.Events))
	}
	worker := jobstest.StartCelery(t, srv.URL)
	add := worker.Send("tasks.add", 2, 3)
	explode := worker.Send("tasks.explode", "bad value")
	flaky := worker.Send("tasks.flaky", "later")
	steps := worker.Send("tasks.steps", 2)

	events, _ := collect(t, w, first.Cursor, func(ev []jobs.Event) bool {
		return count(ev, jobs.Completed) == 2 && count(ev, jobs.Failed) == 2
	})
	task := func(id, name string, args ...any) jobs.Event {
		return jobs.Event{Backend: jobs.Celery, JobID: id, Class: name, Queue: "celery", Args: args}
	}
	running := func(e *jobs.Event) { e.Status = jobs.Running }
	tests := []struct {
		id   string
		want []jobs.Event
	}{
		{add, []jobs.Event{
			with(task(add, "tasks.add", json.Number("2"), json.Number("3")), running),
			with(task(add, "tasks.add", json.Number("2"), json.Number("3")), func(e *jobs.Event) { e.Status = jobs.Completed }),
		}},
		{explode, []jobs.Event{
			with(task(explode, "tasks.explode", "bad value"), running),
			with(task(explode, "tasks.explode", "bad value"), func(e *jobs.Event) {
				e.Status, e.ErrorClass, e.ErrorMessage, e.HasRetryCount = jobs.Failed, "ValueError", "bad value", true
			}),
		}},
		{flaky, []jobs.Event{
			with(task(flaky, "tasks.flaky", "later"), running),
			with(task(flaky, "tasks.flaky", "later"), func(e *jobs.Event) {
				e.Status, e.ErrorClass, e.ErrorMessage, e.HasRetryCount = jobs.Retrying, "RuntimeError", "later", true
			}),
			with(task(flaky, "tasks.flaky", "later"), running),
			with(task(flaky, "tasks.flaky", "later"), func(e *jobs.Event) {
				e.Status, e.ErrorClass, e.ErrorMessage, e.RetryCount, e.HasRetryCount = jobs.Failed, "RuntimeError", "later", 1, true
			}),
		}},
		{steps, []jobs.Event{
			with(task(steps, "tasks.steps", json.Number("2")), running),
			with(task(steps, "tasks.steps", json.Number("2")), func(e *jobs.Event) {
				e.Status, e.Progress = jobs.Progress, json.RawMessage(`{"done": 1, "of": 2}`)
			}),
			with(task(steps, "tasks.steps", json.Number("2")), func(e *jobs.Event) {
				e.Status, e.Progress = jobs.Progress, json.RawMessage(`{"done": 2, "of": 2}`)
			}),
			with(task(steps, "tasks.steps", json.Number("2")), func(e *jobs.Event) { e.Status = jobs.Completed }),
		}},
	}
	for _, tt := range tests {
		if got := ofTask(t, c, events, tt.id); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("task %s:\n got %s\nwant %s", tt.want[0].Class, dump(got), dump(tt.want))
		}
	}
	if n := len(events); n != 12 {
		t.Errorf("%d events, want 12 (nothing twice, nothing old):%s", n, dump(events))
	}

	t.Run("restart", func(t *testing.T) {
		// The watcher stops; a task finishes while none runs; another
		// watcher resumes from the committed cursor and reports it once.
		cursor := poll(t, w, nil).Cursor
		cursor = poll(t, w, cursor).Cursor
		_ = w.Close()
		id := worker.Send("tasks.add", 4, 5)
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(c.Get(ctx, DefaultKeyPrefix+id).Val(), `"SUCCESS"`) {
			if time.Now().After(deadline) {
				t.Fatalf("task did not finish; worker log:\n%s", worker.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		w2 := newWatcher(t, Config{URL: srv.URL})
		events, _ := collect(t, w2, cursor, func(ev []jobs.Event) bool { return len(ev) > 0 })
		want := []jobs.Event{with(task(id, "tasks.add", json.Number("4"), json.Number("5")), func(e *jobs.Event) { e.Status = jobs.Completed })}
		if got := ofTask(t, c, events, id); !reflect.DeepEqual(got, want) || len(events) != 1 {
			t.Errorf("after restart:\n got %s\nwant %s", dump(events), dump(want))
		}
	})
}
