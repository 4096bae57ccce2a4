package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/pgtest"
)

// Rails on PostgreSQL alone: Debian's Action Cable 6.1 with adapter:
// postgresql and channel_prefix myapp_production (e2e/ruby/
// postgres_broadcast.rb, through Active Record and ruby-pg) NOTIFYs on a
// real PostgreSQL; cablecar LISTENs there (CABLECAR_POSTGRES_URL,
// CABLECAR_CHANNEL_PREFIX), and the real @rails/actioncable client,
// subscribed through cablecar, must receive each broadcast exactly once, in
// order: DocumentChannel.broadcast_to names and stream names whose channel
// is over 63 bytes, which Rails hashes.
func TestInteropPostgresRailsBroadcastReachesRealJSClient(t *testing.T) {
	const ruby = "/usr/bin/ruby"
	requireCommand(t, ruby)
	pg := pgtest.Start(t)
	env := map[string]string{
		"CABLECAR_POSTGRES_URL":   pg.URL,
		"CABLECAR_CHANNEL_PREFIX": "myapp_production",
		"CABLECAR_JWT_SECRET":     secret,
		"CABLECAR_GID_APP":        "myapp",
		"CABLECAR_ROUTES":         "DocumentChannel={channel}:{gid:Document:params.id};ChatChannel={channel}:{params.room}",
	}
	sc := startSidecar(t, env, "serve")
	if !strings.Contains(sc.logs(), "broker=postgres") {
		t.Fatalf("cablecar does not say it uses the postgres broker:\n%s", sc.logs())
	}
	tok := mustToken(t, env, "document:*,chat:*")

	longRoom := "engineering-platform-incident-review-2026-12-04-follow-ups-and-actions"
	unicodeRoom := strings.Repeat("ü", 64)
	subs := []struct {
		params    map[string]any
		stream    string // as cablecar's route computes it, and Rails' broadcasting
		hashed    bool   // Rails NOTIFYs on the SHA-1 of the prefixed name
		broadcast []string
		want      []string
	}{
		{
			params: map[string]any{"channel": "DocumentChannel", "id": 123},
			stream: "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz",
			broadcast: []string{
				`document:123:{"status":"processing"}`,
				`document:123:{"status":"complete","progress":100}`,
			},
			want: []string{`{"status":"processing"}`, `{"status":"complete","progress":100}`},
		},
		{
			params:    map[string]any{"channel": "ChatChannel", "room": longRoom},
			stream:    "chat:" + longRoom,
			hashed:    true,
			broadcast: []string{`stream:chat:` + longRoom + `:{"text":"a long stream name","n":1}`},
			want:      []string{`{"text":"a long stream name","n":1}`},
		},
		{
			params:    map[string]any{"channel": "ChatChannel", "room": unicodeRoom},
			stream:    "chat:" + unicodeRoom,
			hashed:    true,
			broadcast: []string{`stream:chat:` + unicodeRoom + `:{"text":"grüße, 'quoted' \"too\""}`},
			want:      []string{`{"text":"grüße, 'quoted' \"too\""}`},
		},
		{
			params:    map[string]any{"channel": "ChatChannel", "room": "café"},
			stream:    "chat:café",
			broadcast: []string{`stream:chat:café:{"text":"short"}`},
			want:      []string{`{"text":"short"}`},
		},
	}
	var params []map[string]any
	var args, wantNames []string
	total := 0
	for _, s := range subs {
		params = append(params, s.params)
		if got := postgres.Channel("myapp_production", s.stream); (len(got) == 40 && got != "myapp_production:"+s.stream) != s.hashed {
			t.Fatalf("channel of %q is %q; hashed = %v in the table", s.stream, got, s.hashed)
		}
		for _, b := range s.broadcast {
			args = append(args, b)
			wantNames = append(wantNames, s.stream)
		}
		total += len(s.want)
	}
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + tok),
		Subscriptions: params,
		Duration:      30 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: total},
	})
	// Confirmation waits for the LISTEN, so nothing below falls in a gap.
	waitConnected(t, c, len(subs))

	// One Ruby process broadcasts everything, in order; it prints each
	// broadcasting as Rails named it.
	out := runIn(t, ".", []string{"DATABASE_URL=" + pg.URL}, ruby, append([]string{"ruby/postgres_broadcast.rb"}, args...)...)
	if names := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(names, "\n") != strings.Join(wantNames, "\n") {
		t.Fatalf("Rails broadcast to %q, want %q", names, wantNames)
	}

	events := c.Wait()
	if n := len(jsclient.Filter(events, jsclient.KindReceived)); n != total {
		t.Fatalf("received %d messages, want %d: %v", n, total, events)
	}
	for i, s := range subs {
		got := receivedBy(events, i)
		if len(got) != len(s.want) {
			t.Errorf("%q received %q, want %q", s.stream, got, s.want)
			continue
		}
		for j := range got {
			if !sameJSON(got[j], s.want[j]) {
				t.Errorf("%q message %d = %s, want %s", s.stream, j, got[j], s.want[j])
			}
		}
	}
}

// The payload limit is PostgreSQL's, and Rails' adapter does not work
// around it: a broadcast whose JSON is 7999 bytes goes out, one of 8000
// bytes raises PG::InvalidParameterValue, as cablecar's Publish refuses it
// with postgres.ErrPayloadTooLarge.
func TestInteropPostgresRailsPayloadLimit(t *testing.T) {
	const ruby = "/usr/bin/ruby"
	requireCommand(t, ruby)
	pg := pgtest.Start(t)
	broadcast := func(jsonSize int) (string, error) {
		// {"x":"aaa…"} is the string's length plus 8 bytes.
		arg := `stream:big:{"x":"` + strings.Repeat("a", jsonSize-8) + `"}`
		cmd := exec.Command(ruby, "ruby/postgres_broadcast.rb", arg)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+pg.URL)
		cmd.SysProcAttr = interopSysProcAttr()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := broadcast(7999); err != nil || out != "big\n" {
		t.Fatalf("Rails broadcasting 7999 bytes: %v\n%s", err, out)
	}
	out, err := broadcast(8000)
	if err == nil || !strings.Contains(out, "payload string too long (PG::InvalidParameterValue)") {
		t.Fatalf("Rails broadcasting 8000 bytes: %v, want PG::InvalidParameterValue: payload string too long\n%s", err, out)
	}
}

// cablecar listens to one broker: with both CABLECAR_POSTGRES_URL and
// CABLECAR_REDIS_URL set, serve refuses to start and says why.
func TestPostgresWithRedisURLRefused(t *testing.T) {
	env := map[string]string{
		"CABLECAR_POSTGRES_URL": "postgres://cablecar@127.0.0.1:1/cablecar",
		"CABLECAR_REDIS_URL":    "redis://127.0.0.1:1/0",
		"CABLECAR_JWT_SECRET":   secret,
		"CABLECAR_ADDR":         "127.0.0.1:0",
	}
	out, err := run(t, env, "serve")
	if err == nil || !strings.Contains(out, "more than one broker is configured (redis, postgres)") {
		t.Fatalf("serve with both brokers: %v, want a refusal naming both:\n%s", err, out)
	}
}

// The other way round: what cablecar publishes (here `cablecar publish`
// through /_broadcast) reaches a Rails process subscribed through Action
// Cable's postgresql adapter (e2e/ruby/postgres_listen.rb), long hashed
// names included, each message exactly once.
func TestInteropPostgresCablecarPublishReachesRails(t *testing.T) {
	const ruby = "/usr/bin/ruby"
	requireCommand(t, ruby)
	pg := pgtest.Start(t)
	env := map[string]string{
		"CABLECAR_POSTGRES_URL":   pg.URL,
		"CABLECAR_CHANNEL_PREFIX": "myapp_production",
		"CABLECAR_JWT_SECRET":     secret,
		"CABLECAR_BROADCAST_KEY":  "bk-e2e",
	}
	sc := startSidecar(t, env, "serve")
	messages := []struct{ stream, json string }{
		{"document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz", `{"status":"complete","progress":100}`},
		{"chat:engineering-platform-incident-review-2026-12-04-follow-ups-and-actions", `{"text":"a long stream name"}`},
		{"chat:" + strings.Repeat("ü", 64), `{"text":"grüße"}`},
	}
	var streams, want []string
	for _, m := range messages {
		streams = append(streams, m.stream)
		want = append(want, "received "+m.stream+" "+m.json)
	}
	cmd := exec.Command(ruby, append([]string{"ruby/postgres_listen.rb"}, streams...)...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+pg.URL, fmt.Sprintf("EXPECT=%d", len(messages)))
	rails := startBackground(t, "postgres_listen.rb", cmd, 5*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(rails.out.String(), "subscribed ") < len(streams) {
		if rails.exited() || time.Now().After(deadline) {
			t.Fatalf("Rails did not subscribe to all %d streams:\n%s", len(streams), rails.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range messages {
		if out, err := run(t, map[string]string{"CABLECAR_BROADCAST_KEY": "bk-e2e"}, "publish", "--url", "http://"+sc.addr, m.stream, m.json); err != nil {
			t.Fatalf("cablecar publish: %v: %s", err, out)
		}
	}
	select {
	case <-rails.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Rails still waiting for messages:\n%s", rails.out.String())
	}
	if rails.err != nil {
		t.Fatalf("postgres_listen.rb: %v\n%s", rails.err, rails.out.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(rails.out.String()), "\n") {
		if strings.HasPrefix(line, "received ") {
			got = append(got, line)
		}
	}
	// The adapter runs callbacks on a thread pool: order across streams
	// is not kept, so compare sorted.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Rails received:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
