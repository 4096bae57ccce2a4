package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/proxy"
)

// A frame that arrives in pieces, with pauses between them, is put back
// together across readiness events, and a ping split across reads is
// answered once whole.
func TestFrameSplitAcrossReads(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	q, _ := json.Marshal(lobby)
	sub := []byte(`{"command":"subscribe","identifier":` + string(q) + `}`)
	var raw []byte
	for _, f := range []ws.Frame{ws.NewPingFrame([]byte("hi")), ws.NewFrame(ws.OpText, false, sub[:10]), ws.NewFrame(ws.OpContinuation, true, sub[10:])} {
		b, err := ws.CompileFrame(ws.MaskFrame(f))
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	for i := 0; i < len(raw); i += 5 {
		if _, err := c.nc.Write(raw[i:min(i+5, len(raw))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if f := c.next(); f.op != ws.OpPong || string(f.payload) != "hi" {
		t.Fatalf("got %v %q, want the pong", f.op, f.payload)
	}
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s", got)
	}
}

// Pings keep reaching an idle connection long after the write deadline
// the last write set has passed, and the connection stays open.
func TestPingsOutliveWriteDeadline(t *testing.T) {
	ts := startServer(t, proxy.Config{PingInterval: 150 * time.Millisecond, WriteTimeout: 50 * time.Millisecond}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	for i := 0; i < 5; i++ {
		if f := c.next(); f.op != ws.OpText || !strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
			t.Fatalf("got %v %s, want a ping", f.op, f.payload)
		}
	}
	if n := ts.Stats().ConnsOpen.Load(); n != 1 {
		t.Errorf("%d connections open, want 1", n)
	}
}

// Broadcasts on a quiet stream are written at once by the fan-out, and
// still reach a subscriber long after the write deadline its last write
// set has passed; a burst on the same stream arrives whole and in order.
func TestQuietAndBusyBroadcastsOutliveWriteDeadline(t *testing.T) {
	ts := startServer(t, proxy.Config{PingInterval: time.Hour, WriteTimeout: 50 * time.Millisecond}, anonymous(), nil)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s", got)
	}
	for i := range 3 {
		time.Sleep(120 * time.Millisecond) // the last deadline has passed
		p := fmt.Sprintf(`{"quiet":%d}`, i)
		if err := ts.broker.Publish(context.Background(), "chat:lobby", []byte(p)); err != nil {
			t.Fatal(err)
		}
		if got := c.nextText(); got != messageFrame(lobby, p) {
			t.Fatalf("quiet broadcast %d: got %s", i, got)
		}
	}
	for i := range 200 {
		if err := ts.broker.Publish(context.Background(), "chat:lobby", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if got := c.nextText(); got != messageFrame(lobby, fmt.Sprint(i)) {
			t.Fatalf("burst message %d: got %s", i, got)
		}
	}
	if n := ts.Stats().ConnsOpen.Load(); n != 1 {
		t.Errorf("%d connections open, want 1", n)
	}
}
