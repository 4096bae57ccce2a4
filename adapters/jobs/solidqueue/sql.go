package solidqueue

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the databases; the queries themselves
// are shared, written with ? placeholders.
type dialect struct {
	name     string // "postgres" or "sqlite"
	dollar   bool   // PostgreSQL numbers its placeholders
	textTime bool   // SQLite keeps datetimes as text
}

var (
	postgres = dialect{name: "postgres", dollar: true}
	sqlite   = dialect{name: "sqlite", textTime: true}
)

// q renumbers ? placeholders as $1, $2… for PostgreSQL. The queries hold
// no string literals with a ?, so a plain scan is enough.
func (d dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// railsTimeLayout is how Rails writes a datetime to SQLite (quoted_date):
// seconds, then six fraction digits only when the microseconds are not
// zero. Comparing text against text only orders correctly when the
// watcher writes its bounds the same way.
const railsTimeLayout = "2006-01-02 15:04:05"

// timeArg renders t as a query argument comparable with a datetime column.
func (d dialect) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if !d.textTime {
		return t
	}
	s := t.Format(railsTimeLayout)
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s
}

// tableExists asks the catalog, so that a missing table is told apart
// from a failing database.
func (d dialect) tableExists(ctx context.Context, db *sql.DB, table string) (bool, error) {
	var ok bool
	var err error
	if d.textTime {
		master := "sqlite_master"
		if schema, name, found := strings.Cut(table, "."); found {
			master, table = schema+".sqlite_master", name
		}
		err = db.QueryRowContext(ctx, "SELECT COUNT(*) > 0 FROM "+master+" WHERE type = 'table' AND name = ?", table).Scan(&ok)
	} else {
		err = db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
	}
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", table, err)
	}
	return ok, nil
}

// dbTime reads a datetime column: pgx gives a time.Time, SQLite text in
// Rails' format (or a time.Time when the driver parses it). Solid Queue
// stores UTC.
type dbTime struct {
	T     time.Time
	Valid bool
}

var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700 MST",
}

// Scan implements sql.Scanner.
func (t *dbTime) Scan(v any) error {
	*t = dbTime{}
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		t.T, t.Valid = x.UTC(), true
		return nil
	case []byte:
		return t.parse(string(x))
	case string:
		return t.parse(x)
	}
	return nil
}

// parse leaves t invalid on text it cannot read rather than failing the
// whole query: one odd row must not stop the watcher.
func (t *dbTime) parse(s string) error {
	for _, layout := range timeLayouts {
		if p, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			t.T, t.Valid = p.UTC(), true
			return nil
		}
	}
	return nil
}

// tables are the Solid Queue table names with the configured prefix.
type tables struct {
	jobs, ready, claimed, failed, processes string
}

func newTables(prefix string) tables {
	return tables{
		jobs:      prefix + "jobs",
		ready:     prefix + "ready_executions",
		claimed:   prefix + "claimed_executions",
		failed:    prefix + "failed_executions",
		processes: prefix + "processes",
	}
}

// queries are the SQL texts of one watcher, built once by New.
type queries struct {
	failedAfter, failedIn   string // failed executions past an id / by ids (%s: placeholders)
	claimedAfter, claimedIn string
	finishedAfter           string // (id, finished_at) of finished jobs past a keyset
	jobsIn                  string // finished jobs' details by ids (%s)
	lost                    string // claims whose process is gone or silent
	maxFailed, maxClaimed   string
	maxFinished             string
	finishedAt              string // ids finished exactly at a time
}

// newQueries writes the SQL. Every read is on a primary key, the unique
// job_id indexes of the executions, or index_solid_queue_jobs_on_finished_at;
// only lost reads a whole table, the claimed executions (one row per
// running job). The size caps are applied in SQL so that a huge argument
// is never transferred.
func newQueries(d dialect, t tables, maxArgs, maxError, batch int) queries {
	jobCols := fmt.Sprintf("j.id, j.class_name, j.queue_name, j.active_job_id, "+
		"CASE WHEN OCTET_LENGTH(j.arguments) > %d THEN NULL ELSE j.arguments END, OCTET_LENGTH(j.arguments)", maxArgs)
	failedCols := fmt.Sprintf("x.id, x.created_at, CASE WHEN OCTET_LENGTH(x.error) > %d THEN NULL ELSE x.error END, OCTET_LENGTH(x.error), ", maxError) + jobCols
	claimedCols := "x.id, x.created_at, NULL, NULL, " + jobCols
	failedFrom := " FROM " + t.failed + " x JOIN " + t.jobs + " j ON j.id = x.job_id"
	claimedFrom := " FROM " + t.claimed + " x JOIN " + t.jobs + " j ON j.id = x.job_id"
	limit := " LIMIT " + strconv.Itoa(batch)
	return queries{
		failedAfter:  d.q("SELECT " + failedCols + failedFrom + " WHERE x.id > ? ORDER BY x.id" + limit),
		failedIn:     "SELECT " + failedCols + failedFrom + " WHERE x.id IN (%s)",
		claimedAfter: d.q("SELECT " + claimedCols + claimedFrom + " WHERE x.id > ? ORDER BY x.id" + limit),
		claimedIn:    "SELECT " + claimedCols + claimedFrom + " WHERE x.id IN (%s)",
		finishedAfter: d.q("SELECT id, finished_at FROM " + t.jobs +
			" WHERE finished_at >= ? AND (finished_at > ? OR id > ?) ORDER BY finished_at, id" + limit),
		jobsIn: "SELECT j.id, j.finished_at, NULL, NULL, " + jobCols + " FROM " + t.jobs + " j WHERE j.id IN (%s)",
		lost: d.q("SELECT " + claimedCols + claimedFrom + " LEFT JOIN " + t.processes + " p ON p.id = x.process_id" +
			" WHERE p.id IS NULL OR p.last_heartbeat_at < ? ORDER BY x.id LIMIT ?"),
		maxFailed:   "SELECT COALESCE(MAX(id), 0) FROM " + t.failed,
		maxClaimed:  "SELECT COALESCE(MAX(id), 0) FROM " + t.claimed,
		maxFinished: "SELECT MAX(finished_at) FROM " + t.jobs,
		finishedAt:  d.q("SELECT id FROM " + t.jobs + " WHERE finished_at = ? ORDER BY id LIMIT ?"),
	}
}

// in fills an IN (%s) query with n placeholders and its int64 arguments.
func (d dialect) in(query string, ids []int64) (string, []any) {
	marks := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return d.q(fmt.Sprintf(query, marks)), args
}
