package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Differential conformance: the same client scripts run against a real
// Action Cable server (Debian's ruby-actioncable 6.1.7.10 on Puma,
// e2e/ruby/cable_server.ru) and against cablecar, both reading the same
// Redis with the prefix myapp_production, and their frame transcripts are
// compared modulo timing and ping timestamps. The differences cablecar
// makes on purpose are listed in conformanceDifferences; anything else
// fails with a diff ("-" Rails only, "+" cablecar only).

// conformanceDifferences are the steps where cablecar answers differently
// from Rails by design. Each side must send exactly what is listed.
var conformanceDifferences = []allowedDifference{
	{
		step:     "subscribe to a channel that does not exist",
		rails:    nil,
		cablecar: []string{`{"identifier":"{\"channel\":\"NoSuchChannel\"}","type":"reject_subscription"}`},
		reason: "Rails only logs an unknown channel class, so the JS client re-sends subscribe every 500 ms forever; " +
			"cablecar has no route for it and rejects, which ends that loop",
	},
	{
		step:     "subscribe without the id param",
		rails:    nil,
		cablecar: []string{`{"identifier":"{\"channel\":\"DocumentChannel\"}","type":"reject_subscription"}`},
		reason: "Rails raises in subscribed (Document.find(nil) has no GlobalID) and only logs it; cablecar cannot " +
			"render the route's {params.id} and rejects, for the same reason as above",
	},
	{
		step:     "garbage: identifier is not JSON",
		rails:    nil,
		cablecar: []string{`{"identifier":"not json","type":"reject_subscription"}`},
		reason: "Rails only logs the JSON parse error; cablecar rejects an identifier that is not a JSON object with a " +
			"channel (reason invalid_identifier), as it rejects every subscribe it cannot serve",
	},
	{
		step:     "perform an action the Ruby channel defines (echo)",
		rails:    []string{`{"identifier":"{\"channel\":\"DocumentChannel\",\"id\":7}","message":{"echo":{"action":"echo","k":"v"}}}`},
		cablecar: nil,
		reason:   "cablecar runs no channel code: message/perform commands are ignored; the app's jobs publish through Redis instead",
	},
	{
		step:     "offer actioncable-unsupported before actioncable-v1-json",
		rails:    []string{"HTTP 101", "protocol actioncable-unsupported", `{"type":"welcome"}`},
		cablecar: []string{"HTTP 101", "protocol actioncable-v1-json", `{"type":"welcome"}`},
		reason: "Rails picks the first offered protocol it knows, and a client that gets actioncable-unsupported " +
			"closes and never reconnects; cablecar always answers actioncable-v1-json when it is offered",
	},
}

// conformanceServers are the two cables under test.
type conformanceServers struct {
	urls  [2]string // ws://…/cable of Rails, then cablecar
	token string    // valid for cablecar; any non-empty token is user 42 for Rails
	rdb   *goredis.Client
}

var serverNames = [2]string{"rails", "cablecar"}

// documentStream is DocumentChannel.broadcasting_for(Document.find(id)).
func documentStream(id int) string {
	return "myapp_production:document:" + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("gid://myapp/Document/%d", id)))
}

func (s conformanceServers) publish(t *testing.T, id int, payload string) {
	t.Helper()
	if err := s.rdb.Publish(context.Background(), documentStream(id), payload).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	start := time.Now()
	rs := redistest.Start(t)
	railsAddr, puma := startRailsCable(t, rs.URL)
	env := documentEnv(rs.URL)
	env["CABLECAR_ALLOWED_ORIGINS"] = conformanceOrigin
	sc := startSidecar(t, env, "serve")
	waitRailsCable(t, railsAddr, puma)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	s := conformanceServers{
		urls:  [2]string{"ws://" + railsAddr + "/cable", "ws://" + sc.addr + "/cable"},
		token: mustToken(t, env, "document:*"),
		rdb:   rdb,
	}
	t.Logf("both servers up after %v", time.Since(start).Round(time.Millisecond))

	// The subtests use different documents, so their broadcasts do not
	// cross, and run at once to keep the wall time down.
	t.Run("group", func(t *testing.T) {
		t.Run("Handshake", func(t *testing.T) { t.Parallel(); conformanceHandshakes(t, s) })
		t.Run("RawScript", func(t *testing.T) { t.Parallel(); conformanceRawScript(t, s) })
		t.Run("JSClient", func(t *testing.T) { t.Parallel(); conformanceJSClient(t, s) })
		t.Run("JSClientUnauthorized", func(t *testing.T) { t.Parallel(); conformanceJSUnauthorized(t, s) })
	})
}

// conformanceHandshakes compares what each server does with an upgrade
// request: status, chosen subprotocol, and the first frames.
func conformanceHandshakes(t *testing.T, s conformanceServers) {
	v1, unsupported := "actioncable-v1-json", "actioncable-unsupported"
	cases := []struct {
		name, query, origin, header string
		protocols                   []string
	}{
		{name: "offer the JS client's protocols", protocols: []string{v1, unsupported}},
		{name: "offer actioncable-unsupported before actioncable-v1-json", protocols: []string{unsupported, v1}},
		{name: "offer no subprotocol"},
		{name: "offer only an unknown subprotocol", protocols: []string{"chat"}},
		{name: "offer permessage-deflate", protocols: []string{v1, unsupported}, header: "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"},
		{name: "connect without a token", query: "-", protocols: []string{v1, unsupported}},
		{name: "connect from an origin not allowed", origin: "http://evil.example", protocols: []string{v1, unsupported}},
	}
	var steps []conformanceStep
	for _, c := range cases {
		query := "?token=" + s.token
		if c.query == "-" {
			query = ""
		}
		origin := conformanceOrigin
		if c.origin != "" {
			origin = c.origin
		}
		rails, cablecar := both(func(i int) []string {
			p, hs := dialRaw(t, serverNames[i], s.urls[i]+query, origin, c.protocols, c.header)
			if p == nil {
				return []string{fmt.Sprintf("HTTP %d", hs.status), "content type " + hs.ctype, "body " + hs.body}
			}
			defer p.conn.Close()
			out := append([]string{"HTTP 101", "protocol " + hs.protocol}, p.collect(1, 300*time.Millisecond, 5*time.Second)...)
			return out
		})
		steps = append(steps, conformanceStep{name: c.name, sent: []string{strings.TrimSpace(fmt.Sprintf("upgrade%s, protocols %q, Origin %s %s", strings.ReplaceAll(query, s.token, "<token>"), c.protocols, origin, c.header))}, rails: rails, cablecar: cablecar})
	}
	// Not a WebSocket request at all.
	rails, cablecar := both(func(i int) []string {
		resp, err := http.Get("http" + strings.TrimPrefix(s.urls[i], "ws"))
		if err != nil {
			return []string{err.Error()}
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return []string{fmt.Sprintf("HTTP %d", resp.StatusCode), "content type " + ctype, "body " + string(body)}
	})
	steps = append(steps, conformanceStep{name: "plain GET /cable", sent: []string{"GET /cable"}, rails: rails, cablecar: cablecar})
	compareSteps(t, steps, differencesFor(steps))
}

// differencesFor picks the allowed differences that name one of steps.
func differencesFor(steps []conformanceStep) []allowedDifference {
	var out []allowedDifference
	for _, d := range conformanceDifferences {
		if slices.ContainsFunc(steps, func(s conformanceStep) bool { return s.name == d.step }) {
			out = append(out, d)
		}
	}
	return out
}

func subscribeCmd(identifier string) string { return command("subscribe", identifier) }

func command(cmd, identifier string) string {
	b, _ := json.Marshal(map[string]string{"command": cmd, "identifier": identifier})
	return string(b)
}

// conformanceRawScript drives one raw WebSocket per server through the
// edge cases in lockstep: each step is sent to both, then each side's
// frames are collected until 350 ms pass without one (after the expected
// replies, which may take up to 5 s).
func conformanceRawScript(t *testing.T, s conformanceServers) {
	var peers [2]*rawPeer
	for i := range peers {
		p, hs := dialRaw(t, serverNames[i], s.urls[i]+"?token="+s.token, conformanceOrigin, []string{"actioncable-v1-json", "actioncable-unsupported"}, "")
		if p == nil {
			t.Fatalf("%s refused the upgrade: %+v", serverNames[i], hs)
		}
		peers[i] = p
	}
	const (
		idA       = `{"channel":"DocumentChannel","id":7}`
		idB       = `{"id":7,"channel":"DocumentChannel"}` // same params, other bytes
		idSpaced  = `{ "channel" : "DocumentChannel", "id" : 8 }`
		idNine    = `{"channel":"DocumentChannel","id":9}`
		idUnknown = `{"channel":"NoSuchChannel"}`
	)
	// expect is how many frames Rails sends for the step (or, for an
	// allowed difference, each side as listed). It only bounds how long a
	// step waits for slow replies; the frames themselves are compared.
	type rawStep struct {
		name      string
		expect    int
		unordered bool     // Rails runs a connection's commands on 4 threads: replies to a batch may come in any order
		text      []string // text frames to send
		binary    []byte   // or a binary frame
		publish   string   // or a payload to PUBLISH once to Document 7's stream
	}
	script := []rawStep{
		{name: "connect", expect: 1},
		{name: "subscribe", expect: 1, text: []string{subscribeCmd(idA)}},
		{name: "subscribe again, byte-identical", text: []string{subscribeCmd(idA)}},
		{name: "subscribe with the keys in another order", expect: 1, text: []string{subscribeCmd(idB)}},
		{name: "publish: one frame per subscription", expect: 2, unordered: true, publish: `{"n":1}`},
		{name: "two subscribes at once", expect: 2, unordered: true, text: []string{subscribeCmd(idSpaced), subscribeCmd(idNine)}},
		{name: "garbage: not JSON", text: []string{"not json at all"}},
		{name: "garbage: unknown command", text: []string{command("bogus", idA)}},
		{name: "garbage: identifier is not JSON", text: []string{subscribeCmd("not json")}},
		{name: "garbage: identifier is an object", text: []string{`{"command":"subscribe","identifier":{"channel":"DocumentChannel","id":7}}`}},
		{name: "garbage: binary frame", binary: []byte{0, 1, 2}},
		{name: "subscribe to a channel that does not exist", text: []string{subscribeCmd(idUnknown)}},
		{name: "subscribe without the id param", text: []string{subscribeCmd(`{"channel":"DocumentChannel"}`)}},
		{name: "perform an action the Ruby channel defines (echo)", expect: 1,
			text: []string{`{"command":"message","identifier":` + jsonString(idA) + `,"data":"{\"action\":\"echo\",\"k\":\"v\"}"}`}},
		{name: "perform on an identifier not subscribed",
			text: []string{`{"command":"message","identifier":` + jsonString(`{"channel":"DocumentChannel","id":99}`) + `,"data":"{\"action\":\"echo\"}"}`}},
		{name: "unsubscribe", text: []string{command("unsubscribe", idA)}},
		{name: "publish after unsubscribe: only the other subscription", expect: 1, publish: `{"n":2}`},
		{name: "unsubscribe an identifier not subscribed", text: []string{command("unsubscribe", `{"channel":"DocumentChannel","id":99}`)}},
		{name: "resubscribe: a fresh confirm", expect: 1, text: []string{subscribeCmd(idA)}},
		{name: "publish after resubscribe", expect: 2, unordered: true, publish: `{"n":3}`},
	}
	allowed := map[string]allowedDifference{}
	for _, d := range conformanceDifferences {
		allowed[d.step] = d
	}
	var steps []conformanceStep
	for _, st := range script {
		sent := slices.Clone(st.text)
		switch {
		case st.binary != nil:
			sent = append(sent, fmt.Sprintf("(binary frame % x)", st.binary))
		case st.publish != "":
			sent = append(sent, "PUBLISH "+documentStream(7)+" "+st.publish)
			s.publish(t, 7, st.publish)
		case st.name == "connect":
			sent = append(sent, "(upgrade)")
		}
		rails, cablecar := both(func(i int) []string {
			p := peers[i]
			for _, f := range st.text {
				p.sendText(t, f)
			}
			if st.binary != nil {
				p.sendBinary(t, st.binary)
			}
			want := st.expect
			if d, ok := allowed[st.name]; ok {
				want = len([2][]string{d.rails, d.cablecar}[i])
			}
			return p.collect(want, 350*time.Millisecond, 5*time.Second)
		})
		steps = append(steps, conformanceStep{name: st.name, sent: sent, rails: rails, cablecar: cablecar, unordered: st.unordered})
	}

	// Ping cadence: wait for three pings on each side.
	rails, cablecar := both(func(i int) []string {
		p := peers[i]
		var extra []string
		for deadline := time.Now().Add(10 * time.Second); len(p.pings) < 3 && time.Now().Before(deadline); {
			extra = append(extra, p.collect(0, 500*time.Millisecond, 500*time.Millisecond)...)
		}
		return extra
	})
	steps = append(steps, conformanceStep{name: "idle until three pings", rails: rails, cablecar: cablecar})
	rails, cablecar = both(func(i int) []string {
		peers[i].sendClose(t)
		return peers[i].collect(1, 350*time.Millisecond, 5*time.Second)
	})
	steps = append(steps, conformanceStep{name: "close", sent: []string{"(close frame 1000)"}, rails: rails, cablecar: cablecar})

	compareSteps(t, steps, differencesFor(steps))
	comparePings(t, peers)
}

// comparePings checks both servers ping as Rails does: the same frame
// apart from the timestamp, the first within 3 s of the welcome, then every
// 3 s (the client sees 2.5–3.5 s, as measured against Rails 6.1 and 8.1).
func comparePings(t *testing.T, peers [2]*rawPeer) {
	var shapes [2][]string
	for i, p := range peers {
		name := serverNames[i]
		if len(p.pings) < 3 {
			t.Errorf("%s: %d pings in %v, want at least 3", name, len(p.pings), time.Since(p.opened).Round(time.Millisecond))
			continue
		}
		if first := p.pings[0].at.Sub(p.opened); first > 3500*time.Millisecond {
			t.Errorf("%s: first ping %v after the welcome, want at most 3 s", name, first)
		}
		var gaps []string
		for j, f := range p.pings {
			shapes[i] = append(shapes[i], normalizePing(t, name, f))
			if j > 0 {
				gap := f.at.Sub(p.pings[j-1].at)
				gaps = append(gaps, gap.Round(time.Millisecond).String())
				if gap < 2500*time.Millisecond || gap > 3500*time.Millisecond {
					t.Errorf("%s: %v between pings %d and %d, want 3 s ± 0.5 s", name, gap, j, j+1)
				}
			}
		}
		t.Logf("%s: first ping %v after open, then every %v", name, p.pings[0].at.Sub(p.opened).Round(time.Millisecond), gaps)
	}
	n := min(len(shapes[0]), len(shapes[1]))
	if !slices.Equal(shapes[0][:n], shapes[1][:n]) {
		t.Errorf("ping frames differ (timestamps set to 0):\n  rails:    %q\n  cablecar: %q", shapes[0], shapes[1])
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsTranscript renders the driver's events without timing and pings:
// sockets, frames each way, and what the client made of them.
func jsTranscript(events []jsclient.Event) []string {
	var out []string
	for _, e := range events {
		switch e.Event {
		case jsclient.KindWSOpen:
			out = append(out, fmt.Sprintf("socket %d open, protocol %s", e.Socket, e.Protocol))
		case jsclient.KindWSClose:
			out = append(out, fmt.Sprintf("socket %d closed, code %d %q clean=%v", e.Socket, e.Code, e.Reason, e.WasClean))
		case jsclient.KindFrameIn:
			if !isPing(e.Text()) {
				out = append(out, fmt.Sprintf("socket %d in  %s", e.Socket, e.Text()))
			}
		case jsclient.KindFrameOut:
			out = append(out, fmt.Sprintf("socket %d out %s", e.Socket, e.Text()))
		case jsclient.KindConnected:
			out = append(out, fmt.Sprintf("connected(%d) reconnected=%v", e.Index, e.Reconnected))
		case jsclient.KindRejected:
			out = append(out, fmt.Sprintf("rejected(%d)", e.Index))
		case jsclient.KindReceived:
			out = append(out, fmt.Sprintf("received(%d) %s", e.Index, e.Data))
		case jsclient.KindDisconnected:
			out = append(out, fmt.Sprintf("disconnected(%d) willAttemptReconnect=%v", e.Index, e.WillAttemptReconnect))
		case jsclient.KindError:
			out = append(out, "error "+e.Message)
		}
	}
	return out
}

// conformanceJSClient: the real @rails/actioncable client connects,
// subscribes to DocumentChannel 123 and receives one broadcast published
// once through the shared Redis (each client must get it exactly once).
func conformanceJSClient(t *testing.T, s conformanceServers) {
	opts := func(i int) jsclient.Options {
		return jsclient.Options{
			URL:           s.urls[i] + "?token=" + s.token,
			Origin:        conformanceOrigin,
			Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
			Duration:      10 * time.Second,
			ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 1},
		}
	}
	clients := [2]*jsclient.Client{jsclient.Start(t, opts(0)), jsclient.Start(t, opts(1))}
	for _, c := range clients {
		waitEvent(t, c, jsclient.KindConnected)
	}
	s.publish(t, 123, `{"status":"complete","progress":100}`)
	rails, cablecar := both(func(i int) []string { return jsTranscript(clients[i].Wait()) })
	compareSteps(t, []conformanceStep{{name: "JS client session", sent: []string{"subscribe DocumentChannel 123, PUBLISH once"}, rails: rails, cablecar: cablecar}}, nil)
	if n := strings.Count(strings.Join(rails, "\n"), "received(0)"); n != 1 {
		t.Errorf("Rails client received %d messages, want 1:\n%s", n, strings.Join(rails, "\n"))
	}
}

// conformanceJSUnauthorized: the real client without a token is refused
// the same way by both (disconnect unauthorized, close 1000, no retry).
func conformanceJSUnauthorized(t *testing.T, s conformanceServers) {
	rails, cablecar := both(func(i int) []string {
		return jsTranscript(jsclient.Run(t, jsclient.Options{
			URL:           s.urls[i],
			Origin:        conformanceOrigin,
			Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 123}},
			Duration:      2500 * time.Millisecond,
		}))
	})
	compareSteps(t, []conformanceStep{{name: "JS client without a token", sent: []string{"connect"}, rails: rails, cablecar: cablecar}}, nil)
}
