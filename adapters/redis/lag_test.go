package redis

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestBacklogIsNotAWedge makes the hub slow (5 ms per message, as under a
// saturated CPU) while 600 messages arrive at once: the probe then waits
// behind three seconds of backlog, longer than the probe timeout. The
// connection is delivering, only late, so it must not be replaced (which
// would drop the backlog); every message arrives, in order, and Health
// stays nil.
func TestBacklogIsNotAWedge(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, logs := newBroker(t, srv.URL, prefix)

	var mu sync.Mutex
	var got []string
	active := make(chan struct{}, 1)
	deliver := func(_ string, payload []byte) {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		got = append(got, string(payload))
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Run(ctx, deliver, func(string) {
			select {
			case active <- struct{}{}:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	b.Subscribe("s")
	<-active
	waitHealthy(t, b)

	const n = 600
	pipe := c.Pipeline()
	for i := range n {
		pipe.Publish(context.Background(), prefix+":s", strconv.Itoa(i))
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	var unhealthy error
	brokertest.WaitFor(t, 30*time.Second, "every message", func() bool {
		if err := b.Health(context.Background()); err != nil && unhealthy == nil {
			unhealthy = err
		}
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	mu.Lock()
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, p)
		}
	}
	mu.Unlock()
	if s := b.Stats(); s.Disconnects != 0 || s.ProbeTimeouts != 0 {
		t.Errorf("Stats = %+v: the lagging connection was replaced", s)
	}
	if unhealthy != nil {
		t.Errorf("Health reported %v while the connection was delivering its backlog", unhealthy)
	}
	if n := logs.Count("redis subscriber lagging"); n != 1 {
		t.Errorf("%d 'lagging' log lines, want 1", n)
	}
}
