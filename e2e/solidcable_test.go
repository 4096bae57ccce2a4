package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "Rails app"'s PostgreSQL connection
	_ "modernc.org/sqlite"             // and its SQLite one

	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/pgtest"
)

// solidCableSchema is Solid Cable's table (the gem's cable_schema.rb) as
// Active Record creates it, per database; the adapter's testdata has the
// same, with its source.
var solidCableSchema = map[string][]string{
	"postgres": {
		`CREATE TABLE "solid_cable_messages" ("id" bigserial primary key, "channel" bytea NOT NULL, "payload" bytea NOT NULL, "created_at" timestamp(6) NOT NULL, "channel_hash" bigint NOT NULL)`,
		`CREATE INDEX "index_solid_cable_messages_on_channel_hash" ON "solid_cable_messages" ("channel_hash")`,
	},
	"sqlite": {
		`CREATE TABLE "solid_cable_messages" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "channel" blob(1024) NOT NULL, "payload" blob(536870912) NOT NULL, "created_at" datetime(6) NOT NULL, "channel_hash" integer(8) NOT NULL)`,
		`CREATE INDEX "index_solid_cable_messages_on_channel_hash" ON "solid_cable_messages" ("channel_hash")`,
	},
}

// solidCableDB is a database holding Solid Cable's table, and the "Rails
// app"'s own connection to it.
type solidCableDB struct {
	url string // CABLECAR_SOLID_CABLE_URL
	app *sql.DB
	ph  func(n int) string
	pg  *pgtest.Server // PostgreSQL only
}

func startSolidCableDB(t *testing.T, kind string) *solidCableDB {
	t.Helper()
	var db solidCableDB
	var driverName, dsn string
	switch kind {
	case "postgres":
		db.pg = pgtest.Start(t)
		db.url, driverName, dsn = db.pg.URL, "pgx", db.pg.URL
		db.ph = func(n int) string { return fmt.Sprintf("$%d", n) }
	case "sqlite":
		path := filepath.Join(t.TempDir(), "production_cable.sqlite3")
		db.url, driverName, dsn = "sqlite3://"+path, "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)"
		db.ph = func(int) string { return "?" }
	}
	app, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	for _, stmt := range solidCableSchema[kind] {
		if _, err := app.Exec(stmt); err != nil {
			t.Fatalf("load the schema: %v", err)
		}
	}
	db.app = app
	return &db
}

// reconnect waits until the app's connection pool works again after a
// database restart, as a Rails app's would: its old connections are dead.
func (db *solidCableDB) reconnect(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		if _, err = db.app.Exec("SELECT 1"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the app cannot reach the database again: %v", err)
}

// broadcast inserts a row as SolidCable::Message.broadcast does.
func (db *solidCableDB) broadcast(t *testing.T, channel, payload string) {
	t.Helper()
	q := fmt.Sprintf("INSERT INTO solid_cable_messages (created_at, channel, payload, channel_hash) VALUES (%s, %s, %s, %s)",
		db.ph(1), db.ph(2), db.ph(3), db.ph(4))
	_, err := db.app.Exec(q, time.Now().UTC().Format("2006-01-02 15:04:05.000000"),
		[]byte(channel), []byte(payload), solidcable.ChannelHash(channel))
	if err != nil {
		t.Fatalf("insert like Solid Cable: %v", err)
	}
}

// TestSolidCableReachesRealJSClient runs cablecar with only
// CABLECAR_SOLID_CABLE_URL pointing at the app's cable database, on
// PostgreSQL and on SQLite: rows inserted as Solid Cable writes them reach
// the real @rails/actioncable client with their exact payload, and so do
// broadcasts through `cablecar publish` (POST /_broadcast, which inserts a
// row). On PostgreSQL, a restart mid-stream loses nothing inserted after it,
// and /health reports the outage meanwhile.
func TestSolidCableReachesRealJSClient(t *testing.T) {
	for _, kind := range []string{"postgres", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			db := startSolidCableDB(t, kind)
			sc := startSidecar(t, map[string]string{
				"CABLECAR_SOLID_CABLE_URL": db.url,
				"CABLECAR_CHANNEL_PREFIX":  "myapp_production",
				"CABLECAR_ALLOW_ANONYMOUS": "true",
				"CABLECAR_ROUTES":          "public:ChatChannel=chat:{params.room}",
				"CABLECAR_ALLOWED_ORIGINS": conformanceOrigin,
				"CABLECAR_BROADCAST_KEY":   "bk-e2e",
			}, "serve")
			if !strings.Contains(sc.logs(), "broker=solid_cable") {
				t.Errorf("startup log does not name the solid_cable broker:\n%s", sc.logs())
			}
			want := []string{`{"n":1}`, `"\u003cturbo-stream action=\"append\" target=\"messages\"\u003e\u003c/turbo-stream\u003e"`, `{"via":"cablecar publish"}`}
			if kind == "postgres" {
				want = append(want, `{"n":"after restart 1"}`, `{"n":"after restart 2"}`)
			}
			js := jsclient.Start(t, jsclient.Options{
				URL:           sc.wsURL(""),
				Origin:        conformanceOrigin,
				Subscriptions: []map[string]any{{"channel": "ChatChannel", "room": "lobby"}},
				Duration:      60 * time.Second,
				ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: len(want)},
			})
			waitEvent(t, js, jsclient.KindConnected)
			// Confirmed only once a poll covered the stream: these rows
			// cannot fall before the subscription.
			const channel = "myapp_production:chat:lobby"
			db.broadcast(t, channel, want[0])
			db.broadcast(t, channel, want[1])
			db.broadcast(t, "myapp_production:chat:other", `"not this room"`)
			if out, err := run(t, map[string]string{"CABLECAR_BROADCAST_KEY": "bk-e2e"},
				"publish", "--url", "http://"+sc.addr, "chat:lobby", want[2]); err != nil {
				t.Fatalf("cablecar publish: %v: %s", err, out)
			}
			waitReceived(t, js, 3)
			if kind == "postgres" {
				db.pg.Kill()
				waitHealth(t, sc, http.StatusServiceUnavailable, "solid_cable: database unreachable")
				db.pg.Restart(t)
				db.reconnect(t)
				db.broadcast(t, channel, want[3])
				db.broadcast(t, channel, want[4])
				waitHealth(t, sc, http.StatusOK, "")
			}
			events := js.Wait()
			got := jsclient.Filter(events, jsclient.KindReceived)
			if len(got) != len(want) {
				t.Fatalf("received %d messages, want %d: %v", len(got), len(want), events)
			}
			for i, ev := range got {
				// The client hands over the decoded message: compare
				// values, as JSON.stringify rewrites Rails' \u003c.
				var g, w any
				if err := json.Unmarshal(ev.Data, &g); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(want[i]), &w); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("message %d = %s, want %s", i, ev.Data, want[i])
				}
			}
			// The only disconnect is the client's own, at its exit.
			for _, ev := range jsclient.Filter(events, jsclient.KindDisconnected) {
				if ev.WillAttemptReconnect {
					t.Errorf("the client lost its connection: %+v", ev)
				}
			}
			if kind == "postgres" {
				if n := strings.Count(sc.logs(), "solid_cable: database unreachable"); n != 1 {
					t.Errorf("outage logged %d times, want once:\n%s", n, sc.logs())
				}
			}
		})
	}
}

// waitReceived waits until js has received n messages.
func waitReceived(t *testing.T, js *jsclient.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(jsclient.Filter(js.Snapshot(), jsclient.KindReceived)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d messages received: %v", n, js.Snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHealth waits until /health answers status with a body containing
// text.
func waitHealth(t *testing.T, sc *sidecar, status int, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for {
		resp, err := http.Get("http://" + sc.addr + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + " " + string(body)
			if resp.StatusCode == status && strings.Contains(last, text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health never answered %d with %q; last %q", status, text, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSolidCableAndRedisBothSet checks cablecar refuses to guess when both
// brokers are configured.
func TestSolidCableAndRedisBothSet(t *testing.T) {
	out, err := run(t, map[string]string{
		"CABLECAR_REDIS_URL":       "redis://127.0.0.1:1",
		"CABLECAR_SOLID_CABLE_URL": "sqlite3:///nonexistent/production_cable.sqlite3",
		"CABLECAR_ALLOW_ANONYMOUS": "true",
		"CABLECAR_ROUTES":          "public:ChatChannel=chat:{params.room}",
		"CABLECAR_ADDR":            fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}, "serve")
	if err == nil || !strings.Contains(out, "set only one of CABLECAR_REDIS_URL") || !strings.Contains(out, "CABLECAR_SOLID_CABLE_URL") {
		t.Errorf("cablecar serve with both brokers: %v: %s", err, out)
	}
}
