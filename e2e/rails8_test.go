package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx"
	_ "modernc.org/sqlite"             // "sqlite"

	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/pgtest"
	"github.com/cablecar/cablecar/rails"
)

// rails8DB is one Rails 8 database with Solid Cable's and Solid Queue's
// tables, written to as those gems write.
type rails8DB struct {
	url    string // as cablecar takes it
	db     *sql.DB
	dollar bool // PostgreSQL placeholders
}

func (d *rails8DB) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if d.dollar {
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := d.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// loadSchema runs a schema file's statements one by one.
func (d *rails8DB) loadSchema(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(repoDir(t, file))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";") {
		if strings.TrimSpace(stmt) != "" {
			d.exec(t, stmt)
		}
	}
}

func openRails8DB(t *testing.T, kind string) *rails8DB {
	t.Helper()
	var d rails8DB
	var err error
	switch kind {
	case "postgres":
		pg := pgtest.Start(t)
		d.url, d.dollar = pg.URL, true
		d.db, err = sql.Open("pgx", pg.URL)
	case "sqlite":
		path := filepath.Join(t.TempDir(), "production.sqlite3")
		d.url = "sqlite://" + path
		d.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.db.Close() })
	d.loadSchema(t, "adapters/solidcable/testdata/schema_"+kind+".sql")
	d.loadSchema(t, "adapters/jobs/solidqueue/testdata/schema_"+kind+".sql")
	return &d
}

// railsTime is how Active Record writes a datetime(6) column.
func railsTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// TestRails8AppAsItComes: a Rails 8 app with its defaults, Solid Cable and
// Solid Queue in one database (PostgreSQL or SQLite) and no Redis at all.
// A broadcast row written as Solid Cable writes it, and a job that fails
// in Solid Queue, both reach the real JS client, the job's fate with no job
// code and no change to cable.yml.
func TestRails8AppAsItComes(t *testing.T) {
	for _, kind := range []string{"postgres", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			d := openRails8DB(t, kind)
			env := map[string]string{
				"CABLECAR_SOLID_CABLE_URL":                d.url,
				"CABLECAR_SOLID_CABLE_POLLING_INTERVAL":   "100ms",
				"CABLECAR_JOBS_SOLID_QUEUE_URL":           d.url,
				"CABLECAR_JOBS_SOLID_QUEUE_POLL_INTERVAL": "200ms",
				"CABLECAR_JWT_SECRET":                     secret,
				"CABLECAR_GID_APP":                        "myapp",
				"CABLECAR_ROUTES":                         "replay:DocumentChannel={channel}:{gid:Document:params.id}",
				"CABLECAR_JOB_STREAMS":                    "ProcessDocumentJob=document:{gid:Document:args.0}",
			}
			sc := startSidecar(t, env, "serve")
			c := jsclient.Start(t, jsclient.Options{
				URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
				Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 5}},
				Duration:      30 * time.Second,
			})
			waitEvent(t, c, jsclient.KindConnected)

			// DocumentChannel.broadcast_to(document_5, status: "processing")
			stream := "document:" + rails.GlobalIDParam("myapp", "Document", "5")
			d.exec(t, "INSERT INTO solid_cable_messages (created_at, channel, payload, channel_hash) VALUES (?, ?, ?, ?)",
				railsTime(time.Now()), []byte(stream), []byte(`{"status":"processing"}`), solidcable.ChannelHash(stream))
			if ev, ok := c.WaitFor(jsclient.KindReceived, 10*time.Second); !ok || string(ev.Data) != `{"status":"processing"}` {
				t.Fatalf("broadcast row: got %v, %v", ev, ok)
			}

			// ProcessDocumentJob.perform_later(document_5) claimed, then failed.
			now := railsTime(time.Now())
			args := `{"job_class":"ProcessDocumentJob","job_id":"0f8c7a4e-5b1d-4d7e-9a41-2f1d3c6b8e90","provider_job_id":null,"queue_name":"default","priority":null,` +
				`"arguments":[{"_aj_globalid":"gid://myapp/Document/5"}],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"` + now + `","scheduled_at":null}`
			d.exec(t, "INSERT INTO solid_queue_processes (kind, last_heartbeat_at, pid, hostname, metadata, created_at, name) VALUES ('Worker', ?, 4242, 'box', '{}', ?, 'worker-1')", now, now)
			d.exec(t, "INSERT INTO solid_queue_jobs (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, created_at, updated_at) VALUES ('default', 'ProcessDocumentJob', ?, 0, '0f8c7a4e-5b1d-4d7e-9a41-2f1d3c6b8e90', ?, ?, ?)", args, now, now, now)
			d.exec(t, "INSERT INTO solid_queue_failed_executions (job_id, error, created_at) VALUES ((SELECT id FROM solid_queue_jobs WHERE active_job_id = '0f8c7a4e-5b1d-4d7e-9a41-2f1d3c6b8e90'), ?, ?)",
				`{"exception_class":"RuntimeError","message":"page 2 unreadable","backtrace":["app/jobs/process_document_job.rb:7"]}`, now)
			evs := statusesOf(t, c, "0f8c7a4e-5b1d-4d7e-9a41-2f1d3c6b8e90", 20*time.Second, []string{"failed"}, "failed")
			if f := evs[0]; f.Backend != "solid_queue" || f.Class != "ProcessDocumentJob" || f.ErrorClass != "RuntimeError" || f.Queue != "default" || f.ErrorMessage != nil {
				t.Errorf("failed event %v", f)
			}
		})
	}
}
