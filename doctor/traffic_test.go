package doctor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/rails"
)

// docStream is DocumentChannel.broadcast_to(Document 123) for app "myapp".
var docStream = rails.Broadcasting("DocumentChannel", rails.GlobalIDParam("myapp", "Document", "123"))

func TestClassify(t *testing.T) {
	const json = `{"status":"complete"}`
	for _, tc := range []struct {
		prefix, channel, payload string
		kind                     kind
		origin                   origin
	}{
		// ours
		{"myapp_production", "myapp_production:" + docStream, json, ours, origin{}},
		{"myapp_production", "myapp_production:chat:lobby", "not json", ours, origin{}},
		{"", docStream, json, ours, origin{}},
		{"", "chat:lobby", `"<turbo-stream></turbo-stream>"`, ours, origin{}},
		// the wrong prefix, told by its Rails shape or by a GlobalID
		{"myapp_production", "myapp_development:" + docStream, json, foreign, origin{"myapp_development", true}},
		{"myapp_production", "myapp_development:chat:lobby", "plain", foreign, origin{"myapp_development", true}},
		{"myapp_production", "other:" + docStream, json, foreign, origin{"other", true}},
		{"myapp", "myapp_production:x", json, foreign, origin{"myapp_production", true}},
		// no prefix at all: the GlobalID comes first or second
		{"myapp_production", docStream, json, foreign, origin{"", true}},
		{"myapp_production", "Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz:messages", `"<turbo-stream>"`, foreign, origin{"", true}},
		// JSON on some channel: cable-looking, origin unknown
		{"myapp_production", "notifications", json, foreign, origin{}},
		{"myapp_production", "events:user:1", "[1,2]", foreign, origin{}},
		// no prefix configured, but the publisher has one
		{"", "myapp_production:" + docStream, json, foreign, origin{"myapp_production", true}},
		// noise
		{"myapp_production", "myapp_production:cablecar/probe/0123456789abcdef", "x", ignored, origin{}},
		{"myapp_production", "other:cablecar/probe/0123456789abcdef", json, ignored, origin{}},
		{"", "cablecar/probe/doctor-0123456789abcdef", json, ignored, origin{}},
		{"myapp_production", "_action_cable_internal", json, ignored, origin{}},
		{"myapp_production", "myapp_development:_action_cable_internal", json, ignored, origin{}},
		{"myapp_production", "__keyspace@0__:queue:default", "lpush", ignored, origin{}},
		{"myapp_production", "__sentinel__:hello", "127.0.0.1,26379", ignored, origin{}},
		{"myapp_production", "celery-task-meta-6f1c", json, ignored, origin{}},
		{"myapp_production", "sidekiq:heartbeat", "1", ignored, origin{}},
		{"myapp_production", "queue:default", "not json {", ignored, origin{}},
		{"", "queue:default", "12", ignored, origin{}},
	} {
		k, o := classify(tc.prefix, tc.channel, tc.payload)
		if k != tc.kind || o != tc.origin {
			t.Errorf("classify(%q, %q, %q) = %v, %+v; want %v, %+v", tc.prefix, tc.channel, tc.payload, k, o, tc.kind, tc.origin)
		}
	}
}

func TestTallyLimits(t *testing.T) {
	tl := newTally("myapp_production")
	for i := range 2000 {
		tl.add("myapp_development:"+docStream+":"+strings.Repeat("x", i%200), "{}")
	}
	for i := range 8 {
		tl.add("app"+string(rune('a'+i))+"_staging:"+docStream, "{}")
	}
	res := tl.results(time.Second, nil)
	if len(res) != maxGroups+1 {
		t.Fatalf("want %d lines, got %+v", maxGroups+1, res)
	}
	first := res[0]
	if !strings.HasPrefix(first.Message, "2000 broadcasts on myapp_development:*") || strings.Count(first.Message, ", ") > maxExamples {
		t.Errorf("first = %q", first.Message)
	}
	for _, g := range tl.groups {
		if len(g.channels) > maxTracked || len(g.examples) > maxExamples {
			t.Errorf("group %+v keeps %d channels, %d examples", g.origin, len(g.channels), len(g.examples))
		}
		for _, ex := range g.examples {
			if len([]rune(ex)) > channelShown {
				t.Errorf("example not shortened: %q", ex)
			}
		}
	}
	if last := res[maxGroups]; !strings.Contains(last.Message, "4 more groups") {
		t.Errorf("last = %q", last.Message)
	}
}

// TestWatch publishes real messages with go-redis while doctor listens and
// checks what the report says about their channels.
func TestWatch(t *testing.T) {
	t.Parallel()
	type msg struct{ channel, payload string }
	const payload = `{"status":"complete"}`
	for _, tc := range []struct {
		name    string
		prefix  string
		publish []msg
		status  Status   // of the first broadcast names line
		lines   int      // broadcast names lines
		text    []string // in the message or fix of the first line
		failed  bool
	}{
		{
			name:    "wrong prefix",
			prefix:  "myapp_production",
			publish: []msg{{"myapp_development:" + docStream, payload}, {"myapp_development:" + docStream, payload}},
			status:  Fail, lines: 1, failed: true,
			text: []string{"2 broadcasts on myapp_development:*", "e.g. myapp_development:" + docStream,
				"do not start with CABLECAR_CHANNEL_PREFIX=myapp_production: cablecar never sees them",
				"set CABLECAR_CHANNEL_PREFIX=myapp_development", "cable.yml"},
		},
		{
			name:    "right prefix",
			prefix:  "myapp_production",
			publish: []msg{{"myapp_production:" + docStream, payload}, {"myapp_production:" + docStream, payload}, {"myapp_production:chat:lobby", payload}},
			status:  OK, lines: 1,
			text: []string{"3 broadcasts on myapp_production:*", "2 channels"},
		},
		{
			name:    "both: another app shares Redis",
			prefix:  "myapp_production",
			publish: []msg{{"myapp_production:" + docStream, payload}, {"myapp_staging:" + docStream, payload}},
			status:  OK, lines: 2,
			text: []string{"1 broadcast on myapp_production:*"},
		},
		{
			name:    "unprefixed publisher",
			prefix:  "myapp_production",
			publish: []msg{{docStream, payload}},
			status:  Fail, lines: 1, failed: true,
			text: []string{"1 broadcast without a prefix", "does not start with", "e.g. " + docStream, "set channel_prefix: myapp_production", "unset CABLECAR_CHANNEL_PREFIX"},
		},
		{
			name:    "no prefix configured, publisher has one",
			prefix:  "",
			publish: []msg{{"myapp_production:" + docStream, payload}},
			status:  Fail, lines: 1, failed: true,
			text: []string{"looks prefixed with myapp_production", "CABLECAR_CHANNEL_PREFIX is empty", "set CABLECAR_CHANNEL_PREFIX=myapp_production"},
		},
		{
			name:    "JSON on an unrelated channel",
			prefix:  "myapp_production",
			publish: []msg{{"notifications", payload}},
			status:  Warn, lines: 1,
			text: []string{"looks like cable traffic (JSON)", "e.g. notifications", "publish to myapp_production:<stream>"},
		},
		{
			name:   "noise only",
			prefix: "myapp_production",
			publish: []msg{
				{"myapp_production:cablecar/probe/0123456789abcdef", "probe"},
				{"myapp_development:_action_cable_internal", payload},
				{"sidekiq:stuff", "ping"},
				{"__sentinel__:hello", "x"},
			},
			status: OK, lines: 1,
			text: []string{"no broadcasts seen in ", "publish something while doctor listens", "4 messages on other channels ignored"},
		},
		{
			name:   "nothing published",
			prefix: "myapp_production",
			status: OK, lines: 1,
			text: []string{"no broadcasts seen in 1s (publish something while doctor listens to check names)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			pub := client(t, srv.URL)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// Publish once doctor's PSUBSCRIBE is in place.
				ctx, cancel := context.WithTimeout(context.Background(), settle)
				defer cancel()
				for {
					n, err := pub.PubSubNumPat(ctx).Result()
					if err != nil {
						t.Errorf("PUBSUB NUMPAT: %v", err)
						return
					}
					if n > 0 {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				for _, m := range tc.publish {
					if err := pub.Publish(ctx, m.channel, m.payload).Err(); err != nil {
						t.Errorf("PUBLISH %s: %v", m.channel, err)
					}
				}
			}()
			var progress strings.Builder
			r := run(t, Config{Auth: goodAuth(), RedisURL: srv.URL, ChannelPrefix: tc.prefix, Listen: time.Second, Progress: &progress})
			<-done
			res := r.Find(nameTraffic)
			if len(res) != tc.lines {
				t.Fatalf("want %d broadcast names lines, got %+v", tc.lines, res)
			}
			if res[0].Status != tc.status {
				t.Errorf("status = %s, want %s", res[0].Status, tc.status)
			}
			for _, s := range tc.text {
				if !strings.Contains(res[0].Message+" → "+res[0].Fix, s) {
					t.Errorf("want %q in %q → %q", s, res[0].Message, res[0].Fix)
				}
			}
			if r.Failed() != tc.failed {
				t.Errorf("Failed() = %v, want %v", r.Failed(), tc.failed)
			}
			if !strings.Contains(progress.String(), "listening 1s for broadcasts on "+srv.URL) {
				t.Errorf("progress = %q", progress.String())
			}
			var b strings.Builder
			_ = r.WriteText(&b)
			if strings.Contains(b.String(), "complete") {
				t.Errorf("the report shows a payload:\n%s", b.String())
			}
		})
	}
}

// TestWatchInterrupted stops a long watch by cancelling its context.
func TestWatchInterrupted(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	r := Run(ctx, Config{Auth: goodAuth(), RedisURL: srv.URL, Listen: time.Minute, HealthURL: "http://127.0.0.1:1"})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
	if res := only(t, r, nameInterrupt); res.Status != Skip {
		t.Errorf("interrupted = %+v", res)
	}
	if got := r.Find(nameHealth); len(got) != 0 {
		t.Errorf("health ran after the interrupt: %+v", got)
	}
}
