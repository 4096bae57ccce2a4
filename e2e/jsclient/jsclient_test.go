package jsclient_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/e2e/jsclient"
)

// cableServer speaks just enough Action Cable for the driver: welcome,
// confirm_subscription (reject_subscription for channel "RejectMe"), one
// {"hello":1} message per subscription, and an echo of every performed
// action's data. It records every frame it sends.
type cableServer struct {
	url string
	wg  sync.WaitGroup

	mu      sync.Mutex // guards following
	conns   []*serverConn
	origins []string
}

type serverConn struct {
	net.Conn
	mu   sync.Mutex // guards following; held for each whole frame
	sent []string
}

// send writes one text frame in a single Write and records it.
func (c *serverConn) send(text string) error {
	b, err := ws.CompileFrame(ws.NewTextFrame([]byte(text)))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, text)
	_, err = c.Conn.Write(b)
	return err
}

func (c *serverConn) sendControl(f ws.Frame) {
	b := ws.MustCompileFrame(f)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.Conn.Write(b)
}

func (c *serverConn) frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

func newCableServer(t *testing.T) *cableServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &cableServer{url: "ws://" + ln.Addr().String() + "/cable?token=abc"}
	srv := &http.Server{Handler: s}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *cableServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "actioncable-v1-json" }}
	conn, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		return
	}
	c := &serverConn{Conn: conn}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.origins = append(s.origins, r.Header.Get("Origin"))
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer conn.Close()

	if c.send(`{"type":"welcome"}`) != nil {
		return
	}
	for {
		f, err := ws.ReadFrame(rw.Reader)
		if err != nil {
			return
		}
		f = ws.UnmaskFrameInPlace(f)
		switch f.Header.OpCode {
		case ws.OpPing:
			c.sendControl(ws.NewPongFrame(f.Payload))
		case ws.OpClose:
			c.sendControl(ws.NewCloseFrame(f.Payload))
			return
		case ws.OpText:
			if err := handleCommand(c, f.Payload); err != nil {
				return
			}
		}
	}
}

func handleCommand(c *serverConn, payload []byte) error {
	var cmd struct {
		Command    string `json:"command"`
		Identifier string `json:"identifier"`
		Data       string `json:"data"`
	}
	if json.Unmarshal(payload, &cmd) != nil {
		return nil
	}
	id, _ := json.Marshal(cmd.Identifier)
	switch cmd.Command {
	case "subscribe":
		if strings.Contains(cmd.Identifier, `"RejectMe"`) {
			return c.send(fmt.Sprintf(`{"identifier":%s,"type":"reject_subscription"}`, id))
		}
		if err := c.send(fmt.Sprintf(`{"identifier":%s,"type":"confirm_subscription"}`, id)); err != nil {
			return err
		}
		return c.send(fmt.Sprintf(`{"identifier":%s,"message":{"hello":1}}`, id))
	case "message":
		return c.send(fmt.Sprintf(`{"identifier":%s,"message":%s}`, id, cmd.Data))
	}
	return nil
}

func (s *cableServer) conn(t *testing.T, i int) *serverConn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.conns) {
		t.Fatalf("server saw %d connections, want more than %d", len(s.conns), i)
	}
	return s.conns[i]
}

func jsonEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w bytes.Buffer
	if err := json.Compact(&g, got); err != nil {
		t.Fatalf("data %q: %v", got, err)
	}
	if err := json.Compact(&w, []byte(want)); err != nil {
		t.Fatal(err)
	}
	if g.String() != w.String() {
		t.Errorf("data = %s, want %s", g.String(), w.String())
	}
}

func noErrors(t *testing.T, events []jsclient.Event) {
	t.Helper()
	for _, e := range jsclient.Filter(events, jsclient.KindError) {
		t.Errorf("driver error: %s", e.Message)
	}
}

func TestRunSubscribesReceivesAndPerforms(t *testing.T) {
	s := newCableServer(t)
	events := jsclient.Run(t, jsclient.Options{
		URL:           s.url,
		Subscriptions: []map[string]any{{"channel": "TestChannel", "room": "lobby"}},
		Duration:      10 * time.Second,
		Origin:        "http://app.test",
		Perform:       &jsclient.Perform{Index: 0, Action: "speak", Data: map[string]any{"body": "hi"}},
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 2},
	})
	noErrors(t, events)
	const identifier = `{"channel":"TestChannel","room":"lobby"}`

	open, ok := jsclient.First(events, jsclient.KindWSOpen)
	if !ok || open.Protocol != "actioncable-v1-json" {
		t.Errorf("ws_open = %+v, %v; want protocol actioncable-v1-json", open, ok)
	}
	if got := s.origins; len(got) != 1 || got[0] != "http://app.test" {
		t.Errorf("server saw Origin %q, want [http://app.test]", got)
	}

	// Every frame the server sent arrived, byte for byte and in order.
	if got, want := jsclient.FramesIn(events), s.conn(t, 0).frames(); !slices.Equal(got, want) {
		t.Errorf("frame_in =\n%q\nserver sent\n%q", got, want)
	}
	var sentByClient []string
	for _, e := range jsclient.Filter(events, jsclient.KindFrameOut) {
		sentByClient = append(sentByClient, e.Text())
	}
	wantSubscribe := `{"command":"subscribe","identifier":"{\"channel\":\"TestChannel\",\"room\":\"lobby\"}"}`
	wantPerform := `{"command":"message","identifier":"{\"channel\":\"TestChannel\",\"room\":\"lobby\"}","data":"{\"body\":\"hi\",\"action\":\"speak\"}"}`
	if len(sentByClient) < 2 || sentByClient[0] != wantSubscribe || sentByClient[1] != wantPerform {
		t.Errorf("frame_out = %q\nwant %q then %q", sentByClient, wantSubscribe, wantPerform)
	}

	connected, ok := jsclient.First(events, jsclient.KindConnected)
	if !ok || connected.Index != 0 || connected.Identifier != identifier || connected.Reconnected {
		t.Errorf("connected = %+v, %v", connected, ok)
	}
	received := jsclient.Filter(events, jsclient.KindReceived)
	if len(received) != 2 {
		t.Fatalf("got %d received events, want 2: %+v", len(received), received)
	}
	for _, r := range received {
		if r.Index != 0 || r.Identifier != identifier {
			t.Errorf("received = %+v, want index 0 and identifier %s", r, identifier)
		}
	}
	jsonEqual(t, received[0].Data, `{"hello":1}`)
	jsonEqual(t, received[1].Data, `{"body":"hi","action":"speak"}`)

	last := events[len(events)-1]
	if last.Event != jsclient.KindDone || last.Reason != "exit_after" {
		t.Errorf("last event = %+v, want done with reason exit_after", last)
	}
}

func TestRunRejectedAndDisconnected(t *testing.T) {
	s := newCableServer(t)
	events := jsclient.Run(t, jsclient.Options{
		URL: s.url,
		// Raw, so the second identifier keeps its unsorted key order.
		RawSubscriptions: []json.RawMessage{
			json.RawMessage(`{"channel":"RejectMe"}`),
			json.RawMessage(`{"room":"lobby","channel":"TestChannel"}`),
		},
		Duration: 700 * time.Millisecond,
	})
	noErrors(t, events)

	rejected := jsclient.Filter(events, jsclient.KindRejected)
	if len(rejected) != 1 || rejected[0].Index != 0 || rejected[0].Identifier != `{"channel":"RejectMe"}` {
		t.Errorf("rejected = %+v, want one for index 0", rejected)
	}
	connected := jsclient.Filter(events, jsclient.KindConnected)
	if len(connected) != 1 || connected[0].Index != 1 || connected[0].Identifier != `{"room":"lobby","channel":"TestChannel"}` {
		t.Errorf("connected = %+v, want one for index 1 with the keys in the order given", connected)
	}
	// consumer.disconnect() at the end: the confirmed subscription hears
	// about it, and the client will not come back.
	disconnected := jsclient.Filter(events, jsclient.KindDisconnected)
	if len(disconnected) != 1 || disconnected[0].Index != 1 || disconnected[0].WillAttemptReconnect {
		t.Errorf("disconnected = %+v, want one for index 1 without reconnect", disconnected)
	}
	closed, ok := jsclient.First(events, jsclient.KindWSClose)
	if !ok || !closed.WasClean || closed.Socket != 1 {
		t.Errorf("ws_close = %+v, %v; want a clean close of socket 1", closed, ok)
	}
	if last := events[len(events)-1]; last.Event != jsclient.KindDone || last.Reason != "duration" {
		t.Errorf("last event = %+v, want done with reason duration", last)
	}
}

func TestStartStreamsEvents(t *testing.T) {
	s := newCableServer(t)
	c := jsclient.Start(t, jsclient.Options{
		URL:           s.url,
		Subscriptions: []map[string]any{{"channel": "TestChannel"}},
		Duration:      10 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 2},
	})
	connected, ok := c.WaitFor(jsclient.KindConnected, 5*time.Second)
	if !ok {
		t.Fatalf("no connected event; events so far: %+v", c.Snapshot())
	}
	id, _ := json.Marshal(connected.Identifier)
	if err := s.conn(t, 0).send(fmt.Sprintf(`{"identifier":%s,"message":"pushed"}`, id)); err != nil {
		t.Fatal(err)
	}

	var kinds []string
	for e := range c.Events() {
		kinds = append(kinds, e.Event)
		if e.Event == jsclient.KindReceived && string(e.Data) == `"pushed"` {
			if e.Identifier != connected.Identifier {
				t.Errorf("received for %q, want %q", e.Identifier, connected.Identifier)
			}
		}
	}
	if kinds[len(kinds)-1] != jsclient.KindDone {
		t.Errorf("stream ended with %q, want done; kinds: %v", kinds[len(kinds)-1], kinds)
	}
	events := c.Wait()
	noErrors(t, events)
	if len(events) != len(kinds) {
		t.Errorf("Wait returned %d events, the stream carried %d", len(events), len(kinds))
	}
	received := jsclient.Filter(events, jsclient.KindReceived)
	if len(received) != 2 || string(received[1].Data) != `"pushed"` {
		t.Errorf("received = %+v, want hello then \"pushed\"", received)
	}
	if _, ok := c.WaitFor("no_such_event", time.Second); ok {
		t.Error("WaitFor found an event kind the driver never prints")
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartFailsWithoutNodeModules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CABLECAR_E2E_JS", dir)
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		jsclient.Start(rec, jsclient.Options{URL: "ws://127.0.0.1:1/cable"})
		t.Error("Start returned without failing")
	}()
	<-done
	if !strings.Contains(rec.msg, "run: npm ci --prefix e2e/js") {
		t.Errorf("Fatalf message = %q, want it to say how to install", rec.msg)
	}
}
