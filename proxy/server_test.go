package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

const (
	lobby     = `{"channel":"ChatChannel","room":"lobby"}`
	testRoute = "public:ChatChannel=chat:{params.room}"
)

func anonymous() auth.Config { return auth.Config{AllowAnonymous: true, Routes: testRoute} }

func TestWelcomeProtocolAndPing(t *testing.T) {
	ts := startServer(t, proxy.Config{PingInterval: 50 * time.Millisecond}, anonymous(), nil)
	c := dial(t, ts.url(""), nil)
	if c.protocol != "actioncable-v1-json" {
		t.Errorf("subprotocol %q, want actioncable-v1-json", c.protocol)
	}
	f := c.next()
	if f.op != ws.OpText || string(f.payload) != `{"type":"welcome"}` {
		t.Fatalf("first frame %v %q, want text {\"type\":\"welcome\"}", f.op, f.payload)
	}
	ping := regexp.MustCompile(`^\{"type":"ping","message":(\d{10})\}$`)
	for i := 0; i < 2; i++ {
		f := c.next()
		m := ping.FindSubmatch(f.payload)
		if m == nil {
			t.Fatalf("frame %q is not a ping", f.payload)
		}
		var unix int64
		fmt.Sscan(string(m[1]), &unix)
		if d := time.Since(time.Unix(unix, 0)); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("ping time %d is %v away from now", unix, d)
		}
	}
}

// Every connection hears a ping each PingInterval, but the connections
// take turns: the first pings of 16 connections spread over the interval
// instead of arriving together.
func TestPingsAreStaggered(t *testing.T) {
	const interval = 400 * time.Millisecond
	ts := startServer(t, proxy.Config{PingInterval: interval}, anonymous(), nil)
	const conns = 16
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = welcomed(t, ts.url(""))
	}
	start := time.Now()
	pings := make([][]time.Duration, conns) // arrival of the first two pings, since start
	errs := make(chan error, conns)
	for i, c := range clients {
		go func() {
			for len(pings[i]) < 2 {
				f, err := c.read(3 * interval)
				if err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
				if bytes.HasPrefix(f.payload, []byte(`{"type":"ping"`)) {
					pings[i] = append(pings[i], time.Since(start))
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	first, last := pings[0][0], pings[0][0]
	for i, p := range pings {
		if gap := p[1] - p[0]; gap < interval/2 || gap > 3*interval/2 {
			t.Errorf("conn %d: pings %v apart, want about %v", i, gap, interval)
		}
		first, last = min(first, p[0]), max(last, p[0])
	}
	if spread := last - first; spread < interval/4 {
		t.Errorf("first pings arrived within %v of each other; want them spread over the %v interval", spread, interval)
	}
}

func TestUnauthorizedGetsDisconnectFrameThenClose(t *testing.T) {
	ts := startServer(t, proxy.Config{}, auth.Config{JWTSecret: "s3cret-for-tests-0123456789abcdef0123", Routes: testRoute}, nil)
	for _, q := range []string{"", "token=not-a-jwt"} {
		c := dial(t, ts.url(q), nil)
		f := c.next()
		if string(f.payload) != `{"type":"disconnect","reason":"unauthorized","reconnect":false}` {
			t.Fatalf("query %q: got %q", q, f.payload)
		}
		f = c.next()
		if f.op != ws.OpClose || string(f.payload) != "\x03\xe8" {
			t.Fatalf("query %q: got %v % x, want close 1000", q, f.op, f.payload)
		}
		if _, err := c.read(2 * time.Second); err == nil {
			t.Errorf("query %q: connection still open after close", q)
		}
	}
	if strings.Contains(ts.logs.String(), "not-a-jwt") {
		t.Errorf("token appeared in the log:\n%s", ts.logs.String())
	}
	if got := ts.Stats().AuthFailures.Load(); got != 2 {
		t.Errorf("AuthFailures = %d, want 2", got)
	}
}

func TestAuthenticatedConnectionWithToken(t *testing.T) {
	acfg := auth.Config{JWTSecret: "s3cret-for-tests-0123456789abcdef0123", Routes: "DocumentChannel={channel}:{params.id}", GIDApp: "myapp"}
	ts := startServer(t, proxy.Config{}, acfg, nil)
	a, _ := auth.New(acfg)
	tok, err := a.Mint("42", []string{"document:*"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := welcomed(t, ts.url("token="+tok))
	id := `{"channel":"DocumentChannel","id":123}`
	c.command("subscribe", id)
	if got := c.nextText(); got != confirmFrame(id) {
		t.Fatalf("got %s", got)
	}
	denied := `{"channel":"DocumentChannel","id":"x:y"}` // "document:x:y" matches document:*: allowed
	c.command("subscribe", denied)
	if got := c.nextText(); got != confirmFrame(denied) {
		t.Fatalf("got %s", got)
	}
	if strings.Contains(ts.logs.String(), tok) {
		t.Error("token in the log")
	}
}

func TestSubscribeConfirmAndVerbatimBroadcast(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want confirm", got)
	}
	payloads := []string{
		`{"status":"complete","progress":100}`,
		`{ "spaced" : 1.50, "big": 123456789012345678901234567890, "z": 1, "a": 2 }`,
		`"plain string message"`,
		`[1,2,3]`,
		`"\u003cturbo-stream action=\"append\"\u003e\u003c/turbo-stream\u003e"`,
	}
	for _, p := range payloads {
		if err := ts.broker.Publish(context.Background(), "chat:lobby", []byte(p)); err != nil {
			t.Fatal(err)
		}
		if got := c.nextText(); got != messageFrame(lobby, p) {
			t.Errorf("got  %s\nwant %s", got, messageFrame(lobby, p))
		}
	}
}

func TestInvalidPayloadDroppedStreamKeepsWorking(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.nextText()
	ts.broker.Publish(context.Background(), "chat:lobby", []byte("not json at all"))
	ts.broker.Publish(context.Background(), "chat:lobby", []byte(`{"ok":true}`))
	if got := c.nextText(); got != messageFrame(lobby, `{"ok":true}`) {
		t.Fatalf("got %s", got)
	}
	if n := ts.Stats().InvalidPayloads.Load(); n != 1 {
		t.Errorf("InvalidPayloads = %d, want 1", n)
	}
	if !strings.Contains(ts.logs.String(), "payload is not valid JSON") {
		t.Error("no log line for the invalid payload")
	}
}

func TestDuplicateAndDistinctIdentifiers(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.command("subscribe", lobby) // byte-identical: ignored
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s", got)
	}
	reordered := `{"room":"lobby","channel":"ChatChannel"}` // same logical, other bytes: its own subscription
	c.command("subscribe", reordered)
	if got := c.nextText(); got != confirmFrame(reordered) {
		t.Fatalf("got %s", got)
	}
	ts.broker.Publish(context.Background(), "chat:lobby", []byte(`1`))
	got := map[string]bool{c.nextText(): true, c.nextText(): true}
	for _, id := range []string{lobby, reordered} {
		if !got[messageFrame(id, "1")] {
			t.Errorf("missing delivery for %s; got %v", id, got)
		}
	}
	c.expectNothing(200 * time.Millisecond)
}

func TestRejections(t *testing.T) {
	ts := startServer(t, proxy.Config{MaxSubscriptions: 2}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	for _, id := range []string{
		`{"channel":"NoSuchChannel"}`,          // unknown channel: Rails stays silent, we reject
		`{"channel":"ChatChannel"}`,            // missing param
		`not json`,                             // identifier is not JSON
		`{"room":"lobby"}`,                     // no channel
		`{"channel":"ChatChannel","room":1.5}`, // unrenderable
	} {
		c.command("subscribe", id)
		if got := c.nextText(); got != rejectFrame(id) {
			t.Errorf("subscribe %s: got %s, want reject", id, got)
		}
	}
	for _, room := range []string{"a", "b"} {
		id := `{"channel":"ChatChannel","room":"` + room + `"}`
		c.command("subscribe", id)
		if got := c.nextText(); got != confirmFrame(id) {
			t.Fatalf("got %s", got)
		}
	}
	third := `{"channel":"ChatChannel","room":"c"}`
	c.command("subscribe", third)
	if got := c.nextText(); got != rejectFrame(third) {
		t.Errorf("past CABLECAR_MAX_SUBSCRIPTIONS: got %s", got)
	}
	if !strings.Contains(ts.logs.String(), "subscription rejected") || !strings.Contains(ts.logs.String(), "NoSuchChannel") {
		t.Errorf("rejections not logged with the channel:\n%s", ts.logs.String())
	}
	if n := ts.Stats().SubsRejected.Load(); n != 6 {
		t.Errorf("SubsRejected = %d, want 6", n)
	}
}

func TestGarbageIsIgnoredConnectionStays(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.sendText("this is not json")
	c.sendText(`{"command":"subscribe","identifier":{"channel":"ChatChannel"}}`) // identifier not a string
	c.sendText(`{"command":"dance","identifier":"{}"}`)
	c.sendText("\xff\xfe invalid utf-8")
	c.sendText(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))
	c.sendFrame(ws.OpBinary, []byte{1, 2, 3})
	c.command("unsubscribe", lobby) // not subscribed
	c.sendText(`{"command":"message","identifier":"` + strings.ReplaceAll(lobby, `"`, `\"`) + `","data":"{\"action\":\"speak\"}"}`)
	c.expectNothing(200 * time.Millisecond)
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("after garbage: got %s", got)
	}
	noErrorLogs(t, ts)
}

func TestPingControlFrameGetsPong(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.sendFrame(ws.OpPing, []byte("abc"))
	f := c.next()
	if f.op != ws.OpPong || string(f.payload) != "abc" {
		t.Fatalf("got %v %q, want pong abc", f.op, f.payload)
	}
}

func TestFragmentedMessage(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	b, _ := json.Marshal(map[string]string{"command": "subscribe", "identifier": lobby})
	parts := [][]byte{b[:10], b[10:20], b[20:]}
	frames := []ws.Frame{ws.NewFrame(ws.OpText, false, parts[0]), ws.NewFrame(ws.OpContinuation, false, parts[1]), ws.NewFrame(ws.OpContinuation, true, parts[2])}
	for i, f := range frames {
		if err := ws.WriteFrame(c.nc, ws.MaskFrame(f)); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // a control frame may come between fragments
			ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewPingFrame([]byte("x"))))
		}
	}
	if f := c.next(); f.op != ws.OpPong {
		t.Fatalf("got %v, want the pong first", f.op)
	}
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s", got)
	}
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	ts := startServer(t, proxy.Config{MaxMessageSize: 1024}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.sendText(strings.Repeat("x", 2048))
	for {
		f := c.next()
		if f.op == ws.OpClose {
			if string(f.payload) != "\x03\xf1" {
				t.Fatalf("close payload % x, want 03 f1 (1009)", f.payload)
			}
			return
		}
	}
}

func TestUnmaskedFrameIsProtocolError(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	ws.WriteFrame(c.nc, ws.NewTextFrame([]byte("{}"))) // not masked
	for {
		f := c.next()
		if f.op == ws.OpClose {
			if string(f.payload) != "\x03\xea" {
				t.Fatalf("close payload % x, want 03 ea (1002)", f.payload)
			}
			return
		}
	}
}

func TestUnsubscribeStopsDeliveryAndResubscribeConfirms(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.nextText()
	c.command("unsubscribe", lobby)
	waitFor(t, "stream released", func() bool { return ts.StreamCount() == 0 })
	ts.broker.Publish(context.Background(), "chat:lobby", []byte(`"after unsubscribe"`))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("resubscribe: got %s", got)
	}
	ts.broker.Publish(context.Background(), "chat:lobby", []byte(`"again"`))
	if got := c.nextText(); got != messageFrame(lobby, `"again"`) {
		t.Fatalf("got %s", got)
	}
}

func TestOriginChecks(t *testing.T) {
	ts := startServer(t, proxy.Config{AllowedOrigins: []string{"https://app.example.com"}}, anonymous(), nil)
	for _, c := range []struct {
		origin string
		status int
	}{
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"", http.StatusSwitchingProtocols},
		{"https://evil.example.com", http.StatusNotFound},
		{"https://app.example.com.evil.io", http.StatusNotFound},
	} {
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/cable", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Protocol", "actioncable-v1-json")
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		if resp.StatusCode != http.StatusSwitchingProtocols { // a 101 body is the socket
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 100))
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("origin %q: status %d, want %d", c.origin, resp.StatusCode, c.status)
		}
		if c.status == http.StatusNotFound && string(body) != "Page not found" {
			t.Errorf("origin %q: body %q", c.origin, body)
		}
	}
	if !strings.Contains(ts.logs.String(), `origin \"https://evil.example.com\" is not in CABLECAR_ALLOWED_ORIGINS`) {
		t.Errorf("refusal not logged with its reason:\n%s", ts.logs.String())
	}
}

func TestPlainGETOnCableIs404(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	resp, err := http.Get("http://" + ts.addr + "/cable")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || string(body) != "Page not found" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestHealth(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	resp, err := http.Get("http://" + ts.addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

func TestBroadcastEndpoint(t *testing.T) {
	post := func(t *testing.T, ts *testServer, key, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+ts.addr+"/_broadcast", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	t.Run("disabled without a key", func(t *testing.T) {
		ts := startServer(t, proxy.Config{}, anonymous(), nil)
		if code, _ := post(t, ts, "", `{"stream":"x","data":1}`); code != 404 {
			t.Errorf("status %d, want 404", code)
		}
	})
	ts := startServer(t, proxy.Config{BroadcastKey: "bk-123"}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.nextText()
	for _, tc := range []struct {
		name, key, body string
		code            int
		reply           string
	}{
		{"wrong key", "nope", `{"stream":"chat:lobby","data":1}`, 401, ""},
		{"no key", "", `{"stream":"chat:lobby","data":1}`, 401, ""},
		{"bad json", "bk-123", `{"stream":`, 400, ""},
		{"no stream", "bk-123", `{"data":1}`, 400, ""},
		{"no data", "bk-123", `{"stream":"chat:lobby"}`, 400, ""},
		{"one", "bk-123", `{"stream":"chat:lobby","data":{"b":1.0,"a":[1]}}`, 202, `{"delivered_to_broker":1}`},
		{"array", "bk-123", `[{"stream":"chat:lobby","data":"x"},{"stream":"chat:lobby","data":null}]`, 202, `{"delivered_to_broker":2}`},
	} {
		code, reply := post(t, ts, tc.key, tc.body)
		if code != tc.code || (tc.reply != "" && reply != tc.reply) {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, code, reply, tc.code, tc.reply)
		}
	}
	for _, want := range []string{`{"b":1.0,"a":[1]}`, `"x"`, `null`} {
		if got := c.nextText(); got != messageFrame(lobby, want) {
			t.Errorf("got %s want %s", got, messageFrame(lobby, want))
		}
	}
	if strings.Contains(ts.logs.String(), "bk-123") {
		t.Error("broadcast key in the log")
	}
}

func TestShutdownSendsServerRestart(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	clients := make([]*client, 5)
	for i := range clients {
		clients[i] = welcomed(t, ts.url(""))
	}
	errc := make(chan error, 1)
	go func() { errc <- ts.stop() }()
	for i, c := range clients {
		if got := c.nextText(); got != `{"type":"disconnect","reason":"server_restart","reconnect":true}` {
			t.Errorf("client %d: got %s", i, got)
		}
		if f := c.next(); f.op != ws.OpClose || string(f.payload) != "\x03\xe8" {
			t.Errorf("client %d: got %v % x, want close 1000", i, f.op, f.payload)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
}

// Half the subscribers vanish (TCP closed, no close frame) in the middle of
// a burst: the rest get every message in order and nothing logs an error.
func TestAbruptClosesMidBurst(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	const n, burst = 20, 300
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = welcomed(t, ts.url(""))
		clients[i].command("subscribe", lobby)
		if got := clients[i].nextText(); got != confirmFrame(lobby) {
			t.Fatalf("got %s", got)
		}
	}
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := 0; i < n; i += 2 { // the survivors read everything
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < burst; k++ {
				want := messageFrame(lobby, fmt.Sprint(k))
				f, err := clients[i].read(10 * time.Second)
				for err == nil && strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
					f, err = clients[i].read(10 * time.Second)
				}
				if err != nil || string(f.payload) != want {
					results[i] = fmt.Errorf("message %d: got %q (%v), want %s", k, f.payload, err, want)
					return
				}
			}
		}(i)
	}
	for k := 0; k < burst; k++ {
		if k == burst/2 {
			for i := 1; i < n; i += 2 {
				clients[i].nc.Close()
			}
		}
		if err := ts.broker.Publish(context.Background(), "chat:lobby", []byte(fmt.Sprint(k))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	waitFor(t, "closed clients released", func() bool { return ts.Stats().ConnsOpen.Load() == n/2 })
	noErrorLogs(t, ts)
}

// A client that stops reading while its stream is flooded is cut off as
// too_slow; a reading client on the same stream gets every message.
func TestSlowClientIsDisconnectedOthersUnaffected(t *testing.T) {
	ts := startServer(t, proxy.Config{MaxPendingBytes: 64 << 10, WriteTimeout: time.Second}, anonymous(), nil)
	slow := welcomed(t, ts.url(""))
	slow.nc.(*net.TCPConn).SetReadBuffer(4096) // so the kernel cannot absorb the flood
	fast := welcomed(t, ts.url(""))
	for _, c := range []*client{slow, fast} {
		c.command("subscribe", lobby)
		c.nextText()
	}
	const count = 4000
	big := `"` + strings.Repeat("x", 4000) + `"`
	var read atomic.Int64 // messages the fast client has read
	done := make(chan error, 1)
	go func() {
		for k := 0; k < count; k++ {
			f, err := fast.read(10 * time.Second)
			for err == nil && strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
				f, err = fast.read(10 * time.Second)
			}
			if err != nil {
				done <- fmt.Errorf("message %d: %v", k, err)
				return
			}
			read.Add(1)
		}
		done <- nil
	}()
	// Publish as fast as a reading client can take it (at most 8 messages
	// ahead of it), 16 MB in all: far more than the slow one's socket
	// buffers and MaxPendingBytes hold.
	for k := 0; k < count; k++ {
		for int64(k)-read.Load() > 8 {
			select {
			case err := <-done:
				t.Fatalf("fast client stopped early: %v", err)
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
		ts.broker.Publish(context.Background(), "chat:lobby", []byte(big))
	}
	if err := <-done; err != nil {
		t.Fatalf("fast client: %v", err)
	}
	waitFor(t, "slow client disconnected", func() bool { return ts.Stats().DisconnectsSlow.Load() == 1 })
	waitFor(t, "slow client gone", func() bool { return ts.Stats().ConnsOpen.Load() == 1 })
	noErrorLogs(t, ts)
}

// A command flood past CABLECAR_MAX_COMMAND_RATE closes the connection with
// 1008; a burst the size of a reconnecting client's resubscribes does not.
func TestCommandRateLimit(t *testing.T) {
	ts := startServer(t, proxy.Config{MaxSubscriptions: 20, MaxCommandRate: 10}, anonymous(), nil)
	ok := welcomed(t, ts.url(""))
	for i := 0; i < 30; i++ { // within the burst (MaxSubscriptions+16 = 36)
		ok.command("subscribe", fmt.Sprintf(`{"channel":"ChatChannel","room":"r%d"}`, i))
	}
	for i := 0; i < 30; i++ {
		if f := ok.next(); f.op != ws.OpText {
			t.Fatalf("frame %d: %v, want confirm or reject", i, f.op)
		}
	}
	flood := welcomed(t, ts.url(""))
	for i := 0; i < 200; i++ { // the server may cut us off mid-flood
		if ws.WriteFrame(flood.nc, ws.MaskFrame(ws.NewTextFrame([]byte(`{"command":"unsubscribe","identifier":"{}"}`)))) != nil {
			break
		}
	}
	for {
		f := flood.next()
		if f.op == ws.OpClose {
			if string(f.payload) != "\x03\xf0" {
				t.Fatalf("close % x, want 1008", f.payload)
			}
			break
		}
	}
	if !strings.Contains(ts.logs.String(), "reason=command_rate") {
		t.Error("no log line for the rate limit")
	}
}

// Cross-site WebSocket hijacking: with cookie authentication a page on
// another site could open the socket with the user's cookie; the origin
// check refuses it before any authentication happens.
func TestCookieAuthNeedsAllowedOrigin(t *testing.T) {
	acfg := auth.Config{JWTSecret: strings.Repeat("c", 32), JWTCookie: "cable_token", Routes: testRoute}
	ts := startServer(t, proxy.Config{}, acfg, nil)
	a, _ := auth.New(acfg)
	tok, _ := a.Mint("42", nil, time.Minute)
	for _, c := range []struct {
		origin string
		status int
	}{
		{"http://" + ts.addr, http.StatusSwitchingProtocols}, // same origin
		{"https://evil.example", http.StatusNotFound},
	} {
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/cable", nil)
		for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "actioncable-v1-json",
			"Origin": c.origin, "Cookie": "cable_token=" + tok} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("origin %s: status %d, want %d", c.origin, resp.StatusCode, c.status)
		}
	}
	// The count is taken just after the 101 goes out, so wait for it; the
	// refused request never reached the upgrade, so it cannot add one.
	waitFor(t, "the same-origin connection counted", func() bool { return ts.Stats().ConnsTotal.Load() >= 1 })
	if got := ts.Stats().ConnsTotal.Load(); got != 1 {
		t.Errorf("%d connections accepted, want only the same-origin one", got)
	}
}

// Shutdown in the middle of a broadcast burst: every client still gets
// server_restart and a close 1000 after whatever it was sent, and Serve
// returns cleanly.
func TestShutdownDuringBurst(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	const n = 50
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = welcomed(t, ts.url(""))
		clients[i].command("subscribe", lobby)
		if got := clients[i].nextText(); got != confirmFrame(lobby) {
			t.Fatalf("got %s", got)
		}
	}
	stopBurst := make(chan struct{})
	burstDone := make(chan struct{})
	go func() {
		defer close(burstDone)
		for k := 0; ; k++ {
			select {
			case <-stopBurst:
				return
			default:
				ts.broker.Publish(context.Background(), "chat:lobby", []byte(fmt.Sprint(k)))
			}
		}
	}()
	results := make(chan error, n)
	for _, c := range clients {
		go func(c *client) {
			sawRestart := false
			for {
				f, err := c.read(10 * time.Second)
				switch {
				case err != nil:
					results <- fmt.Errorf("read: %v (saw server_restart: %v)", err, sawRestart)
					return
				case f.op == ws.OpClose:
					if !sawRestart || string(f.payload) != "\x03\xe8" {
						results <- fmt.Errorf("close % x, saw server_restart first: %v", f.payload, sawRestart)
					} else {
						results <- nil
					}
					return
				case string(f.payload) == `{"type":"disconnect","reason":"server_restart","reconnect":true}`:
					sawRestart = true
				}
			}
		}(c)
	}
	time.Sleep(50 * time.Millisecond) // let the burst get going
	if err := ts.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	close(stopBurst)
	<-burstDone
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	noErrorLogs(t, ts)
}

// A client that stops reading cannot keep its socket past
// SHUTDOWN_TIMEOUT: once the drain gives up, the socket is closed even
// though its writer is still waiting for room, long before the write
// timeout would have cut it off.
func TestShutdownTimeoutClosesStuckSockets(t *testing.T) {
	ts := startServer(t, proxy.Config{ShutdownTimeout: 300 * time.Millisecond, WriteTimeout: time.Minute,
		MaxPendingBytes: 64 << 20}, anonymous(), nil)
	stuck := welcomed(t, ts.url(""))
	stuck.command("subscribe", lobby)
	if got := stuck.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s, want the confirm", got)
	}
	// 25 MB it never reads: more than loopback's socket buffers hold, so
	// its writer ends up waiting for room.
	payload := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	const n = 400
	for range n {
		if err := ts.broker.Publish(context.Background(), "chat:lobby", payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "broadcasts queued", func() bool { return ts.Stats().BroadcastsReceived.Load() == n })
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %v to return with SHUTDOWN_TIMEOUT 300ms", d)
	}
	// Without reading from it (reading would let its writer finish), the
	// connection must be over within seconds, not at the one-minute write
	// timeout.
	deadline := time.Now().Add(5 * time.Second)
	for ts.Stats().ConnsOpen.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5 s after shutdown", ts.Stats().ConnsOpen.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And the client sees the end once it reads what was buffered.
	stuck.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, stuck.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stuck client's socket was still open 10 s after shutdown")
	}
	if !strings.Contains(ts.logs.String(), "shutdown timeout: closing remaining connections") {
		t.Errorf("no shutdown-timeout line in the log")
	}
}
