package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/pgtest"
)

// settle bounds how long a LISTEN or a delivery may take.
const settle = 10 * time.Second

// newBroker returns a broker on url, closed when tb ends.
func newBroker(tb testing.TB, cfg Config, logger *slog.Logger) *Broker {
	tb.Helper()
	b, err := New(cfg, logger)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// dial opens a plain connection for SQL the test sends itself, as Rails
// would.
func dial(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// fastConfig has short timings so failures show quickly.
func fastConfig(url, prefix string) Config {
	return Config{URL: url, ChannelPrefix: prefix, PingInterval: 500 * time.Millisecond,
		PingTimeout: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond}
}

// TestPostgresBroker runs the checks that can share one PostgreSQL, each
// with its own channel prefix: initdb is the slow part.
func TestPostgresBroker(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("Contract", func(t *testing.T) {
		brokertest.Contract(t, func(tb testing.TB) brokertest.Broker {
			return newBroker(tb, Config{URL: srv.URL, ChannelPrefix: "contract"}, nil)
		}, settle)
	})
	t.Run("RailsNotify", func(t *testing.T) { testRailsNotify(t, srv) })
	t.Run("PayloadLimit", func(t *testing.T) { testPayloadLimit(t, srv) })
	t.Run("TwoNodes", func(t *testing.T) { testTwoNodes(t, srv) })
}

// vectors is testdata/channel_names.json, printed by Debian's Action Cable.
type vectors struct {
	Command     string `json:"command"`
	ActionCable string `json:"actioncable"`
	Vectors     []struct {
		Prefix      *string `json:"prefix"`
		Stream      string  `json:"stream"`
		Prefixed    string  `json:"prefixed"`
		RailsDebian string  `json:"rails_debian"`
		ListenSQL   string  `json:"listen_sql"`
		RailsMain   string  `json:"rails_main"`
	} `json:"vectors"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	data, err := os.ReadFile("testdata/channel_names.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.ActionCable != "6.1.7.10" || len(v.Vectors) != 26 {
		t.Fatalf("vectors from Action Cable %s, %d of them; want 6.1.7.10 and 26 (regenerate with %s)", v.ActionCable, len(v.Vectors), v.Command)
	}
	return v
}

// TestPostgresChannelNames checks Channel against the names Rails computes:
// equal to Debian's Rails 6.1 wherever released Rails counts characters
// and bytes alike, and to the rule of rails/rails main everywhere.
func TestPostgresChannelNames(t *testing.T) {
	v := loadVectors(t)
	diverging := 0
	for _, vec := range v.Vectors {
		prefix := ""
		if vec.Prefix != nil {
			prefix = *vec.Prefix
		}
		got := Channel(prefix, vec.Stream)
		if got != vec.RailsMain {
			t.Errorf("Channel(%q, %q) = %q, want %q (rails main)", prefix, vec.Stream, got, vec.RailsMain)
		}
		chars, size := utf8.RuneCountInString(vec.Prefixed), len(vec.Prefixed)
		if chars <= maxIdentifier && size > maxIdentifier {
			// Rails releases leave these to PostgreSQL, which truncates.
			diverging++
			if vec.RailsDebian != vec.Prefixed {
				t.Errorf("Rails 6.1 name for %q = %q, want it unhashed", vec.Prefixed, vec.RailsDebian)
			}
			continue
		}
		if got != vec.RailsDebian {
			t.Errorf("Channel(%q, %q) = %q, want %q (Rails 6.1)", prefix, vec.Stream, got, vec.RailsDebian)
		}
		if sql := "LISTEN " + quoteIdent(got); sql != vec.ListenSQL {
			t.Errorf("LISTEN for %q = %s, want %s", vec.Prefixed, sql, vec.ListenSQL)
		}
	}
	if diverging != 3 {
		t.Errorf("%d vectors where Rails releases and main differ, want 3", diverging)
	}
}

// testRailsNotify sends, for every vector, the NOTIFY statement
// Rails' adapter sends and checks that the broker delivers it on the stream.
func testRailsNotify(t *testing.T, srv *pgtest.Server) {
	v := loadVectors(t)
	rails := dial(t, srv.URL)
	for _, prefix := range []string{"", "myapp_production"} {
		b := newBroker(t, Config{URL: srv.URL, ChannelPrefix: prefix}, nil)
		rec := brokertest.NewRecorder(t)
		rec.Start(t, b)
		var streams []string
		for _, vec := range v.Vectors {
			if (vec.Prefix == nil) != (prefix == "") {
				continue
			}
			streams = append(streams, vec.Stream)
			b.Subscribe(vec.Stream)
		}
		brokertest.WaitFor(t, settle, "every stream active", func() bool {
			for _, s := range streams {
				if rec.Actives(s) != 1 {
					return false
				}
			}
			return true
		})
		for _, vec := range v.Vectors {
			if (vec.Prefix == nil) != (prefix == "") {
				continue
			}
			payload := fmt.Sprintf(`{"message":"to %s's subscribers"}`, vec.Stream)
			ident := Channel(prefix, vec.Stream) // Rails 6.1's name where the vectors agree, as checked above
			sql := "NOTIFY " + quoteIdent(ident) + ", '" + strings.ReplaceAll(payload, "'", "''") + "'"
			if _, err := rails.Exec(context.Background(), sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			if got := rec.WaitMessage(t, vec.Stream, 1, settle); string(got) != payload {
				t.Errorf("stream %q got %q, want %q", vec.Stream, got, payload)
			}
		}
		for _, s := range streams {
			if n := len(rec.Messages(s)); n != 1 {
				t.Errorf("stream %q got %d messages, want 1", s, n)
			}
		}
	}
}

// testPayloadLimit checks the limit against PostgreSQL itself: the
// largest payload it takes is delivered, one byte more fails clearly.
func testPayloadLimit(t *testing.T, srv *pgtest.Server) {
	conn := dial(t, srv.URL)
	if _, err := conn.Exec(context.Background(), "SELECT pg_notify('x', $1)", strings.Repeat("a", maxPayload)); err != nil {
		t.Fatalf("PostgreSQL refused %d bytes: %v", maxPayload, err)
	}
	_, err := conn.Exec(context.Background(), "SELECT pg_notify('x', $1)", strings.Repeat("a", maxPayload+1))
	if err == nil || !strings.Contains(err.Error(), "payload string too long") {
		t.Fatalf("PostgreSQL on %d bytes: %v, want payload string too long", maxPayload+1, err)
	}

	b := newBroker(t, Config{URL: srv.URL, ChannelPrefix: "limit"}, nil)
	rec := brokertest.NewRecorder(t)
	rec.Start(t, b)
	b.Subscribe("big")
	brokertest.WaitFor(t, settle, "active(big)", func() bool { return rec.Actives("big") == 1 })
	largest := []byte(`"` + strings.Repeat("é", (maxPayload-3)/2) + `!"`) // multibyte: the limit is in bytes
	if len(largest) != maxPayload {
		t.Fatalf("test payload is %d bytes", len(largest))
	}
	tests := []struct {
		name    string
		payload []byte
		wantErr string
	}{
		{"largest", largest, ""},
		{"one byte over", append(bytes.Clone(largest), ' '), "payload too large for PostgreSQL NOTIFY: 8000 bytes; NOTIFY takes at most 7999"},
		{"binary over once encoded", bytes.Repeat([]byte{0xff}, 6000), "payload too large for PostgreSQL NOTIFY: 6000 bytes, which base64 for PostgreSQL makes 8005; NOTIFY takes at most 7999"},
	}
	delivered := 0
	for _, tt := range tests {
		err := b.Publish(context.Background(), "big", tt.payload)
		if tt.wantErr == "" {
			if err != nil {
				t.Fatalf("%s: Publish: %v", tt.name, err)
			}
			delivered++
			if got := rec.WaitMessage(t, "big", delivered, settle); !bytes.Equal(got, tt.payload) {
				t.Errorf("%s: delivered %d bytes, want the %d published", tt.name, len(got), len(tt.payload))
			}
			continue
		}
		if !errors.Is(err, ErrPayloadTooLarge) || err.Error() != `postgres publish "big": `+tt.wantErr {
			t.Errorf("%s: Publish = %v, want ErrPayloadTooLarge: %s", tt.name, err, tt.wantErr)
		}
	}
	// A last small message proves nothing else arrived in between.
	if err := b.Publish(context.Background(), "big", []byte(`"end"`)); err != nil {
		t.Fatal(err)
	}
	rec.WaitMessage(t, "big", delivered+1, settle)
	if got := rec.Messages("big"); len(got) != delivered+1 {
		t.Errorf("%d messages delivered, want %d", len(got), delivered+1)
	}
}

// TestPostgresRestart kills PostgreSQL under a running broker: Health says
// why while it is down, the outage is logged once, and after the restart
// every stream is LISTENed again and delivers.
func TestPostgresRestart(t *testing.T) {
	srv := pgtest.Start(t)
	var logs logbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := newBroker(t, fastConfig(srv.URL, "restart"), logger)
	rec := brokertest.NewRecorder(t)
	rec.Start(t, b)
	streams := []string{"chat:1", "document:" + strings.Repeat("x", 80)}
	for _, s := range streams {
		b.Subscribe(s)
	}
	publishAll := func(n int) {
		t.Helper()
		for _, s := range streams {
			brokertest.WaitFor(t, settle, "active("+s+")", func() bool { return rec.Actives(s) == n })
			payload := fmt.Sprintf(`{"n":%d}`, n)
			if err := b.Publish(context.Background(), s, []byte(payload)); err != nil {
				t.Fatalf("Publish #%d: %v", n, err)
			}
			if got := rec.WaitMessage(t, s, n, settle); string(got) != payload {
				t.Errorf("%s message #%d = %q, want %q", s, n, got, payload)
			}
		}
	}
	publishAll(1)
	if err := b.Health(context.Background()); err != nil {
		t.Fatalf("Health before the kill: %v", err)
	}

	srv.Kill()
	want := "postgres: connection refused by " + srv.Addr + " (is PostgreSQL running there?)"
	brokertest.WaitFor(t, settle, "Health to report the refused connection", func() bool {
		err := b.Health(context.Background())
		return err != nil && err.Error() == want
	})
	// Let it retry a few times, then check each retry was quiet.
	brokertest.WaitFor(t, settle, "three reconnect attempts", func() bool { return logs.Count("postgres reconnect failed") >= 3 })
	if err := b.Publish(context.Background(), "chat:1", []byte(`"lost"`)); err == nil {
		t.Error("Publish while PostgreSQL is down = nil, want an error")
	}

	srv.Restart(t)
	brokertest.WaitFor(t, settle, "Health nil after the restart", func() bool { return b.Health(context.Background()) == nil })
	publishAll(2)
	if n := logs.Count("postgres listening connection lost"); n != 1 {
		t.Errorf("outage logged %d times at error level, want 1:\n%s", n, logs.String())
	}
	if n := logs.Count("level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want 1 (the loss):\n%s", n, logs.String())
	}
	if n := logs.Count("postgres listening connection back"); n != 1 {
		t.Errorf("reconnection logged %d times, want 1:\n%s", n, logs.String())
	}
	if got := b.Stats().Reconnects; got != 1 {
		t.Errorf("Stats().Reconnects = %d, want 1", got)
	}
	for _, s := range streams {
		if got := rec.Messages(s); len(got) != 2 {
			t.Errorf("%s: %d messages, want 2 (the one published while down is lost): %q", s, len(got), got)
		}
	}
}

// TestPostgresNeverConnected checks Health's words when the database was
// never reachable.
func TestPostgresNeverConnected(t *testing.T) {
	// A port nobody listens on: taken, then given back.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := newBroker(t, fastConfig("postgres://cablecar@"+addr+"/cablecar?sslmode=disable", ""), nil)
	rec := brokertest.NewRecorder(t)
	rec.Start(t, b)
	want := "postgres: connection refused by " + addr + " (is PostgreSQL running there?)"
	brokertest.WaitFor(t, settle, "Health error", func() bool {
		err := b.Health(context.Background())
		return err != nil && err.Error() == want
	})
}

// testTwoNodes runs two brokers on one database: each message,
// from either broker or from a plain NOTIFY, reaches both exactly once,
// binary ones through the side channel included.
func testTwoNodes(t *testing.T, srv *pgtest.Server) {
	rails := dial(t, srv.URL)
	nodes := []*Broker{
		newBroker(t, Config{URL: srv.URL, ChannelPrefix: "app"}, nil),
		newBroker(t, Config{URL: srv.URL, ChannelPrefix: "app"}, nil),
	}
	other := newBroker(t, Config{URL: srv.URL, ChannelPrefix: "other_app"}, nil)
	binaryStream := "bin:\xff\x00"
	streams := []string{"chat:lobby", binaryStream}
	var recs []*brokertest.Recorder
	for _, b := range append(nodes, other) {
		rec := brokertest.NewRecorder(t)
		rec.Start(t, b)
		for _, s := range streams {
			b.Subscribe(s)
		}
		brokertest.WaitFor(t, settle, "actives", func() bool { return rec.Actives(streams[0]) == 1 && rec.Actives(streams[1]) == 1 })
		recs = append(recs, rec)
	}
	sent := map[string][][]byte{}
	for i, b := range nodes {
		for _, s := range streams {
			p := []byte(fmt.Sprintf("from node %d \x00\xfe", i))
			if s == "chat:lobby" {
				p = []byte(fmt.Sprintf(`{"from":"node %d"}`, i))
			}
			if err := b.Publish(context.Background(), s, p); err != nil {
				t.Fatal(err)
			}
			sent[s] = append(sent[s], p)
		}
	}
	if _, err := rails.Exec(context.Background(), `NOTIFY "app:chat:lobby", '{"from":"rails"}'`); err != nil {
		t.Fatal(err)
	}
	sent["chat:lobby"] = append(sent["chat:lobby"], []byte(`{"from":"rails"}`))
	for i, rec := range recs[:2] {
		for _, s := range streams {
			rec.WaitMessage(t, s, len(sent[s]), settle)
			if got := rec.Messages(s); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", sent[s]) {
				t.Errorf("node %d stream %q got %q, want %q", i, s, got, sent[s])
			}
		}
	}
	// The other prefix is another app: a final message to it proves it
	// was listening, and that it heard nothing of app's.
	if err := other.Publish(context.Background(), "chat:lobby", []byte(`"mine"`)); err != nil {
		t.Fatal(err)
	}
	recs[2].WaitMessage(t, "chat:lobby", 1, settle)
	if got := recs[2].Messages("chat:lobby"); len(got) != 1 || len(recs[2].Messages(binaryStream)) != 0 {
		t.Errorf("other app got %q and %q, want only its own message", got, recs[2].Messages(binaryStream))
	}
}
