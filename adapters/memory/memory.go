// Package memory is the single-node broker: Publish hands a message straight
// to this process's subscribers. It suits development and a single cablecar
// that receives every broadcast itself (through POST /_broadcast); it cannot
// hear what Rails publishes to Redis.
package memory

import (
	"context"
	"errors"
	"sync"

	"github.com/cablecar/cablecar/history"
)

// ErrNotRunning is what Health reports while Run is not running.
var ErrNotRunning = errors.New("memory broker not running")

// ErrAlreadyRunning is returned by Run when another Run call is active.
var ErrAlreadyRunning = errors.New("memory broker: Run is already running")

// Broker is an in-memory broker; it satisfies proxy.Broker. Create it with
// New: the zero value is not usable. All methods are safe for concurrent
// use.
//
// Subscribe and Unsubscribe only record the wanted set; Run's goroutine
// reports each Subscribe through active. Publish calls deliver on the
// caller's goroutine, so it must not be called while holding a lock that
// deliver takes.
type Broker struct {
	cbMu sync.Mutex // serialises deliver and active calls; taken before mu

	wake chan struct{} // capacity 1: Run has pending streams to activate

	mu      sync.Mutex          // guards following
	want    map[string]struct{} // streams the hub asked for
	pending map[string]struct{} // subscribed since Run last reported active
	running bool                // a Run call is active
	deliver func(stream string, payload []byte)

	// history, when set, records the streams its rules cover; set
	// before Run, read-only after.
	history *history.Memory
}

// SetHistory makes Publish record the streams h's rules cover and deliver
// each recorded message's annotated copy on history.InternalPrefix+stream
// (see package history). Call it before Run.
func (b *Broker) SetHistory(h *history.Memory) { b.history = h }

// New returns an empty, stopped broker.
func New() *Broker {
	return &Broker{
		wake:    make(chan struct{}, 1),
		want:    map[string]struct{}{},
		pending: map[string]struct{}{},
	}
}

// Run reports active for every wanted stream, then for each later
// Subscribe, and lets Publish deliver, until ctx is done. It returns nil
// then, or ErrAlreadyRunning at once if another Run call is active. After
// it returns no callback is running or will be called; Run may be called
// again.
func (b *Broker) Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error {
	if deliver == nil || active == nil {
		return errors.New("memory broker: Run needs deliver and active callbacks")
	}
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return ErrAlreadyRunning
	}
	b.running = true
	b.deliver = deliver
	for s := range b.want {
		b.pending[s] = struct{}{}
	}
	b.mu.Unlock()
	b.signal()

	defer func() {
		// cbMu first: once Run returns, no Publish is still inside deliver.
		b.cbMu.Lock()
		b.mu.Lock()
		b.running = false
		b.deliver = nil
		b.mu.Unlock()
		b.cbMu.Unlock()
	}()
	var batch []string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}
		b.mu.Lock()
		batch = batch[:0]
		for s := range b.pending {
			batch = append(batch, s)
		}
		clear(b.pending)
		b.mu.Unlock()

		b.cbMu.Lock()
		for _, s := range batch {
			b.mu.Lock()
			_, ok := b.want[s]
			b.mu.Unlock()
			if ok {
				active(s)
			}
		}
		b.cbMu.Unlock()
	}
}

// Subscribe records that stream is wanted; Run reports it active. It never
// blocks.
func (b *Broker) Subscribe(stream string) {
	b.mu.Lock()
	b.want[stream] = struct{}{}
	b.pending[stream] = struct{}{}
	b.mu.Unlock()
	b.signal()
}

// Unsubscribe records that stream is no longer wanted: later Publish calls
// for it are dropped. It never blocks.
func (b *Broker) Unsubscribe(stream string) {
	b.mu.Lock()
	delete(b.want, stream)
	delete(b.pending, stream)
	b.mu.Unlock()
}

// Publish calls deliver with payload, on the caller's goroutine, if stream
// is wanted and Run is running; otherwise it drops the message. With a
// history store it also records the message, then delivers its annotated
// copy if that is wanted. It always returns nil.
func (b *Broker) Publish(_ context.Context, stream string, payload []byte) error {
	b.cbMu.Lock()
	defer b.cbMu.Unlock()
	b.mu.Lock()
	_, ok := b.want[stream]
	deliver := b.deliver
	b.mu.Unlock()
	if ok && deliver != nil {
		deliver(stream, payload)
	}
	if b.history == nil {
		return nil
	}
	epoch, offset, recorded := b.history.Append(stream, payload)
	if !recorded {
		return nil
	}
	internal := history.InternalPrefix + stream
	b.mu.Lock()
	_, ok = b.want[internal]
	b.mu.Unlock()
	if ok && deliver != nil {
		deliver(internal, history.Annotate(epoch, offset, payload))
	}
	return nil
}

// Health returns nil while Run is running, else ErrNotRunning.
func (b *Broker) Health(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return ErrNotRunning
	}
	return nil
}

// signal wakes Run without blocking.
func (b *Broker) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
