package solidqueue

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/internal/pgtest"
)

// backends are the databases every scenario runs on.
var backends = []string{"postgres", "sqlite"}

// scenarios run on each backend, each in a fresh database.
var scenarios = []struct {
	name   string
	run    func(*testing.T, *fixture)
	pgOnly bool // needs concurrent writers, which SQLite serializes
}{
	{name: "Lifecycle", run: testLifecycle},
	{name: "Resume", run: testResume},
	{name: "LateCommit", run: testLateCommit, pgOnly: true},
	{name: "HoleExpiry", run: testHoleExpiry},
	{name: "Lost", run: testLost},
	{name: "BadData", run: testBadData},
	{name: "Limits", run: testLimits},
	{name: "ClockAhead", run: testClockAhead},
	{name: "ActiveJobFormat", run: testActiveJobFormat},
	{name: "TablePrefix", run: testTablePrefix},
	{name: "Check", run: testCheck},
}

// TestWatcher runs every scenario on a real PostgreSQL (one server, a
// database per scenario) and on real SQLite files.
func TestWatcher(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			var pg *pgtest.Server
			if kind == "postgres" {
				pg = pgtest.Start(t)
			}
			for i, sc := range scenarios {
				if sc.pgOnly && pg == nil {
					continue
				}
				t.Run(sc.name, func(t *testing.T) {
					sc.run(t, newFixture(t, kind, pg, i))
				})
			}
		})
	}
}

// fixture is one real database, empty until schema loads Solid Queue's
// tables, and a writer connection that puts rows in it the way Solid
// Queue does.
type fixture struct {
	kind string
	url  string
	db   *sql.DB
	d    dialect
	pg   *pgtest.Server // nil for SQLite
	base time.Time      // a fixed "now" for row timestamps, UTC, whole seconds
}

// newFixture makes database n on pg (PostgreSQL; nil starts a server of
// its own), or a SQLite file.
func newFixture(t *testing.T, kind string, pg *pgtest.Server, n int) *fixture {
	t.Helper()
	f := &fixture{kind: kind, base: time.Now().UTC().Truncate(time.Second).Add(-time.Hour)}
	var err error
	switch kind {
	case "postgres":
		if pg == nil {
			pg = pgtest.Start(t)
		}
		name := fmt.Sprintf("sq%d", n)
		pg.Exec(t, "CREATE DATABASE "+name)
		f.pg, f.d = pg, postgres
		f.url = strings.Replace(pg.URL, "/cablecar?", "/"+name+"?", 1)
		f.db, err = sql.Open("pgx", f.url)
	case "sqlite":
		path := filepath.Join(t.TempDir(), "queue.sqlite3")
		f.url, f.d = "sqlite://"+path, sqlite
		// The writer may create the file; the watcher must not.
		f.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
		if err == nil {
			err = f.db.Ping()
		}
	default:
		t.Fatalf("unknown backend %q", kind)
	}
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { f.db.Close() })
	return f
}

// schema loads testdata/schema_<kind>.sql, leaving out the tables named.
func (f *fixture) schema(t *testing.T, without ...string) {
	t.Helper()
	f.loadSchema(t, "solid_queue_", without)
}

// schemaPrefixed loads the schema with prefix instead of solid_queue_.
func (f *fixture) schemaPrefixed(t *testing.T, prefix string) {
	t.Helper()
	f.loadSchema(t, prefix, nil)
}

func (f *fixture) loadSchema(t *testing.T, prefix string, without []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema_"+f.kind+".sql"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "solid_queue_", prefix)
	for _, stmt := range strings.Split(text, ";") {
		if strings.TrimSpace(stripComments(stmt)) == "" || mentionsAny(stmt, without) {
			continue
		}
		if _, err := f.db.Exec(stmt); err != nil {
			t.Fatalf("schema: %v\n%s", err, stmt)
		}
	}
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// ownTable is the table a CREATE TABLE or CREATE INDEX statement is for.
var ownTable = regexp.MustCompile(`(?:CREATE TABLE|\bON) (\w+)`)

func mentionsAny(stmt string, tables []string) bool {
	m := ownTable.FindStringSubmatch(stmt)
	return m != nil && slices.Contains(tables, m[1])
}

func (f *fixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := f.db.Exec(f.d.q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (f *fixture) insert(t *testing.T, q execer, query string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := q.QueryRow(f.d.q(query+" RETURNING id"), args...).Scan(&id); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return id
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
	QueryRow(query string, args ...any) *sql.Row
}

// at is the fixture's base time plus d, as a column value.
func (f *fixture) at(d time.Duration) any { return f.d.timeArg(f.base.Add(d)) }

// activeJob is ActiveJob::Base#serialize as Solid Queue stores it in
// solid_queue_jobs.arguments (JSON, keys in ActiveJob's order).
type activeJob struct {
	JobClass            string          `json:"job_class"`
	JobID               string          `json:"job_id"`
	ProviderJobID       *int64          `json:"provider_job_id"`
	QueueName           string          `json:"queue_name"`
	Priority            *int            `json:"priority"`
	Arguments           json.RawMessage `json:"arguments"`
	Executions          int             `json:"executions"`
	ExceptionExecutions map[string]int  `json:"exception_executions"`
	Locale              string          `json:"locale"`
	Timezone            string          `json:"timezone"`
	EnqueuedAt          string          `json:"enqueued_at"`
	ScheduledAt         *string         `json:"scheduled_at"`
}

func (f *fixture) serialize(class, queue, jobID, args string) string {
	enq := f.base.Format("2006-01-02T15:04:05.000000000Z")
	b, _ := json.Marshal(activeJob{JobClass: class, JobID: jobID, QueueName: queue, Arguments: json.RawMessage(args),
		ExceptionExecutions: map[string]int{}, Locale: "en", Timezone: "UTC", EnqueuedAt: enq, ScheduledAt: &enq})
	return string(b)
}

// enqueue writes a job and its ready execution, as SolidQueue::Job.enqueue
// does; rawArgs is the whole arguments column.
func (f *fixture) enqueueRaw(t *testing.T, class, queue, jobID string, rawArgs any) int64 {
	t.Helper()
	now := f.at(0)
	id := f.insert(t, f.db, "INSERT INTO solid_queue_jobs (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
		queue, class, rawArgs, jobID, now, now, now)
	f.insert(t, f.db, "INSERT INTO solid_queue_ready_executions (job_id, queue_name, priority, created_at) VALUES (?, ?, 0, ?)", id, queue, now)
	return id
}

func (f *fixture) enqueue(t *testing.T, class, queue, jobID, args string) int64 {
	t.Helper()
	return f.enqueueRaw(t, class, queue, jobID, f.serialize(class, queue, jobID, args))
}

// register writes a process row as SolidQueue::Process.register does.
func (f *fixture) register(t *testing.T, name string, heartbeat time.Time) int64 {
	t.Helper()
	return f.insert(t, f.db, "INSERT INTO solid_queue_processes (kind, last_heartbeat_at, supervisor_id, pid, hostname, metadata, created_at, name) VALUES ('Worker', ?, NULL, 4242, 'box', ?, ?, ?)",
		f.d.timeArg(heartbeat), `{"polling_interval":0.1,"queues":"*","thread_pool_size":3}`, f.d.timeArg(heartbeat), name)
}

// claim moves a job from ready to claimed, as ReadyExecution.claim does.
func (f *fixture) claim(t *testing.T, q execer, jobID, processID int64, at time.Duration) int64 {
	t.Helper()
	if _, err := q.Exec(f.d.q("DELETE FROM solid_queue_ready_executions WHERE job_id = ?"), jobID); err != nil {
		t.Fatal(err)
	}
	return f.insert(t, q, "INSERT INTO solid_queue_claimed_executions (job_id, process_id, created_at) VALUES (?, ?, ?)", jobID, processID, f.at(at))
}

// finish stamps finished_at (touch also sets updated_at) and drops the
// claim, as ClaimedExecution#finished with preserve_finished_jobs does.
func (f *fixture) finish(t *testing.T, q execer, jobID int64, at time.Duration) {
	t.Helper()
	if _, err := q.Exec(f.d.q("UPDATE solid_queue_jobs SET finished_at = ?, updated_at = ? WHERE id = ?"), f.at(at), f.at(at), jobID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Exec(f.d.q("DELETE FROM solid_queue_claimed_executions WHERE job_id = ?"), jobID); err != nil {
		t.Fatal(err)
	}
}

// errorJSON is FailedExecution's error column for an exception.
func errorJSON(class, message string) string {
	b, _ := json.Marshal(map[string]any{"exception_class": class, "message": message,
		"backtrace": []string{"/app/app/jobs/export_job.rb:7:in 'ExportJob#perform'"}})
	return string(b)
}

// fail records a failed execution and drops the claim, as
// ClaimedExecution#failed_with does; rawError is the error column.
func (f *fixture) fail(t *testing.T, q execer, jobID int64, rawError any, at time.Duration) int64 {
	t.Helper()
	id := f.insert(t, q, "INSERT INTO solid_queue_failed_executions (job_id, error, created_at) VALUES (?, ?, ?)", jobID, rawError, f.at(at))
	if _, err := q.Exec(f.d.q("DELETE FROM solid_queue_claimed_executions WHERE job_id = ?"), jobID); err != nil {
		t.Fatal(err)
	}
	return id
}

// watcher opens a watcher on f with a fast poll.
func (f *fixture) watcher(t *testing.T, tune func(*Config)) *Watcher {
	t.Helper()
	cfg := Config{URL: f.url, PollInterval: time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	w, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func poll(t *testing.T, w *Watcher, cur []byte) jobs.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := w.Poll(ctx, cur)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if b.Cursor == nil {
		t.Fatal("poll returned a nil cursor")
	}
	return b
}

// describe renders events compactly for comparison in failures.
func describe(evs []jobs.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s %s %s %s at=%s err=%s:%q args=%v\n", e.Status, e.JobID, e.Class, e.Queue, e.Backend,
			e.At.Format(time.RFC3339Nano), e.ErrorClass, e.ErrorMessage, e.Args)
	}
	return b.String()
}
