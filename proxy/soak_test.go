package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// soakSize reads the soak's scale from the environment; CI runs the short
// default. The documented long run:
//
//	CABLECAR_SOAK=10m CABLECAR_SOAK_CLIENTS=2000 CABLECAR_SOAK_CHURNERS=200 \
//	  go test -run TestSoak -timeout 30m -v ./proxy/
func soakSize(t *testing.T) (churn time.Duration, stable, churners int) {
	churn, stable, churners = 2*time.Second, 40, 10
	if v := os.Getenv("CABLECAR_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CABLECAR_SOAK: %v", err)
		}
		churn = d
	}
	for name, p := range map[string]*int{"CABLECAR_SOAK_CLIENTS": &stable, "CABLECAR_SOAK_CHURNERS": &churners} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			*p = n
		}
	}
	return churn, stable, churners
}

// A soak: stable subscribers on a few streams while other clients connect,
// subscribe to short-lived streams and vanish, and Redis is killed and
// restarted in the middle. Every message published while Redis was up
// reaches every stable subscriber; afterwards no churn stream is left
// subscribed in Redis or the hub, and goroutines and heap are back to
// where they were.
func TestSoak(t *testing.T) {
	churn, nStable, nChurn := soakSize(t)
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	ts := startRedisServer(t, rs, prefix)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	const streams = 5
	stableID := func(i int) string { return fmt.Sprintf(`{"channel":"ChatChannel","room":"stable-%d"}`, i%streams) }

	// Stable subscribers count what they get per stream.
	type counter struct{ n atomic.Int64 }
	got := make([]counter, nStable)
	var readers sync.WaitGroup
	stableClients := make([]*client, nStable)
	for i := range stableClients {
		c := welcomed(t, ts.url(""))
		c.command("subscribe", stableID(i))
		if f := c.nextText(); f != confirmFrame(stableID(i)) {
			t.Fatalf("stable %d: %s", i, f)
		}
		stableClients[i] = c
		readers.Add(1)
		go func(i int, c *client) {
			defer readers.Done()
			for {
				f, err := c.read(time.Minute)
				if err != nil {
					return
				}
				if strings.HasPrefix(string(f.payload), `{"identifier":`) && strings.Contains(string(f.payload), `,"message":`) {
					got[i].n.Add(1)
				}
			}
		}(i, c)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	// Churners: connect, subscribe to a short-lived stream, leave (cleanly
	// or by dropping the socket), again and again.
	stop := make(chan struct{})
	var churners sync.WaitGroup
	var cycles atomic.Int64
	for w := 0; w < nChurn; w++ {
		churners.Add(1)
		go func() {
			defer churners.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := dialQuiet(ts.url(""))
				if c == nil {
					continue
				}
				id := fmt.Sprintf(`{"channel":"ChatChannel","room":"churn-%d"}`, rand.IntN(200))
				quietCommand(c, "subscribe", id)
				if rand.IntN(2) == 0 {
					quietCommand(c, "unsubscribe", id)
				}
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				c.nc.Close()
				cycles.Add(1)
			}
		}()
	}
	publish := func(round, n int) {
		for k := 0; k < n; k++ {
			for s := 0; s < streams; s++ {
				if err := rdb.Publish(ctx, fmt.Sprintf("%s:chat:stable-%d", prefix, s), fmt.Sprintf(`{"r":%d,"k":%d}`, round, k)).Err(); err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
		}
	}
	wantPer := func(perStream int) func() bool {
		return func() bool {
			for i := range got {
				if got[i].n.Load() < int64(perStream) {
					return false
				}
			}
			return true
		}
	}
	const perRound = 50
	time.Sleep(churn / 2)
	publish(1, perRound)
	waitFor(t, "round 1 delivered to every stable subscriber", wantPer(perRound))

	rs.Kill() // Redis gone mid-churn
	waitFor(t, "health down", func() bool { return ts.broker.Health(ctx) != nil })
	rs.Restart(t)
	waitFor(t, "health up", func() bool { return ts.broker.Health(ctx) == nil })
	waitFor(t, "stable streams resubscribed", func() bool {
		for s := 0; s < streams; s++ {
			ch := fmt.Sprintf("%s:chat:stable-%d", prefix, s)
			n, _ := rdb.PubSubNumSub(ctx, ch).Result()
			if n[ch] != 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(churn / 2)
	publish(2, perRound)
	waitFor(t, "round 2 delivered to every stable subscriber", wantPer(2*perRound))
	close(stop)
	churners.Wait()
	t.Logf("%d churn cycles in %v with %d stable subscribers", cycles.Load(), churn, nStable)

	waitFor(t, "only the stable streams left in the hub", func() bool { return ts.StreamCount() == streams })
	waitFor(t, "no churn stream left subscribed in Redis", func() bool {
		chans, _ := rdb.PubSubChannels(ctx, prefix+":chat:churn-*").Result()
		return len(chans) == 0
	})
	waitFor(t, "goroutines back", func() bool { return runtime.NumGoroutine() <= goroutinesBefore+5 })
	for i := range got {
		if n := got[i].n.Load(); n != 2*perRound {
			t.Errorf("stable %d got %d messages, want exactly %d", i, n, 2*perRound)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap in use %d KB before churn, %d KB after", before.HeapInuse>>10, after.HeapInuse>>10)
	if after.HeapInuse > 2*before.HeapInuse+8<<20 {
		t.Errorf("heap grew from %d to %d bytes over the soak", before.HeapInuse, after.HeapInuse)
	}
	for _, c := range stableClients {
		c.nc.Close()
	}
	readers.Wait()
}

// quietCommand sends a command, ignoring errors (the churner may be cut off).
func quietCommand(c *client, cmd, identifier string) {
	b, _ := json.Marshal(map[string]string{"command": cmd, "identifier": identifier})
	_ = ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewTextFrame(b)))
}
