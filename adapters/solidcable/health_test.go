package solidcable

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
)

// testMissingTable runs the broker on a database without Solid Cable's
// table: Health says what to run, logged once; once the table is created
// the broker recovers on its own and delivers.
func testMissingTable(t *testing.T, f *fixture) {
	if _, err := f.raw.Exec("DROP TABLE " + table); err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	b := newTestBroker(t, f, brokerOpts{log: slog.New(logs)})
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	b.Subscribe("s")
	var herr error
	brokertest.WaitFor(t, settle, "Health to name the missing table", func() bool {
		herr = b.Health(context.Background())
		return herr != nil && strings.HasPrefix(herr.Error(), "solid_cable: table solid_cable_messages missing in ") &&
			strings.Contains(herr.Error(), "run bin/rails solid_cable:install and bin/rails db:prepare")
	})
	t.Logf("Health: %v", herr)
	if err := b.Publish(context.Background(), "s", []byte(`1`)); err == nil ||
		!strings.Contains(err.Error(), "solid_cable_messages missing") {
		t.Errorf("Publish without the table = %v", err)
	}
	if r.Actives("s") != 0 {
		t.Error("active before any poll could cover the stream")
	}
	f.loadSchema(t)
	brokertest.WaitFor(t, settle, "active once the table exists", func() bool { return r.Actives("s") == 1 })
	brokertest.WaitFor(t, settle, "Health nil", func() bool { return b.Health(context.Background()) == nil })
	f.insert(t, "s", ChannelHash("s"), []byte(`"hello"`))
	if got := r.WaitMessage(t, "s", 1, settle); string(got) != `"hello"` {
		t.Errorf("got %q", got)
	}
	if got := logs.matching("missing"); len(got) != 1 {
		t.Errorf("missing table logged %d times, want once: %q", len(got), got)
	}
}

// TestSQLiteFileMissing points the broker at a SQLite file that does not
// exist: Health says the database cannot be reached, and no empty file is
// created in its place.
func TestSQLiteFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.sqlite3")
	b := newTestBroker(t, &fixture{url: "sqlite3://" + path, kind: kindSQLite}, brokerOpts{})
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	var herr error
	brokertest.WaitFor(t, settle, "Health to fail", func() bool {
		herr = b.Health(context.Background())
		return herr != nil && herr != ErrNotPolled && herr != ErrNotRunning
	})
	if !strings.HasPrefix(herr.Error(), "solid_cable: database unreachable ("+path+"): ") {
		t.Errorf("Health = %q", herr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the broker created %s (stat: %v)", path, err)
	}
}

// TestHealthBeforeRun checks Health's words outside Run.
func TestHealthBeforeRun(t *testing.T) {
	f := startSQLite(t)
	b := newTestBroker(t, f, brokerOpts{})
	if err := b.Health(context.Background()); err != ErrNotRunning {
		t.Errorf("Health before Run = %v", err)
	}
	b.Close()
	if err := b.Run(context.Background(), func(string, []byte) {}, func(string) {}); err != ErrClosed {
		t.Errorf("Run after Close = %v", err)
	}
	if err := b.Publish(context.Background(), "s", nil); err != ErrClosed {
		t.Errorf("Publish after Close = %v", err)
	}
}

// testTrim checks that rows are deleted only with Trim, as Solid Cable's
// trim job deletes them: up to 100 rows older than the retention per trim,
// never newer ones.
func testTrim(t *testing.T, f *fixture) {
	old := time.Now().Add(-48 * time.Hour)
	for range 150 {
		f.insertAt(t, "s", ChannelHash("s"), []byte(`"old"`), old)
	}
	for range 3 {
		f.insert(t, "s", ChannelHash("s"), []byte(`"new"`))
	}
	off := newTestBroker(t, f, brokerOpts{})
	off.trimRoll = func() bool { return true }
	if err := off.Publish(context.Background(), "s", []byte(`"p"`)); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t); n != 154 {
		t.Fatalf("without Trim: %d rows, want all 154", n)
	}
	on := newTestBroker(t, f, brokerOpts{trim: true})
	on.trimRoll = func() bool { return true }
	for i, want := range []int{55, 6, 7} { // +1 row per Publish, -100 old per trim
		if err := on.Publish(context.Background(), "s", []byte(`"p"`)); err != nil {
			t.Fatal(err)
		}
		if n := f.count(t); n != want {
			t.Errorf("after trim %d: %d rows, want %d", i+1, n, want)
		}
	}
	var olds int
	if err := f.raw.QueryRow("SELECT COUNT(*) FROM " + table + " WHERE payload = " + map[kind]string{kindPostgres: "'\"old\"'::bytea", kindSQLite: "CAST('\"old\"' AS BLOB)", kindMySQL: "'\"old\"'"}[f.kind]).Scan(&olds); err != nil {
		t.Fatal(err)
	}
	if olds != 0 {
		t.Errorf("%d old rows left", olds)
	}
}

// TestTrimChance checks Solid Cable's odds: 2 in 100 Publish calls trim.
func TestTrimChance(t *testing.T) {
	b, err := New(Config{URL: "sqlite3:///nonexistent.sqlite3"}, nil) // New does no IO
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for range 100_000 {
		if b.trimRoll() {
			n++
		}
	}
	// Binomial(100000, 0.02): mean 2000, sd 44; 10 sd either side.
	if n < 1560 || n > 2440 {
		t.Errorf("%d of 100000 rolls trim, want about 2000", n)
	}
}
