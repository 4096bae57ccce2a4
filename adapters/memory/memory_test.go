package memory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/history"
)

func TestContract(t *testing.T) {
	brokertest.Contract(t, func(testing.TB) brokertest.Broker { return New() }, 2*time.Second)
}

func TestPublishBeforeRunDrops(t *testing.T) {
	b := New()
	b.Subscribe("s")
	if err := b.Publish(context.Background(), "s", []byte("x")); err != nil {
		t.Fatalf("Publish before Run = %v, want nil", err)
	}
	if err := b.Health(context.Background()); err == nil || err.Error() != "memory broker not running" {
		t.Errorf("Health before Run = %v", err)
	}
}

func TestUnsubscribeStopsDeliveryAtOnce(t *testing.T) {
	b := New()
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, time.Second, "active", func() bool { return r.Actives("s") == 1 })
	_ = b.Publish(context.Background(), "s", []byte("1"))
	b.Unsubscribe("s")
	_ = b.Publish(context.Background(), "s", []byte("2"))
	if got := r.Messages("s"); len(got) != 1 || string(got[0]) != "1" {
		t.Errorf("messages = %q, want just \"1\"", got)
	}
}

// TestConcurrentPublishSerialised publishes from many goroutines; the
// recorder fails the test if two deliver calls ever overlap.
func TestConcurrentPublishSerialised(t *testing.T) {
	b := New()
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	brokertest.WaitFor(t, time.Second, "Run", func() bool { return b.Health(context.Background()) == nil })
	const streams, perStream = 8, 200
	for i := range streams {
		b.Subscribe(fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			for j := range perStream {
				_ = b.Publish(context.Background(), fmt.Sprint(i), []byte(fmt.Sprint(j)))
				if j%50 == 0 {
					b.Subscribe(fmt.Sprint(i)) // churn the active path too
				}
			}
		})
	}
	wg.Wait()
	for i := range streams {
		got := r.Messages(fmt.Sprint(i))
		if len(got) != perStream {
			t.Fatalf("stream %d: %d messages, want %d", i, len(got), perStream)
		}
		for j, m := range got {
			if string(m) != fmt.Sprint(j) {
				t.Fatalf("stream %d message %d = %q: out of order", i, j, m)
			}
		}
	}
}

func TestRunAgainAfterStop(t *testing.T) {
	brokertest.CheckGoroutines(t)
	b := New()
	b.Subscribe("s")
	r1 := brokertest.NewRecorder(t)
	stop := r1.Start(t, b)
	brokertest.WaitFor(t, time.Second, "active in first Run", func() bool { return r1.Actives("s") == 1 })
	stop()
	_ = b.Publish(context.Background(), "s", []byte("dropped"))
	if n := len(r1.Messages("s")); n != 0 {
		t.Errorf("deliver called %d times after Run returned", n)
	}
	r2 := brokertest.NewRecorder(t)
	stop = r2.Start(t, b)
	brokertest.WaitFor(t, time.Second, "active in second Run", func() bool { return r2.Actives("s") == 1 })
	stop()
}

// TestHistory: a recorded stream's messages are delivered as published on
// the stream and annotated on its internal stream, with offsets 1, 2, …;
// they are recorded whether or not anyone is subscribed.
func TestHistory(t *testing.T) {
	b := New()
	store := history.NewMemory(history.Rules{{Pattern: "doc:*", Size: 10, TTL: time.Minute}})
	b.SetHistory(store)
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	internal := history.InternalPrefix + "doc:1"
	_ = b.Publish(context.Background(), "doc:1", []byte(`"before"`)) // no subscriber: recorded all the same
	b.Subscribe("doc:1")
	b.Subscribe(internal)
	brokertest.WaitFor(t, time.Second, "active", func() bool { return r.Actives(internal) == 1 })
	_ = b.Publish(context.Background(), "doc:1", []byte(`{"a":1}`))
	_ = b.Publish(context.Background(), "chat:1", []byte(`{"a":2}`))
	if got := r.Messages("doc:1"); len(got) != 1 || string(got[0]) != `{"a":1}` {
		t.Errorf("plain messages = %q", got)
	}
	got := r.Messages(internal)
	if len(got) != 1 {
		t.Fatalf("annotated messages = %q, want one", got)
	}
	snap, _ := store.Snapshot(context.Background(), "doc:1")
	if want := "2 " + snap.Epoch + "\n" + `{"a":1}`; string(got[0]) != want {
		t.Errorf("annotated = %q, want %q", got[0], want)
	}
	if snap.Last != 2 || string(snap.Entries[0].Data) != `"before"` {
		t.Errorf("snapshot = %+v", snap)
	}
	if s, _ := store.Snapshot(context.Background(), "chat:1"); s.Epoch != "" {
		t.Errorf("chat:1 recorded: %+v", s)
	}
}
