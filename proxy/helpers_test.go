package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/servetest"
	"github.com/cablecar/cablecar/proxy"
)

// testServer is a real cablecar server on a loopback port.
type testServer struct {
	*proxy.Server
	addr   string
	broker proxy.Broker
	logs   *logbuf.Buffer
	stop   func() error // drains and returns Serve's result
}

// maxLogBytes caps what a test keeps of the server log, so long runs (the
// soak) measure the server's memory, not the log's.
const maxLogBytes = 4 << 20

// startServer runs a server with the in-memory broker unless broker is
// given. Anonymous connections are allowed unless acfg says otherwise.
// setup, if any, runs on the server before it serves.
func startServer(t *testing.T, cfg proxy.Config, acfg auth.Config, broker proxy.Broker, setup ...func(*proxy.Server, *auth.Auth)) *testServer {
	t.Helper()
	if broker == nil {
		broker = memory.New()
	}
	a, err := auth.New(acfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	logs := &logbuf.Buffer{Limit: maxLogBytes}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := proxy.New(cfg, broker, a, a, log)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	for _, f := range setup {
		f(srv, a)
	}
	t.Cleanup(func() { // registered first, so it runs after Serve has stopped
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	addr, stop := servetest.Serve(t, srv)
	ts := &testServer{Server: srv, addr: addr, broker: broker, logs: logs, stop: stop}
	waitFor(t, "broker healthy", func() bool { return broker.Health(context.Background()) == nil })
	return ts
}

func (ts *testServer) url(query string) string {
	u := "ws://" + ts.addr + "/cable"
	if query != "" {
		u += "?" + query
	}
	return u
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client is a raw WebSocket client that sees every frame byte for byte.
type client struct {
	t        *testing.T
	nc       net.Conn
	r        io.Reader // nc, after any bytes the dialer had buffered
	protocol string
}

type frame struct {
	op      ws.OpCode
	payload []byte
}

func dial(t *testing.T, url string, header http.Header) *client {
	t.Helper()
	return dialWith(t, ws.Dialer{Header: ws.HandshakeHeaderHTTP(header)}, url)
}

// handshake speaks the WebSocket handshake over an existing connection.
func handshake(t *testing.T, nc net.Conn, url string) *client {
	t.Helper()
	return dialWith(t, ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}, url)
}

func dialWith(t *testing.T, d ws.Dialer, url string) *client {
	t.Helper()
	d.Protocols = []string{"actioncable-v1-json", "actioncable-unsupported"}
	d.Timeout = 5 * time.Second
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { nc.Close() })
	var r io.Reader = nc
	if br != nil { // frames that arrived with the handshake response
		r = io.MultiReader(br, nc)
	}
	return &client{t: t, nc: nc, r: r, protocol: hs.Protocol}
}

// dialQuiet connects without failing the test (for load loops); nil when
// the dial fails.
func dialQuiet(url string) *client {
	d := ws.Dialer{Protocols: []string{"actioncable-v1-json"}, Timeout: 5 * time.Second}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil
	}
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	return &client{t: nil, nc: nc, r: r}
}

// next reads one frame within 5 s.
func (c *client) next() frame {
	c.t.Helper()
	f, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (c *client) read(timeout time.Duration) (frame, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return frame{}, err
	}
	if h.Masked {
		c.t.Errorf("server sent a masked frame")
	}
	return frame{op: h.OpCode, payload: p}, nil
}

// nextText skips pings and returns the next other text frame.
func (c *client) nextText() string {
	c.t.Helper()
	for {
		f := c.next()
		if f.op != ws.OpText {
			c.t.Fatalf("got opcode %v (% x), want a text frame", f.op, f.payload)
		}
		if !bytes.HasPrefix(f.payload, []byte(`{"type":"ping"`)) {
			return string(f.payload)
		}
	}
}

// expectNothing checks that only pings arrive for d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		f, err := c.read(time.Until(end))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			c.t.Fatalf("read: %v", err)
		}
		if !bytes.HasPrefix(f.payload, []byte(`{"type":"ping"`)) {
			c.t.Fatalf("unexpected frame %v %s", f.op, f.payload)
		}
	}
}

func (c *client) sendFrame(op ws.OpCode, p []byte) {
	c.t.Helper()
	if err := ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewFrame(op, true, p))); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) sendText(s string) { c.t.Helper(); c.sendFrame(ws.OpText, []byte(s)) }

func (c *client) command(cmd, identifier string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"command": cmd, "identifier": identifier})
	c.sendText(string(b))
}

// welcomed dials and consumes the welcome frame.
func welcomed(t *testing.T, url string) *client {
	t.Helper()
	c := dial(t, url, nil)
	if got := c.nextText(); got != `{"type":"welcome"}` {
		t.Fatalf("first frame %s, want welcome", got)
	}
	return c
}

func confirmFrame(identifier string) string {
	q, _ := json.Marshal(identifier)
	return `{"identifier":` + string(q) + `,"type":"confirm_subscription"}`
}

func rejectFrame(identifier string) string {
	q, _ := json.Marshal(identifier)
	return `{"identifier":` + string(q) + `,"type":"reject_subscription"}`
}

func messageFrame(identifier, payload string) string {
	q, _ := json.Marshal(identifier)
	return `{"identifier":` + string(q) + `,"message":` + payload + `}`
}

// noErrorLogs fails when the server logged at error level.
func noErrorLogs(t *testing.T, ts *testServer) {
	t.Helper()
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("error-level log line: %s", line)
		}
	}
}
