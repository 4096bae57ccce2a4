package proxy_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/proxy"
)

// The server ends connections (too_slow, under a flood of broadcasts they
// do not read) while their readers are busy with a stream of subscribe and
// unsubscribe commands. Whoever closes a socket and whichever reader holds
// it, every connection is released exactly once: none stays open, no
// stream stays subscribed, no goroutine is left behind, and the race
// detector sees nothing.
func TestServerEndsConnectionsMidCommand(t *testing.T) {
	ts := startServer(t, proxy.Config{MaxPendingBytes: 8 << 10, MaxCommandRate: 1000, MaxSubscriptions: 64}, anonymous(), nil)
	before := runtime.NumGoroutine()
	const clients = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range clients {
		c := welcomed(t, ts.url(""))
		c.nc.(*net.TCPConn).SetReadBuffer(4096) // never read: the flood fills it
		c.command("subscribe", lobby)
		wg.Go(func() {
			defer c.nc.Close()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				room := fmt.Sprintf(`{"channel":"ChatChannel","room":"c%d-%d"}`, i, k%8)
				cmd := "subscribe"
				if k%2 == 1 {
					cmd = "unsubscribe"
				}
				msg := fmt.Sprintf(`{"command":%q,"identifier":%q}`, cmd, room)
				if ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewTextFrame([]byte(msg)))) != nil {
					return // the server closed it
				}
			}
		})
	}
	big := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	deadline := time.Now().Add(20 * time.Second)
	for ts.Stats().ConnsOpen.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after the flood", ts.Stats().ConnsOpen.Load())
		}
		ts.broker.Publish(context.Background(), "chat:lobby", big)
	}
	close(stop)
	wg.Wait()
	waitFor(t, "no stream left in the hub", func() bool { return ts.StreamCount() == 0 })
	waitFor(t, "goroutines back", func() bool { return runtime.NumGoroutine() <= before+2 })
	if n := ts.Stats().DisconnectsSlow.Load(); n == 0 {
		t.Errorf("no connection was cut off as too_slow; the test did not exercise what it should")
	}
	noErrorLogs(t, ts)
}
