package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

const secret = "e2e-secret-0123456789abcdef-0123456789"

// railsBroadcast is one recorded Rails publish: the Redis channel and the
// exact payload bytes a real Action Cable 8.1.3 wrote.
type railsBroadcast struct {
	Step         string `json:"step"`
	RubyCall     string `json:"ruby_call"`
	Broadcasting string `json:"broadcasting"`
	RedisChannel string `json:"redis_channel"`
	Payload      string `json:"payload"`
}

func loadBroadcasts(t *testing.T, version string) map[string]railsBroadcast {
	t.Helper()
	raw, err := os.ReadFile("testdata/redis_broadcasts.actioncable-" + version + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Broadcasts []railsBroadcast `json:"broadcasts"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]railsBroadcast{}
	for _, b := range f.Broadcasts {
		out[b.Step] = b
	}
	return out
}

// documentEnv is the configuration from the core issue's "Done when".
func documentEnv(redisURL string) map[string]string {
	return map[string]string{
		"CABLECAR_REDIS_URL":      redisURL,
		"CABLECAR_CHANNEL_PREFIX": "myapp_production",
		"CABLECAR_JWT_SECRET":     secret,
		"CABLECAR_GID_APP":        "myapp",
		"CABLECAR_ROUTES":         "DocumentChannel={channel}:{gid:Document:params.id}",
	}
}

func mustToken(t *testing.T, env map[string]string, streams string) string {
	t.Helper()
	tok, err := run(t, env, "token", "--sub", "42", "--streams", streams)
	if err != nil {
		t.Fatalf("cablecar token: %v: %s", err, tok)
	}
	return tok
}

func waitEvent(t *testing.T, c *jsclient.Client, kind string) jsclient.Event {
	t.Helper()
	ev, ok := c.WaitFor(kind, 10*time.Second)
	if !ok {
		t.Fatalf("no %q event; got %v", kind, c.Snapshot())
	}
	return ev
}

// The core issue's acceptance scenario: the real JS client, a token whose
// streams claim is ["document:*"], DocumentChannel id 123, and the exact
// bytes Rails publishes for DocumentChannel.broadcast_to(document_123, …).
func TestRailsBroadcastReachesRealJSClient(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")

	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + tok),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      20 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 2},
	})
	if ev := waitEvent(t, c, jsclient.KindWSOpen); ev.Protocol != "actioncable-v1-json" {
		t.Errorf("subprotocol %q", ev.Protocol)
	}
	waitEvent(t, c, jsclient.KindConnected)

	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	for _, version := range []string{"8.1.3", "6.1.7.10"} {
		b := loadBroadcasts(t, version)["broadcast_to_model"]
		if b.RedisChannel != "myapp_production:document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz" {
			t.Fatalf("vector changed: %+v", b)
		}
		// Published right after "connected": confirm waits for Redis to
		// acknowledge SUBSCRIBE, so this cannot fall into a gap.
		if err := rdb.Publish(context.Background(), b.RedisChannel, b.Payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	events := c.Wait()
	got := jsclient.Filter(events, jsclient.KindReceived)
	if len(got) != 2 {
		t.Fatalf("received %d messages, want 2: %v", len(got), events)
	}
	for _, ev := range got {
		if string(ev.Data) != `{"status":"complete","progress":100}` {
			t.Errorf("received %s", ev.Data)
		}
	}
	wantFrame := `{"identifier":"{\"channel\":\"DocumentChannel\",\"id\":123}","message":{"status":"complete","progress":100}}`
	found := false
	for _, f := range jsclient.FramesIn(events) {
		found = found || f == wantFrame
	}
	if !found {
		t.Errorf("no frame byte-equal to %s in %v", wantFrame, jsclient.FramesIn(events))
	}
	if strings.Contains(sc.logs(), tok) {
		t.Error("the token appears in cablecar's log")
	}
}

func TestRealJSClientRejections(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "chat:*")
	events := jsclient.Run(t, jsclient.Options{
		URL: sc.wsURL("token=" + tok),
		Subscriptions: []map[string]any{
			{"channel": "DocumentChannel", "id": 123}, // stream not in the token's claim
			{"channel": "NoSuchChannel"},              // no route
		},
		Duration:  10 * time.Second,
		ExitAfter: &jsclient.ExitAfter{Event: jsclient.KindRejected, Count: 2},
	})
	if n := len(jsclient.Filter(events, jsclient.KindRejected)); n != 2 {
		t.Fatalf("rejected %d, want 2: %v", n, events)
	}
	// The client stops retrying once rejected: one subscribe each.
	subscribes := 0
	for _, ev := range jsclient.Filter(events, jsclient.KindFrameOut) {
		if strings.Contains(ev.Text(), `"command":"subscribe"`) {
			subscribes++
		}
	}
	if subscribes != 2 {
		t.Errorf("client sent %d subscribes, want 2", subscribes)
	}
	logs := sc.logs()
	for _, want := range []string{"subscription rejected", "not allowed by token claim", "NoSuchChannel"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestRealJSClientUnauthorizedDoesNotRetry(t *testing.T) {
	rs := redistest.Start(t)
	sc := startSidecar(t, documentEnv(rs.URL), "serve")
	events := jsclient.Run(t, jsclient.Options{
		URL:           sc.wsURL("token=forged.token.value"),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      4 * time.Second,
	})
	frames := jsclient.FramesIn(events)
	if len(frames) != 1 || frames[0] != `{"type":"disconnect","reason":"unauthorized","reconnect":false}` {
		t.Fatalf("frames %v, want only the unauthorized disconnect", frames)
	}
	if n := len(jsclient.Filter(events, jsclient.KindWSOpen)); n != 1 {
		t.Errorf("%d sockets opened, want 1 (no retry)", n)
	}
	if ev, ok := jsclient.First(events, jsclient.KindDisconnected); !ok || ev.WillAttemptReconnect {
		t.Errorf("disconnected event %+v (found %v), want willAttemptReconnect=false", ev, ok)
	}
	if ev, ok := jsclient.First(events, jsclient.KindWSClose); !ok || ev.Code != 1000 {
		t.Errorf("close %+v, want code 1000", ev)
	}
	if strings.Contains(sc.logs(), "forged.token.value") {
		t.Error("the token appears in cablecar's log")
	}
}

// `cablecar publish` through Redis and through /_broadcast, and the
// stream name `cablecar stream-name` computes, reach a subscriber.
func TestPublishCommandAndStreamName(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_BROADCAST_KEY"] = "bk-e2e"
	sc := startSidecar(t, env, "serve")

	name, err := run(t, map[string]string{"CABLECAR_GID_APP": "myapp"}, "stream-name", "--channel", "DocumentChannel", "--gid", "Document:123")
	if err != nil || name != "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz" {
		t.Fatalf("stream-name: %q %v", name, err)
	}
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
		Duration:      20 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 2},
	})
	waitEvent(t, c, jsclient.KindConnected)
	if out, err := run(t, map[string]string{"CABLECAR_REDIS_URL": rs.URL, "CABLECAR_CHANNEL_PREFIX": "myapp_production"},
		"publish", name, `{"via":"redis"}`); err != nil {
		t.Fatalf("publish via redis: %v: %s", err, out)
	}
	if out, err := run(t, map[string]string{"CABLECAR_BROADCAST_KEY": "bk-e2e"},
		"publish", "--url", "http://"+sc.addr, name, `{"via":"http"}`); err != nil {
		t.Fatalf("publish via http: %v: %s", err, out)
	}
	var got []string
	for _, ev := range jsclient.Filter(c.Wait(), jsclient.KindReceived) {
		got = append(got, string(ev.Data))
	}
	if strings.Join(got, " ") != `{"via":"redis"} {"via":"http"}` {
		t.Errorf("received %v", got)
	}
}

// The README's "run it" command: no Redis, no keys, anonymous, a console.
func TestDevModeWorksWithNothingConfigured(t *testing.T) {
	sc := startSidecar(t, nil, "dev")
	if !strings.Contains(sc.logs(), "DEVELOPMENT MODE") {
		t.Errorf("no loud dev-mode line in:\n%s", sc.logs())
	}
	page, err := httpGet("http://" + sc.addr + "/")
	if err != nil || !strings.Contains(page, "<html") {
		t.Fatalf("console page: %v %.200s", err, page)
	}
	c := jsclient.Start(t, jsclient.Options{
		URL:           "ws://" + sc.addr + "/cable",
		Subscriptions: []map[string]any{{"channel": "StreamChannel", "stream": "demo"}},
		Duration:      15 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 1},
	})
	waitEvent(t, c, jsclient.KindConnected)
	if out, err := run(t, nil, "publish", "--url", "http://"+sc.addr, "demo", `{"hello":"dev"}`); err != nil {
		t.Fatalf("publish: %v: %s", err, out)
	}
	ev := waitEvent(t, c, jsclient.KindReceived)
	if string(ev.Data) != `{"hello":"dev"}` {
		t.Errorf("received %s", ev.Data)
	}
}

func TestStartupRefusals(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"serve without any key", []string{"serve"}, map[string]string{"CABLECAR_ADDR": "127.0.0.1:0"}, "CABLECAR_JWT_SECRET"},
		{"bad duration", []string{"serve"}, map[string]string{"CABLECAR_PING_INTERVAL": "often", "CABLECAR_ALLOW_ANONYMOUS": "true"}, "CABLECAR_PING_INTERVAL"},
		{"bad route", []string{"serve"}, map[string]string{"CABLECAR_ALLOW_ANONYMOUS": "true", "CABLECAR_ROUTES": "Foo"}, "CABLECAR_ROUTES"},
		{"dev on a public address", []string{"dev"}, map[string]string{"CABLECAR_ADDR": "0.0.0.0:0"}, "loopback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := run(t, c.env, c.args...)
			if err == nil {
				t.Fatalf("cablecar %v started; output:\n%s", c.args, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("message does not name %s:\n%s", c.want, out)
			}
		})
	}
}

// SIGTERM: the real client hears server_restart with reconnect:true, and
// the process exits 0.
func TestSIGTERMSendsServerRestart(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 1}},
		Duration:      8 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindDisconnected, Count: 1},
	})
	waitEvent(t, c, jsclient.KindConnected)
	if err := sc.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	events := c.Wait()
	want := `{"type":"disconnect","reason":"server_restart","reconnect":true}`
	frames := jsclient.FramesIn(events)
	if len(frames) == 0 || frames[len(frames)-1] != want {
		t.Errorf("last frame of %v, want %s", frames, want)
	}
	if ev, ok := jsclient.First(events, jsclient.KindDisconnected); !ok || !ev.WillAttemptReconnect {
		t.Errorf("disconnected %+v, want willAttemptReconnect=true", ev)
	}
}

// SIGUSR1 toggles debug logging without a restart; the admin listener
// reports the level.
func TestSIGUSR1TogglesDebug(t *testing.T) {
	sc := startSidecar(t, map[string]string{"CABLECAR_ALLOW_ANONYMOUS": "true"}, "serve")
	level := func() string {
		body, err := httpGet("http://" + sc.admin + "/loglevel")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(body)
	}
	if got := level(); got != `{"level":"info"}` {
		t.Fatalf("level %s", got)
	}
	for _, want := range []string{`{"level":"debug"}`, `{"level":"info"}`} {
		if err := sc.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for level() != want {
			if time.Now().After(deadline) {
				t.Fatalf("level %s, want %s", level(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.Contains(sc.logs(), "by=SIGUSR1") {
		t.Error("the level change was not logged")
	}
}
