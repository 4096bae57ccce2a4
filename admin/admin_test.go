package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/admin"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

// rig is a real proxy server with a real admin listener on loopback.
type rig struct {
	srv        *proxy.Server
	broker     *memory.Broker
	level      *slog.LevelVar
	cable      string
	admin      string
	adminToken string
}

func start(t *testing.T, token string) *rig {
	t.Helper()
	a, err := auth.New(auth.Config{JWTSecret: strings.Repeat("k", 32), AllowAnonymous: true,
		Routes: "public:ChatChannel=chat:{params.room}"})
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	b := memory.New()
	srv, err := proxy.New(proxy.Config{PingInterval: 50 * time.Millisecond}, b, a, a, log)
	if err != nil {
		t.Fatal(err)
	}
	adm := admin.New(admin.Config{Token: token}, admin.Source{Server: srv, Broker: b, BrokerName: "memory", Level: level}, log)
	srv.SetHooks(adm.Hooks())
	ctx, cancel := context.WithCancel(context.Background())
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	aln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{}, 2)
	go func() { srv.Serve(ctx, ln); done <- struct{}{} }()
	go func() { adm.Serve(ctx, aln); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	r := &rig{srv: srv, broker: b, level: level, cable: "ws://" + ln.Addr().String() + "/cable", admin: "http://" + aln.Addr().String(), adminToken: token}
	waitFor(t, "broker up", func() bool { return b.Health(context.Background()) == nil })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.admin+path, nil)
	if r.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one exposition line, e.g.
// `cablecar_connections_open` or `cablecar_subscriptions_rejected_total{reason="unknown_channel"}`.
func (r *rig) metric(t *testing.T, series string) string {
	t.Helper()
	_, body := r.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// dial connects a raw client and subscribes to identifier, returning the
// socket after the answer frame was read.
func dial(t *testing.T, url string, identifiers ...string) net.Conn {
	t.Helper()
	nc, br, _, err := ws.Dialer{Protocols: []string{"actioncable-v1-json"}}.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var rd io.Reader = nc
	if br != nil {
		rd = io.MultiReader(br, nc)
	}
	nextNonPing(t, rd) // welcome
	for _, id := range identifiers {
		cmd, _ := json.Marshal(map[string]string{"command": "subscribe", "identifier": id})
		ws.WriteFrame(nc, ws.MaskFrame(ws.NewTextFrame(cmd)))
		nextNonPing(t, rd) // its confirm or reject
	}
	return nc
}

func nextNonPing(t *testing.T, r io.Reader) string {
	t.Helper()
	for {
		if f := readText(t, r); !strings.HasPrefix(f, `{"type":"ping"`) {
			return f
		}
	}
}

func readText(t *testing.T, r io.Reader) string {
	t.Helper()
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	return string(p)
}

// Each metric moves when its event happens.
func TestMetricsMoveWithEvents(t *testing.T) {
	r := start(t, "")
	if v := r.metric(t, "cablecar_connections_open"); v != "0" {
		t.Fatalf("connections_open before = %q", v)
	}
	if v := r.metric(t, "cablecar_broker_up"); v != "1" {
		t.Errorf("broker_up = %q", v)
	}
	c := dial(t, r.cable, `{"channel":"ChatChannel","room":"a"}`, `{"channel":"Nope"}`)
	checks := map[string]string{
		"cablecar_connections_open":                                       "1",
		"cablecar_connections_opened_total":                               "1",
		"cablecar_subscriptions_confirmed_total":                          "1",
		"cablecar_subscriptions_active":                                   "1",
		`cablecar_subscriptions_rejected_total{reason="unknown_channel"}`: "1",
		"cablecar_streams_active":                                         "1",
	}
	for series, want := range checks {
		if got := r.metric(t, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	r.broker.Publish(context.Background(), "chat:a", []byte(`{"x":1}`))
	r.broker.Publish(context.Background(), "chat:a", []byte(`not json`))
	waitFor(t, "frames delivered", func() bool { return r.metric(t, "cablecar_frames_delivered_total") == "1" })
	for series, want := range map[string]string{
		`cablecar_broadcasts_received_total{adapter="memory"}`: "2",
		"cablecar_invalid_payloads_total":                      "1",
		"cablecar_fanout_duration_seconds_count":               "1",
	} {
		if got := r.metric(t, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	// A refused token counts as an auth failure with its reason.
	nc, _, _, err := ws.Dialer{}.Dial(context.Background(), r.cable+"?token=garbage")
	if err == nil {
		nc.Close()
	}
	waitFor(t, "auth failure counted", func() bool {
		return r.metric(t, `cablecar_auth_failures_total{reason="malformed_token"}`) == "1"
	})
	waitFor(t, "pings counted", func() bool { v := r.metric(t, "cablecar_pings_sent_total"); return v != "" && v != "0" })
	c.Close()
	waitFor(t, "close counted", func() bool {
		return r.metric(t, `cablecar_connections_closed_total{reason="client_gone"}`) == "1"
	})
	if got := r.metric(t, "cablecar_subscriptions_active"); got != "0" {
		t.Errorf("subscriptions_active after close = %q", got)
	}
}

func TestStatusSnapshotAndEvents(t *testing.T) {
	r := start(t, "")
	resp, err := http.Get(r.admin + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()
	dial(t, r.cable, `{"channel":"ChatChannel","room":"b"}`, `{"channel":"ChatChannel"}`)
	r.broker.Publish(context.Background(), "chat:b", []byte(`{"status":"complete"}`))
	want := map[string]bool{"event: connect": false, "event: rejection": false, "event: broadcast": false}
	deadline := time.After(5 * time.Second)
	for missing := 3; missing > 0; {
		select {
		case line := <-events:
			if seen, ok := want[line]; ok && !seen {
				want[line] = true
				missing--
			}
		case <-deadline:
			t.Fatalf("events seen: %v", want)
		}
	}
	code, body := r.get(t, "/api/status")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	var st struct {
		Broker      struct{ Up bool }
		Connections []proxy.ConnInfo
		Streams     []proxy.StreamInfo
		Broadcasts  []struct {
			Stream    string
			Delivered int
			Preview   string
		} `json:"recent_broadcasts"`
		Rejections []struct{ Channel, Reason string } `json:"recent_rejections"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Broker.Up || len(st.Connections) != 1 || len(st.Streams) != 1 || st.Streams[0].Subscribers != 1 {
		t.Errorf("snapshot %s", body)
	}
	if len(st.Broadcasts) != 1 || st.Broadcasts[0].Stream != "chat:b" || st.Broadcasts[0].Delivered != 1 || st.Broadcasts[0].Preview != `{"status":"complete"}` {
		t.Errorf("recent broadcasts %+v", st.Broadcasts)
	}
	if len(st.Rejections) != 1 || st.Rejections[0].Reason != "missing_param" {
		t.Errorf("recent rejections %+v", st.Rejections)
	}
}

func TestLogLevelAtRunTime(t *testing.T) {
	r := start(t, "")
	put := func(body string) int {
		req, _ := http.NewRequest("PUT", r.admin+"/loglevel", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("debug"); code != 200 || r.level.Level() != slog.LevelDebug {
		t.Fatalf("PUT debug: %d, level %v", code, r.level.Level())
	}
	if code := put(`{"level":"warn"}`); code != 200 || r.level.Level() != slog.LevelWarn {
		t.Fatalf("PUT warn: %d, level %v", code, r.level.Level())
	}
	if code := put("loud"); code != 400 || r.level.Level() != slog.LevelWarn {
		t.Fatalf("PUT loud: %d, level %v", code, r.level.Level())
	}
	if _, body := r.get(t, "/loglevel"); strings.TrimSpace(body) != `{"level":"warn"}` {
		t.Errorf("GET /loglevel = %s", body)
	}
}

func TestAdminToken(t *testing.T) {
	r := start(t, "adm-secret")
	for _, path := range []string{"/metrics", "/api/status", "/loglevel", "/debug/pprof/heap"} {
		resp, err := http.Get(r.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s without token: %d", path, resp.StatusCode)
		}
		if code, _ := r.get(t, path); code != 200 {
			t.Errorf("%s with bearer token: %d", path, code)
		}
		resp, err = http.Get(r.admin + path + "?admin_token=adm-secret")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s with query token: %d", path, resp.StatusCode)
		}
	}
	// The token never shows in what the admin listener serves.
	for _, path := range []string{"/metrics", "/api/status"} {
		if _, body := r.get(t, path); strings.Contains(body, "adm-secret") {
			t.Errorf("%s shows the token", path)
		}
	}
}

// TestBrokerSeriesAndDetail checks a broker's own series are exposed and
// its detail fields join /api/status's broker object without replacing
// the common ones.
func TestBrokerSeriesAndDetail(t *testing.T) {
	a, err := auth.New(auth.Config{JWTSecret: strings.Repeat("k", 32), AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	b := memory.New()
	srv, err := proxy.New(proxy.Config{}, b, a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	polls := prometheus.NewCounter(prometheus.CounterOpts{Name: "cablecar_test_polls_total", Help: "test"})
	polls.Add(3)
	adm := admin.New(admin.Config{}, admin.Source{Server: srv, Broker: b, BrokerName: "solid_cable", Level: new(slog.LevelVar),
		BrokerSeries: []prometheus.Collector{polls},
		BrokerDetail: func() map[string]any { return map[string]any{"lag_seconds": 0.25, "name": "spoofed"} }}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	aln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { adm.Serve(ctx, aln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r := &rig{admin: "http://" + aln.Addr().String()}
	if v := r.metric(t, "cablecar_test_polls_total"); v != "3" {
		t.Errorf("broker series = %q, want 3", v)
	}
	_, body := r.get(t, "/api/status")
	var st struct {
		Broker map[string]any `json:"broker"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Broker["name"] != "solid_cable" || st.Broker["lag_seconds"] != 0.25 {
		t.Errorf("broker = %v, want name solid_cable and lag_seconds 0.25", st.Broker)
	}
}
