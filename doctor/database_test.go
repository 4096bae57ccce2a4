package doctor

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/internal/pgtest"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// want is one expected result: its status and a part of its message.
type want struct {
	check  string
	status Status
	part   string
}

// expect runs doctor on cfg and checks each named result.
func expect(t *testing.T, cfg Config, wants []want) *Report {
	t.Helper()
	cfg.Auth = goodAuth()
	r := run(t, cfg)
	for _, w := range wants {
		res := only(t, r, w.check)
		if res.Status != w.status || !strings.Contains(res.Message, w.part) {
			t.Errorf("%s = %s %q, want %s containing %q", w.check, res.Status, res.Message, w.status, w.part)
		}
	}
	return r
}

// TestDatabasePostgres checks the LISTEN/NOTIFY broker's checks on a real
// PostgreSQL: version, round trip, the running nodes, the channel hint; and
// on a closed port, the reason without the password.
func TestDatabasePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	pc := postgres.Config{URL: pg.URL, ChannelPrefix: "myapp"}
	expect(t, Config{Postgres: pc}, []want{
		{namePostgres, OK, pg.URL + ": PostgreSQL "},
		{namePgNotify, OK, "a NOTIFY reached its LISTEN in "},
		{namePgNodes, Warn, "no running cablecar listens on this database"},
		{namePgPrefix, OK, `with CABLECAR_CHANNEL_PREFIX=myapp, stream chat_room_1 is channel "myapp:chat_room_1"`},
	})

	b, err := postgres.New(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, func(string, []byte) {}, func(string) {}) }()
	t.Cleanup(func() { cancel(); <-done; b.Close() })
	waitFor(t, "the broker to connect", func() bool { return b.Health(context.Background()) == nil })
	expect(t, Config{Postgres: pc}, []want{{namePgNodes, OK, "1 cablecar node listening on this database"}})

	addr := closedPort(t)
	r := expect(t, Config{Postgres: postgres.Config{URL: "postgres://cablecar:s3cret@" + addr + "/app"}}, []want{
		{namePostgres, Fail, "postgres://cablecar:xxxxx@" + addr + "/app: postgres: connection refused by " + addr},
	})
	if res := only(t, r, namePostgres); strings.Contains(res.Message+res.Fix, "s3cret") {
		t.Errorf("the password shows: %q", res.Message)
	}
	if got := r.Find(namePgNotify); len(got) != 0 {
		t.Errorf("round trip checked on an unreachable server: %v", got)
	}
}

// sqliteTable creates a SQLite file with Solid Cable's table (or, with
// schema "", an empty file) and returns its URL and a handle.
func sqliteTable(t *testing.T, schema string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "production_cable.sqlite3")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for stmt := range strings.SplitSeq(schema, ";\n") {
		if !strings.Contains(stmt, "CREATE") {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if _, err := db.Exec("PRAGMA user_version = 1"); err != nil { // make sure the file exists
		t.Fatal(err)
	}
	return "sqlite3://" + path, db
}

// readSchema reads Solid Cable's schema for a dialect from the adapter's
// testdata.
func readSchema(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "adapters", "solidcable", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// insertRows adds n rows created age ago, in one transaction; param is
// the dialect's bind variable.
func insertRows(t *testing.T, db *sql.DB, n int, age time.Duration, param string) {
	t.Helper()
	created := time.Now().Add(-age).UTC().Format("2006-01-02 15:04:05.000000")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for range n {
		if _, err := tx.Exec("INSERT INTO solid_cable_messages (created_at, channel, payload, channel_hash) VALUES ("+param+", 'c', 'p', 1)", created); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseSolidCable checks the Solid Cable checks on SQLite files and
// a real PostgreSQL: the table, its rows by age, the expired backlog with
// and without trimming, the poll query, and what a missing table, an old
// table or a missing file say.
func TestDatabaseSolidCable(t *testing.T) {
	pg := pgtest.Start(t)
	pgdb, err := sql.Open("pgx", pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgdb.Close() })
	pgSchema := readSchema(t, "schema_postgres.sql")
	for stmt := range strings.SplitSeq(pgSchema, ";\n") {
		if strings.Contains(stmt, "CREATE") {
			if _, err := pgdb.Exec(stmt[strings.Index(stmt, "CREATE"):]); err != nil {
				t.Fatal(err)
			}
		}
	}
	liteURL, lite := sqliteTable(t, readSchema(t, "schema_sqlite.sql"))
	for _, db := range []struct {
		name, url, param string
		h                *sql.DB
	}{
		{"sqlite", liteURL, "?", lite},
		{"postgres", pg.URL, "$1", pgdb},
	} {
		t.Run(db.name, func(t *testing.T) {
			insertRows(t, db.h, 3, 0, db.param)
			insertRows(t, db.h, 2, 48*time.Hour, db.param)
			sc := solidcable.Config{URL: db.url}
			expect(t, Config{SolidCable: sc}, []want{
				{nameSolidCable, OK, db.name + " database "},
				{nameSolidTable, OK, "solid_cable_messages is there, with its channel_hash column"},
				{nameSolidRows, OK, "5 rows: 3 from the last minute, 2 older than the message retention (24h0m0s)"},
				{nameSolidPolling, OK, "a message waits for the next poll: up to 100ms (the polling interval) plus the query"},
			})
			insertRows(t, db.h, expiredWarn-2, 48*time.Hour, db.param)
			expect(t, Config{SolidCable: sc}, []want{
				{nameSolidRows, Warn, "1003 rows: 3 from the last minute, 1000 older than the message retention (24h0m0s): nothing seems to trim them"},
			})
			sc.Trim, sc.MessageRetention = true, time.Hour
			expect(t, Config{SolidCable: sc}, []want{
				{nameSolidRows, Warn, "1000 older than the message retention (1h0m0s): trimming falls behind"},
			})
		})
	}

	emptyURL, _ := sqliteTable(t, "")
	oldURL, _ := sqliteTable(t, `CREATE TABLE "solid_cable_messages" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "channel" blob NOT NULL, "payload" blob NOT NULL, "created_at" datetime(6) NOT NULL)`)
	missing := filepath.Join(t.TempDir(), "nope.sqlite3")
	for _, tc := range []struct {
		name, url string
		wants     []want
	}{
		{"no table", emptyURL, []want{{nameSolidCable, OK, "answers"}, {nameSolidTable, Fail, "table solid_cable_messages missing in "}}},
		{"old table", oldURL, []want{{nameSolidTable, Fail, "predates Solid Cable 3 (no channel_hash column)"}}},
		{"no file", "sqlite3://" + missing, []want{{nameSolidCable, Fail, "solid_cable: database unreachable (" + missing + ")"}}},
		{"bad scheme", "redis://127.0.0.1/0", []want{{nameSolidCable, Fail, `CABLECAR_SOLID_CABLE_URL: scheme "redis"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := expect(t, Config{SolidCable: solidcable.Config{URL: tc.url}}, tc.wants)
			if got := r.Find(nameSolidRows); len(got) != 0 {
				t.Errorf("rows counted after a failure: %v", got)
			}
		})
	}
}

// TestDatabaseNone checks the line for the in-memory broker.
func TestDatabaseNone(t *testing.T) {
	expect(t, Config{}, []want{{nameRedis, Skip, "no broker is configured"}})
}
