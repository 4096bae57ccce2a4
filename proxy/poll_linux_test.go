//go:build !cablecar_nopoll

package proxy_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/proxy"
)

// On Linux an idle connection waits in the poller: subscribed connections
// cost no goroutine each, and every one of them is still read when it
// speaks.
func TestIdleConnectionsHaveNoGoroutine(t *testing.T) {
	// No heartbeat: a ping (every 375 ms for some connection, by default)
	// would come where the test reads the close frame.
	ts := startServer(t, proxy.Config{PingInterval: time.Hour}, anonymous(), nil)
	const n = 100
	clients := make([]*client, n)
	clients[0] = welcomed(t, ts.url(""))
	waitFor(t, "one connection", func() bool { return ts.Stats().ConnsOpen.Load() == 1 })
	base := settledGoroutines()
	for i := 1; i < n; i++ {
		clients[i] = welcomed(t, ts.url(""))
	}
	for _, c := range clients {
		c.command("subscribe", lobby)
	}
	for _, c := range clients {
		if got := c.nextText(); got != confirmFrame(lobby) {
			t.Fatalf("got %s", got)
		}
	}
	// Up to two readers per core wait a moment for more work (poller.read).
	if grown := settledGoroutines() - base; grown > n/10+2*runtime.GOMAXPROCS(0) {
		t.Errorf("%d more goroutines for %d more idle connections, want about none", grown, n-1)
	}
	for _, c := range clients {
		c.sendFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	}
	for _, c := range clients {
		f := c.next()
		for f.op == ws.OpText && strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
			f = c.next() // a ping queued before the close was read
		}
		if f.op != ws.OpClose {
			t.Fatalf("got %v %s, want the close frame", f.op, f.payload)
		}
	}
	waitFor(t, "every connection released", func() bool { return ts.Stats().ConnsOpen.Load() == 0 })
}

// settledGoroutines counts goroutines once short-lived ones (flushers,
// command runners) had time to end.
func settledGoroutines() int {
	time.Sleep(100 * time.Millisecond)
	return runtime.NumGoroutine()
}
