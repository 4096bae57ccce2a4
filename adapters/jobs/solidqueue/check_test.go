package solidqueue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testCheck: doctor names each missing table, then reports the row counts
// and how many processes heartbeat.
func testCheck(t *testing.T, f *fixture) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f.schema(t, "solid_queue_failed_executions", "solid_queue_processes")
	w := f.watcher(t, nil)
	_, err := w.Check(ctx)
	want := "solid_queue_failed_executions missing: is Solid Queue installed in this database?\n" +
		"solid_queue_processes missing: is Solid Queue installed in this database?"
	if err == nil || err.Error() != want {
		t.Fatalf("check without two tables: %v, want\n%s", err, want)
	}
	if _, err := w.Poll(ctx, nil); err == nil || !strings.Contains(err.Error(), "solid_queue_failed_executions") {
		t.Fatalf("poll without the table: %v, want an error naming it", err)
	}

	f.schema(t, "solid_queue_jobs", "solid_queue_ready_executions", "solid_queue_claimed_executions",
		"solid_queue_blocked_executions", "solid_queue_pauses", "solid_queue_recurring_executions",
		"solid_queue_recurring_tasks", "solid_queue_scheduled_executions", "solid_queue_semaphores")
	lines, err := w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []string{
		fmt.Sprintf("solid queue: %s database %s reachable", f.kind, w.src.display),
		"solid queue rows: solid_queue_jobs 0, solid_queue_ready_executions 0, solid_queue_claimed_executions 0, solid_queue_failed_executions 0, solid_queue_processes 0",
		"solid queue: no process registered in solid_queue_processes: is bin/jobs (or the Puma plugin) running?",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("check lines:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}

	f.register(t, "dead", time.Now().Add(-time.Hour))
	lines, _ = w.Check(ctx)
	if got := lines[len(lines)-1]; got != "solid queue: none of 1 processes heartbeated within 5m0s: are the workers alive?" {
		t.Fatalf("one dead process: %q", got)
	}
	f.register(t, "alive", time.Now())
	f.enqueue(t, "CheckJob", "default", "aj-check", `[]`)
	lines, _ = w.Check(ctx)
	if got := lines[1]; got != "solid queue rows: solid_queue_jobs 1, solid_queue_ready_executions 1, solid_queue_claimed_executions 0, solid_queue_failed_executions 0, solid_queue_processes 2" {
		t.Fatalf("rows: %q", got)
	}
	if got := lines[2]; got != "solid queue: 1 of 2 processes heartbeating (within 5m0s)" {
		t.Fatalf("processes: %q", got)
	}
}

// TestCheckUnreachable: a database that does not answer is an error that
// names it, without the password.
func TestCheckUnreachable(t *testing.T) {
	for _, url := range []string{
		"postgres://app:secret@127.0.0.1:1/app?connect_timeout=2",
		"sqlite://" + t.TempDir() + "/missing.sqlite3",
	} {
		w, err := New(Config{URL: url}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want unreachable without the password", url, err)
		}
		w.Close()
	}
}
