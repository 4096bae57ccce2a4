package perform_test

import (
	"bytes"
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
	"github.com/gobwas/ws/wsutil"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/adapters/perform"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/servetest"
	"github.com/cablecar/cablecar/proxy"
)

// serveWith runs a real cablecar server (in-memory broker, anonymous
// clients, ChatChannel) that forwards performs to p, and returns a client
// subscribed to lobby.
func serveWith(t *testing.T, p proxy.Performer) (*proxy.Server, *wsConn, *logbuf.Buffer) {
	t.Helper()
	a, err := auth.New(auth.Config{AllowAnonymous: true, Routes: "public:ChatChannel=chat:{params.room}"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{Limit: 1 << 20}
	srv, err := proxy.New(proxy.Config{}, memory.New(), a, a, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetPerformer(p, proxy.PerformOptions{})
	addr, _ := servetest.Serve(t, srv)
	c, br, _, err := ws.Dialer{Protocols: []string{"actioncable-v1-json"}, Timeout: 5 * time.Second}.Dial(context.Background(), "ws://"+addr+"/cable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	nc := &wsConn{Conn: c, r: c}
	if br != nil { // frames that came with the handshake's response
		nc.r = io.MultiReader(br, c)
	}
	send(t, nc, map[string]string{"command": "subscribe", "identifier": lobby})
	for _, want := range []string{`{"type":"welcome"}`, `{"identifier":"{\"channel\":\"ChatChannel\",\"room\":\"lobby\"}","type":"confirm_subscription"}`} {
		if got := readText(t, nc); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	return srv, nc, logs
}

// wsConn reads what the dialer buffered first.
type wsConn struct {
	net.Conn
	r io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) { return c.r.Read(p) }

const lobby = `{"channel":"ChatChannel","room":"lobby"}`

func send(t *testing.T, nc *wsConn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := wsutil.WriteClientText(nc, b); err != nil {
		t.Fatal(err)
	}
}

// readText returns the next text frame other than a ping.
func readText(t *testing.T, nc *wsConn) string {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		b, err := wsutil.ReadServerText(nc)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.HasPrefix(b, []byte(`{"type":"ping"`)) {
			return string(b)
		}
	}
}

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

// Through a real server: a hook that answers in time counts as forwarded;
// one that times out, or answers 500, counts as failed, logged at warn
// once per cause.
func TestHTTPHookThroughServerCounts(t *testing.T) {
	slow := startHook(t, http.StatusOK, 5*time.Second)
	srv, nc, logs := serveWith(t, perform.NewHTTPHook(slow.URL, "k", 100*time.Millisecond))
	for range 2 {
		send(t, nc, map[string]string{"command": "message", "identifier": lobby, "data": `{"action":"speak"}`})
	}
	st := srv.PerformStats()
	waitFor(t, "2 failures", func() bool { return st.Failed.Load() == 2 })
	if st.Forwarded.Load() != 0 || st.DroppedFull.Load() != 0 || st.Invalid.Load() != 0 || st.Ignored.Load() != 0 {
		t.Errorf("other counts: forwarded %d dropped_full %d invalid %d ignored %d, want 0", st.Forwarded.Load(), st.DroppedFull.Load(), st.Invalid.Load(), st.Ignored.Load())
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"client action not forwarded"); n != 1 || !strings.Contains(out, "cause=timeout") {
		t.Errorf("%d warn lines, want 1 with cause=timeout:\n%s", n, out)
	}
	send(t, nc, map[string]string{"command": "subscribe", "identifier": `{"channel":"ChatChannel","room":"b"}`})
	if got := readText(t, nc); !strings.Contains(got, "confirm_subscription") { // the reader never waited on the hook
		t.Errorf("got %s, want confirm", got)
	}

	ok := startHook(t, http.StatusAccepted, 0)
	srv2, nc2, _ := serveWith(t, perform.NewHTTPHook(ok.URL, "", 0))
	send(t, nc2, map[string]string{"command": "message", "identifier": lobby, "data": `{"action":"speak","x":1}`})
	waitFor(t, "forwarded", func() bool { return srv2.PerformStats().Forwarded.Load() == 1 })
	if bodies, _ := ok.requests(); len(bodies) != 1 || !strings.Contains(string(bodies[0]), `"data":{"action":"speak","x":1}`) {
		t.Errorf("hook got %q", bodies)
	}
}
