package solidcable

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/pgtest"
)

// settle is how long a subscription or a message may take over a real
// database polled every pollEvery.
const (
	settle    = 5 * time.Second
	pollEvery = 20 * time.Millisecond
)

// fixture is one real database holding Solid Cable's table.
type fixture struct {
	url  string
	kind kind
	raw  *sql.DB        // the "Rails app": its own connections
	pg   *pgtest.Server // PostgreSQL only
}

// backend starts a fixture; the tests run against each.
type backend struct {
	name  string
	start func(t *testing.T) *fixture
}

var backends = []backend{
	{"postgres", startPostgres},
	{"sqlite", startSQLite},
	{"mysql", startMySQL},
}

// schemaFile names each database's copy of Solid Cable's table.
var schemaFile = map[kind]string{kindPostgres: "schema_postgres.sql", kindSQLite: "schema_sqlite.sql", kindMySQL: "schema_mysql.sql"}

// startPostgres runs a real PostgreSQL with the table loaded.
func startPostgres(t *testing.T) *fixture {
	t.Helper()
	srv := pgtest.Start(t)
	srv.Exec(t, readSchema(t, "schema_postgres.sql"))
	return &fixture{url: srv.URL, kind: kindPostgres, raw: openRaw(t, "pgx", srv.URL), pg: srv}
}

// startSQLite creates a SQLite file in a temporary directory with the
// table loaded.
func startSQLite(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "production_cable.sqlite3")
	raw := openRaw(t, "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	for stmt := range strings.SplitSeq(readSchema(t, "schema_sqlite.sql"), ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatalf("load SQLite schema: %v", err)
		}
	}
	return &fixture{url: "sqlite3://" + path, kind: kindSQLite, raw: raw}
}

func readSchema(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "--") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func openRaw(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// insert writes a row as SolidCable::Message.broadcast does, from the
// "app's" own connection, and returns its id. hash is passed in, not
// computed here, so callers use Ruby's values.
func (f *fixture) insert(t *testing.T, channel string, hash int64, payload []byte) int64 {
	t.Helper()
	return f.insertAt(t, channel, hash, payload, time.Now())
}

func (f *fixture) insertAt(t *testing.T, channel string, hash int64, payload []byte, at time.Time) int64 {
	t.Helper()
	d := database{kind: f.kind}
	q := d.insertQuery()
	args := []any{at.UTC().Format(timeLayout), []byte(channel), payload, hash}
	var id int64
	var err error
	if f.kind == kindPostgres {
		err = f.raw.QueryRow(q+" RETURNING id", args...).Scan(&id)
	} else {
		var res sql.Result
		if res, err = f.raw.Exec(q, args...); err == nil {
			id, err = res.LastInsertId()
		}
	}
	if err != nil {
		t.Fatalf("insert like Solid Cable: %v", err)
	}
	return id
}

// reset gives f an empty Solid Cable table, with ids from 1 again.
func (f *fixture) reset(t *testing.T) {
	t.Helper()
	if _, err := f.raw.Exec("DROP TABLE IF EXISTS " + table); err != nil {
		t.Fatal(err)
	}
	f.loadSchema(t)
}

// loadSchema creates Solid Cable's table.
func (f *fixture) loadSchema(t *testing.T) {
	t.Helper()
	for stmt := range strings.SplitSeq(readSchema(t, schemaFile[f.kind]), ";\n") {
		if stmt = strings.TrimRight(strings.TrimSpace(stmt), ";"); stmt != "" {
			if _, err := f.raw.Exec(stmt); err != nil {
				t.Fatalf("load %s: %v", schemaFile[f.kind], err)
			}
		}
	}
}

// reconnect waits until the "app"'s pool works again after a restart, as
// a Rails app's would: its old connections are dead.
func (f *fixture) reconnect(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		if _, err = f.raw.Exec("SELECT 1"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the app cannot reach the database again: %v", err)
}

// count returns the table's row count.
func (f *fixture) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.raw.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rubyHashes reads testdata/channel_hash.tsv, computed by Ruby.
func rubyHashes(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "channel_hash.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		channel, num, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("channel_hash.tsv: bad line %q", line)
		}
		h, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			t.Fatalf("channel_hash.tsv: %v", err)
		}
		out[channel] = h
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 5 {
		t.Fatalf("channel_hash.tsv: only %d vectors", len(out))
	}
	return out
}

// brokerOpts adjust the Config of a test broker.
type brokerOpts struct {
	prefix  string
	trim    bool
	counter *queryCounter // counts the broker's statements when set
	log     *slog.Logger
}

// newTestBroker makes a broker on f polling every pollEvery, closed at the
// end of the test.
func newTestBroker(t testing.TB, f *fixture, o brokerOpts) *Broker {
	t.Helper()
	cfg := Config{URL: f.url, PollingInterval: pollEvery, ChannelPrefix: o.prefix, Trim: o.trim}.withDefaults()
	db, err := parseURL(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sql.Open(db.driver, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if o.counter != nil {
		pool.Close()
		pool = sql.OpenDB(&countingConnector{drv: pool.Driver(), dsn: db.dsn, c: o.counter})
	}
	b := newBroker(cfg, db, pool, o.log)
	t.Cleanup(func() { b.Close() })
	return b
}

// queryCounter counts the statements a pool runs, by their first words.
type queryCounter struct {
	polls, maxIDs, other atomic.Int64
}

func (c *queryCounter) add(query string) {
	switch {
	case strings.HasPrefix(query, "SELECT id, channel, payload, "):
		c.polls.Add(1)
	case query == maxIDQuery:
		c.maxIDs.Add(1)
	default:
		c.other.Add(1)
	}
}

// countingConnector opens the real driver's connections wrapped in
// countingConn. It changes nothing but counting.
type countingConnector struct {
	drv driver.Driver
	dsn string
	c   *queryCounter
}

func (cc *countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := cc.drv.Open(cc.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: cc.c}, nil
}

func (cc *countingConnector) Driver() driver.Driver { return cc.drv }

// countingConn forwards to the driver's connection, counting each
// statement sent to the database.
type countingConn struct {
	driver.Conn
	c *queryCounter
}

func (cc *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	qc, ok := cc.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := qc.QueryContext(ctx, q, args)
	if err != driver.ErrSkip {
		cc.c.add(q)
	}
	return rows, err
}

func (cc *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	ec, ok := cc.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := ec.ExecContext(ctx, q, args)
	if err != driver.ErrSkip {
		cc.c.add(q)
	}
	return res, err
}

func (cc *countingConn) Prepare(q string) (driver.Stmt, error) {
	cc.c.add(q) // a fallback path: counted once, as it runs once
	return cc.Conn.Prepare(q)
}

func (cc *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if bt, ok := cc.Conn.(driver.ConnBeginTx); ok {
		return bt.BeginTx(ctx, opts)
	}
	return cc.Conn.Begin() //nolint:staticcheck // the driver's only way
}

func (cc *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if nc, ok := cc.Conn.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (cc *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := cc.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (cc *countingConn) IsValid() bool {
	if v, ok := cc.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// logRecorder is a slog handler keeping the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, fmt.Sprintf("%s %s", rec.Level, rec.Message))
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// matching returns the logged messages containing s.
func (r *logRecorder) matching(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			out = append(out, m)
		}
	}
	return out
}
