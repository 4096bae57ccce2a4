package proxy_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

// recorder is a Performer that hands every action to the test; when gate
// is set, each Perform first announces itself on started, then waits for
// gate to be closed.
type recorder struct {
	got     chan proxy.Action
	started chan struct{}
	gate    chan struct{}
}

func newRecorder() *recorder { return &recorder{got: make(chan proxy.Action, 100)} }

func (r *recorder) Perform(ctx context.Context, a proxy.Action) error {
	if r.gate != nil {
		r.started <- struct{}{}
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.got <- a
	return nil
}

func (r *recorder) next(t *testing.T) proxy.Action {
	t.Helper()
	select {
	case a := <-r.got:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no action reached the Performer")
		return proxy.Action{}
	}
}

// performFrame is what the JS client sends for subscription.perform: data
// is the JSON text of the object, as a string.
func performFrame(identifier, data string) string {
	b, _ := json.Marshal(map[string]string{"command": "message", "identifier": identifier, "data": data})
	return string(b)
}

func withPerformer(p proxy.Performer, opts proxy.PerformOptions) func(*proxy.Server, *auth.Auth) {
	return func(s *proxy.Server, _ *auth.Auth) { s.SetPerformer(p, opts) }
}

type performCounts struct{ forwarded, droppedFull, failed, invalid, ignored int64 }

func performCountsOf(s *proxy.Server) performCounts {
	st := s.PerformStats()
	return performCounts{st.Forwarded.Load(), st.DroppedFull.Load(), st.Failed.Load(), st.Invalid.Load(), st.Ignored.Load()}
}

// A perform on a confirmed subscription reaches the Performer with the
// connection's identity, the identifier byte for byte, the subscription's
// channel and streams, the action and the data object as sent.
func TestPerformReachesPerformerWithExactFields(t *testing.T) {
	acfg := auth.Config{JWTSecret: strings.Repeat("p", 32), GIDApp: "myapp", Routes: "ChatChannel=chat:{params.room}",
		ConnectionIdentifier: "{gid:User:claims.sub}"}
	rec := newRecorder()
	ts := startServer(t, proxy.Config{}, acfg, nil, withPerformer(rec, proxy.PerformOptions{}))
	a, _ := auth.New(acfg)
	tok, err := a.Mint("42", []string{"chat:*"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := welcomed(t, ts.url("token="+tok))
	id := `{"room":"lobby","channel":"ChatChannel"}` // key order kept as sent
	c.command("subscribe", id)
	if got := c.nextText(); got != confirmFrame(id) {
		t.Fatalf("got %s, want confirm", got)
	}
	before := time.Now()
	data := `{"body":"héllo \u003c","n":1.50,"action":"speak"}`
	c.sendText(performFrame(id, data))
	got := rec.next(t)
	if got.At.Before(before.Add(-time.Second)) || got.At.After(time.Now()) || got.At.Location() != time.UTC {
		t.Errorf("At = %v, want a UTC time between %v and now", got.At, before)
	}
	if got.Conn == 0 {
		t.Error("Conn = 0, want the connection's number")
	}
	if got.Claims["sub"] != "42" || !reflect.DeepEqual(got.Claims["streams"], []any{"chat:*"}) {
		t.Errorf("Claims = %v, want sub 42 and streams [chat:*]", got.Claims)
	}
	want := proxy.Action{Conn: got.Conn, User: "42", Claims: got.Claims, ConnectionID: "Z2lkOi8vbXlhcHAvVXNlci80Mg",
		Identifier: id, Channel: "ChatChannel", Streams: []string{"chat:lobby"}, Name: "speak", Data: json.RawMessage(data), At: got.At}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("action\n got %+v\nwant %+v", got, want)
	}
	waitFor(t, "forwarded counted", func() bool { return performCountsOf(ts.Server) == performCounts{forwarded: 1} })
	noErrorLogs(t, ts)
}

// Performs that Rails would not run are ignored (no such confirmed
// subscription) or invalid (data not a JSON object with a string action),
// each counted; the connection stays up. A missing or empty action is
// Rails' "receive".
func TestPerformIgnoredAndInvalid(t *testing.T) {
	rec := newRecorder()
	ts := startServer(t, proxy.Config{}, anonymous(), nil, withPerformer(rec, proxy.PerformOptions{}))
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	cases := []struct {
		name  string
		frame string
		want  performCounts
		log   string
	}{
		{"unknown identifier", performFrame(`{"channel":"ChatChannel","room":"other"}`, `{"action":"speak"}`), performCounts{ignored: 1}, "no confirmed subscription"},
		{"identifier differs in bytes", performFrame(`{"channel": "ChatChannel","room":"lobby"}`, `{"action":"speak"}`), performCounts{ignored: 1}, "no confirmed subscription"},
		{"data is an object, not a string", `{"command":"message","identifier":` + quote(lobby) + `,"data":{"action":"speak"}}`, performCounts{invalid: 1}, "data is not a JSON string"},
		{"data missing", `{"command":"message","identifier":` + quote(lobby) + `}`, performCounts{invalid: 1}, "data is not a JSON string"},
		{"data not JSON", performFrame(lobby, `not json`), performCounts{invalid: 1}, "data is not a JSON object"},
		{"data an array", performFrame(lobby, `["speak"]`), performCounts{invalid: 1}, "data is not a JSON object"},
		{"data with trailing text", performFrame(lobby, `{"action":"speak"} {}`), performCounts{invalid: 1}, "more after its JSON object"},
		{"action a number", performFrame(lobby, `{"action":5}`), performCounts{invalid: 1}, `action\" is not a string`},
		{"action an object", performFrame(lobby, `{"action":{"x":1}}`), performCounts{invalid: 1}, `action\" is not a string`},
	}
	var total performCounts
	for _, tc := range cases {
		c.sendText(tc.frame)
		total.ignored += tc.want.ignored
		total.invalid += tc.want.invalid
		waitFor(t, tc.name+" counted", func() bool { return performCountsOf(ts.Server) == total })
		if !strings.Contains(ts.logs.String(), tc.log) {
			t.Errorf("%s: no log line with %q", tc.name, tc.log)
		}
	}
	for _, data := range []string{`{"body":"x"}`, `{"action":"","body":"y"}`, `{"action":null}`} {
		c.sendText(performFrame(lobby, data))
		if a := rec.next(t); a.Name != "receive" || string(a.Data) != data {
			t.Errorf("data %s: action %q data %s, want receive and the data as sent", data, a.Name, a.Data)
		}
	}
	select {
	case a := <-rec.got:
		t.Errorf("unexpected action %+v", a)
	default:
	}
	c.command("subscribe", `{"channel":"ChatChannel","room":"still-up"}`) // the connection still answers
	if got := c.nextText(); got != confirmFrame(`{"channel":"ChatChannel","room":"still-up"}`) {
		t.Errorf("got %s, want confirm", got)
	}
	total.forwarded = 3
	waitFor(t, "final counts", func() bool { return performCountsOf(ts.Server) == total })
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// Without a Performer, a perform is ignored, as before perform support,
// and counted.
func TestPerformWithoutPerformerIgnored(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	c.sendText(performFrame(lobby, `{"action":"speak"}`))
	waitFor(t, "ignored counted", func() bool { return performCountsOf(ts.Server) == performCounts{ignored: 1} })
	c.expectNothing(100 * time.Millisecond)
}

// When the Performer is stuck and the queue is full, further performs are
// dropped and counted, and the connection's reader keeps answering.
func TestPerformQueueFullDropsWithoutStalling(t *testing.T) {
	rec := newRecorder()
	rec.started, rec.gate = make(chan struct{}, 10), make(chan struct{})
	ts := startServer(t, proxy.Config{}, anonymous(), nil, withPerformer(rec, proxy.PerformOptions{Workers: 1, Queue: 1}))
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	c.sendText(performFrame(lobby, `{"action":"a1"}`))
	select {
	case <-rec.started: // the worker holds a1 and waits on the gate
	case <-time.After(5 * time.Second):
		t.Fatal("the first action never reached the Performer")
	}
	for _, name := range []string{"a2", "a3", "a4", "a5"} { // a2 queues; the rest find the queue full
		c.sendText(performFrame(lobby, `{"action":"`+name+`"}`))
	}
	other := `{"channel":"ChatChannel","room":"other"}`
	c.command("subscribe", other)
	if got := c.nextText(); got != confirmFrame(other) {
		t.Fatalf("got %s, want confirm while the Performer is stuck", got)
	}
	if got := performCountsOf(ts.Server); got != (performCounts{droppedFull: 3}) {
		t.Errorf("counts %+v, want 3 dropped_full", got)
	}
	if n := strings.Count(ts.logs.String(), "the perform queue is full"); n != 3 || strings.Count(ts.logs.String(), "level=WARN msg=\"client action dropped") != 1 {
		t.Errorf("queue-full log: %d lines, want 3 with one at warn:\n%s", n, ts.logs.String())
	}
	close(rec.gate)
	for _, want := range []string{"a1", "a2"} {
		if a := rec.next(t); a.Name != want {
			t.Errorf("action %q, want %q", a.Name, want)
		}
	}
	waitFor(t, "forwarded counted", func() bool { return performCountsOf(ts.Server) == performCounts{forwarded: 2, droppedFull: 3} })
}

// Performs spend the connection's command budget like any command: a
// flood closes the connection with 1008.
func TestPerformRateLimited(t *testing.T) {
	rec := newRecorder()
	ts := startServer(t, proxy.Config{MaxSubscriptions: 1, MaxCommandRate: 10}, anonymous(), nil, withPerformer(rec, proxy.PerformOptions{Queue: 1000}))
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	frame := ws.MaskFrame(ws.NewTextFrame([]byte(performFrame(lobby, `{"action":"speak"}`))))
	for range 200 { // the server may cut us off mid-flood
		if ws.WriteFrame(c.nc, frame) != nil {
			break
		}
	}
	for {
		f := c.next()
		if f.op == ws.OpClose {
			if string(f.payload) != "\x03\xf0" {
				t.Fatalf("close % x, want 1008", f.payload)
			}
			break
		}
	}
	waitFor(t, "every queued action forwarded", func() bool { return performCountsOf(ts.Server).forwarded == int64(len(rec.got)) })
	// The burst is max(MaxSubscriptions+16, 2*rate) = 20 commands, the
	// subscribe included; a little refills while the flood is read.
	if n := len(rec.got); n < 1 || n > 30 {
		t.Errorf("%d performs got through, want up to the burst, not the flood", n)
	}
}

// Serve owns the perform workers: stopping the server stops them, and
// actions not forwarded by then are counted as failed, not lost silently.
func TestPerformWorkersStopWithServe(t *testing.T) {
	rec := newRecorder()
	rec.started, rec.gate = make(chan struct{}, 10), make(chan struct{}) // the gate never opens
	ts := startServer(t, proxy.Config{ShutdownTimeout: time.Second}, anonymous(), nil, withPerformer(rec, proxy.PerformOptions{Workers: 1, Queue: 4}))
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	for _, name := range []string{"a1", "a2", "a3"} {
		c.sendText(performFrame(lobby, `{"action":"`+name+`"}`))
	}
	<-rec.started
	c.command("subscribe", `{"channel":"ChatChannel","room":"sync"}`) // every perform before it was read
	if got := c.nextText(); !strings.Contains(got, "confirm_subscription") {
		t.Fatalf("got %s, want confirm", got)
	}
	if err := ts.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got := performCountsOf(ts.Server); got != (performCounts{failed: 3}) {
		t.Errorf("counts after stop %+v, want 3 failed", got)
	}
}
