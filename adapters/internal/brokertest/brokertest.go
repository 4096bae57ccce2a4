// Package brokertest holds what the broker adapters' tests share: a
// recorder for the deliver and active callbacks, a polling WaitFor, and
// Contract, the behaviour every broker must show (run against both the
// in-memory and the Redis broker).
package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Broker is the method set of proxy.Broker, repeated here because the
// adapters must not import proxy.
type Broker interface {
	Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error
	Subscribe(stream string)
	Unsubscribe(stream string)
	Publish(ctx context.Context, stream string, payload []byte) error
	Health(ctx context.Context) error
}

// WaitFor polls cond every few milliseconds until it is true, and fails tb
// if that takes longer than timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Recorder collects what a broker hands to deliver and active. It fails the
// test if deliver is ever entered while another deliver call is running.
// Safe for concurrent use.
type Recorder struct {
	tb       testing.TB
	inside   atomic.Int32 // deliver calls running right now
	mu       sync.Mutex   // guards following
	messages map[string][][]byte
	actives  map[string]int
}

// NewRecorder returns an empty Recorder reporting to tb.
func NewRecorder(tb testing.TB) *Recorder {
	return &Recorder{tb: tb, messages: map[string][][]byte{}, actives: map[string]int{}}
}

// Deliver is the deliver callback. It copies payload, which is only valid
// during the call.
func (r *Recorder) Deliver(stream string, payload []byte) {
	if r.inside.Add(1) != 1 {
		r.tb.Errorf("deliver(%q) called while another deliver call was running", stream)
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	r.messages[stream] = append(r.messages[stream], bytes.Clone(payload))
	r.mu.Unlock()
}

// Active is the active callback.
func (r *Recorder) Active(stream string) {
	r.mu.Lock()
	r.actives[stream]++
	r.mu.Unlock()
}

// Messages returns copies of the payloads delivered for stream, in order.
func (r *Recorder) Messages(stream string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.messages[stream]...)
}

// Streams returns every stream deliver was called for.
func (r *Recorder) Streams() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s := range r.messages {
		out = append(out, s)
	}
	return out
}

// Actives returns how many times active was called for stream.
func (r *Recorder) Actives(stream string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.actives[stream]
}

// Start runs b with r's callbacks until the test ends, and returns a
// function that cancels Run and waits for it to return (it fails the test
// if Run returned an error or took more than 10 s). Calling it is optional;
// it runs at cleanup otherwise.
func (r *Recorder) Start(tb testing.TB, b Broker) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, r.Deliver, r.Active) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run returned %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				tb.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// WaitMessage waits until stream has at least n messages and returns the
// n-th (1-based).
func (r *Recorder) WaitMessage(tb testing.TB, stream string, n int, timeout time.Duration) []byte {
	tb.Helper()
	var got [][]byte
	WaitFor(tb, timeout, fmt.Sprintf("message #%d on %q", n, stream), func() bool {
		got = r.Messages(stream)
		return len(got) >= n
	})
	return got[n-1]
}

// CheckGoroutines records the goroutine count now and, at cleanup, waits
// (up to 5 s) for it to come back to that number. Call it before creating
// anything the test starts.
func CheckGoroutines(tb testing.TB) {
	tb.Helper()
	base := runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				tb.Errorf("goroutines: %d now, %d before the test:\n%s", runtime.NumGoroutine(), base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Factory makes a fresh broker for one subtest; anything it starts must be
// cleaned up through tb.
type Factory func(tb testing.TB) Broker

// Contract checks the behaviour proxy.Broker promises. settle is how long a
// subscription may take to become active (a few ms in memory, longer over
// Redis).
func Contract(t *testing.T, newBroker Factory, settle time.Duration) {
	t.Run("ActiveThenDeliver", func(t *testing.T) {
		b := newBroker(t)
		r := NewRecorder(t)
		r.Start(t, b)
		b.Subscribe("chat:room:lobby")
		WaitFor(t, settle, "active(chat:room:lobby)", func() bool { return r.Actives("chat:room:lobby") == 1 })
		payloads := [][]byte{
			[]byte(`{"status":"complete"}`),
			[]byte(`"\u003cturbo-stream action=\"remove\"\u003e\u003c/turbo-stream\u003e"`),
			{},
			{0, 0xff, '\r', '\n', 0x80}, // not UTF-8: bytes must pass untouched
		}
		for _, p := range payloads {
			if err := b.Publish(context.Background(), "chat:room:lobby", p); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
		for i, want := range payloads {
			if got := r.WaitMessage(t, "chat:room:lobby", i+1, settle); !bytes.Equal(got, want) {
				t.Errorf("message %d = %q, want %q", i, got, want)
			}
		}
	})

	t.Run("OnlyWantedStreams", func(t *testing.T) {
		b := newBroker(t)
		r := NewRecorder(t)
		r.Start(t, b)
		b.Subscribe("wanted")
		WaitFor(t, settle, "active(wanted)", func() bool { return r.Actives("wanted") == 1 })
		if err := b.Publish(context.Background(), "unwanted", []byte(`1`)); err != nil {
			t.Fatalf("Publish to a stream nobody wants: %v, want nil", err)
		}
		if err := b.Publish(context.Background(), "wanted", []byte(`2`)); err != nil {
			t.Fatal(err)
		}
		r.WaitMessage(t, "wanted", 1, settle)
		if got := r.Messages("unwanted"); len(got) != 0 {
			t.Errorf("delivered %q on a stream never subscribed", got)
		}
	})

	t.Run("ResubscribeIsActiveAgain", func(t *testing.T) {
		// Unsubscribe then Subscribe again before the broker did anything
		// about the Unsubscribe: the second Subscribe needs its own active.
		b := newBroker(t)
		r := NewRecorder(t)
		r.Start(t, b)
		b.Subscribe("s")
		WaitFor(t, settle, "first active", func() bool { return r.Actives("s") == 1 })
		b.Unsubscribe("s")
		b.Subscribe("s")
		WaitFor(t, settle, "second active", func() bool { return r.Actives("s") == 2 })
		if err := b.Publish(context.Background(), "s", []byte(`"again"`)); err != nil {
			t.Fatal(err)
		}
		if got := r.WaitMessage(t, "s", 1, settle); string(got) != `"again"` {
			t.Errorf("got %q", got)
		}
	})

	t.Run("SubscribeBeforeRun", func(t *testing.T) {
		b := newBroker(t)
		b.Subscribe("early")
		b.Subscribe("gone")
		b.Unsubscribe("gone")
		if err := b.Publish(context.Background(), "early", []byte(`0`)); err != nil {
			t.Logf("Publish before Run: %v", err) // allowed to fail, never to crash
		}
		r := NewRecorder(t)
		r.Start(t, b)
		WaitFor(t, settle, "active(early) after Run starts", func() bool { return r.Actives("early") == 1 })
		if err := b.Publish(context.Background(), "early", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, settle, "message after Run", func() bool {
			m := r.Messages("early")
			return len(m) > 0 && string(m[len(m)-1]) == "1"
		})
		if n := r.Actives("gone"); n != 0 {
			t.Errorf("active(gone) called %d times for a stream unsubscribed before Run", n)
		}
	})

	t.Run("ManyStreams", func(t *testing.T) {
		b := newBroker(t)
		r := NewRecorder(t)
		r.Start(t, b)
		const n = 2000
		for i := range n {
			b.Subscribe(fmt.Sprintf("many:%d", i))
		}
		WaitFor(t, settle+5*time.Second, "all streams active", func() bool {
			for i := range n {
				if r.Actives(fmt.Sprintf("many:%d", i)) == 0 {
					return false
				}
			}
			return true
		})
		if err := b.Publish(context.Background(), "many:1999", []byte(`"last"`)); err != nil {
			t.Fatal(err)
		}
		r.WaitMessage(t, "many:1999", 1, settle)
	})

	t.Run("HealthFollowsRun", func(t *testing.T) {
		CheckGoroutines(t)
		b := newBroker(t)
		if err := b.Health(context.Background()); err == nil {
			t.Error("Health before Run = nil, want an error")
		}
		r := NewRecorder(t)
		stop := r.Start(t, b)
		WaitFor(t, settle, "Health nil while running", func() bool { return b.Health(context.Background()) == nil })
		stop()
		err := b.Health(context.Background())
		if err == nil {
			t.Error("Health after Run returned = nil, want an error")
		} else if errors.Is(err, context.Canceled) {
			t.Errorf("Health after Run = %v; want words for an operator, not a context error", err)
		}
	})

	t.Run("RunTwiceAtOnce", func(t *testing.T) {
		b := newBroker(t)
		r := NewRecorder(t)
		r.Start(t, b)
		WaitFor(t, settle, "Health nil", func() bool { return b.Health(context.Background()) == nil })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Run(ctx, r.Deliver, r.Active); err == nil {
			t.Error("a second concurrent Run returned nil, want an error")
		}
	})
}
