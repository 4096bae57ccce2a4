package celery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// message is one published result, with when it arrived.
type message struct {
	channel, payload string
	at               time.Time
}

// subscription holds a PSUBSCRIBE to the result channels and buffers what
// arrives until Poll takes it.
type subscription struct {
	ps     *goredis.PubSub
	cancel context.CancelFunc
	done   chan struct{}
	max    int

	mu      sync.Mutex // guards following
	buf     []message
	dropped int
	notify  chan struct{} // closed and replaced when a message arrives
}

// startSubscription subscribes and waits for Redis's confirmation, so that
// every result published afterwards is received.
func startSubscription(ctx context.Context, rdb *goredis.Client, pattern string, max int, log *slog.Logger) (*subscription, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	ps := rdb.PSubscribe(runCtx, pattern)
	if _, err := ps.Receive(ctx); err != nil {
		cancel()
		_ = ps.Close()
		return nil, err
	}
	s := &subscription{ps: ps, cancel: cancel, done: make(chan struct{}), max: max, notify: make(chan struct{})}
	go s.run(runCtx, log)
	return s, nil
}

// run receives until stopped. go-redis reconnects and subscribes again
// after a connection error; what was published meanwhile is lost here and
// left to the sweep.
func (s *subscription) run(ctx context.Context, log *slog.Logger) {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for {
		msg, err := s.ps.ReceiveMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("celery watcher: subscription interrupted; the sweep finds finished results published meanwhile", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.mu.Lock()
		if len(s.buf) >= s.max {
			s.dropped++
		} else {
			s.buf = append(s.buf, message{channel: msg.Channel, payload: msg.Payload, at: time.Now().UTC()})
		}
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
	}
}

// take returns up to max buffered messages, waiting up to wait for the
// first, and how many were dropped since the last take. lag is the age of
// the oldest message left behind.
func (s *subscription) take(ctx context.Context, wait time.Duration, max int) (msgs []message, dropped int, lag time.Duration) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.buf) > 0 || wait <= 0 {
			n := min(len(s.buf), max)
			msgs = append(msgs, s.buf[:n]...)
			s.buf = append(s.buf[:0], s.buf[n:]...)
			dropped, s.dropped = s.dropped, 0
			if len(s.buf) > 0 {
				lag = time.Since(s.buf[0].at)
			}
			s.mu.Unlock()
			return msgs, dropped, lag
		}
		notify := s.notify
		s.mu.Unlock()
		select {
		case <-notify:
		case <-timer.C:
			wait = 0
		case <-ctx.Done():
			wait = 0
		}
	}
}

// drain forgets what is buffered.
func (s *subscription) drain() {
	s.mu.Lock()
	s.buf, s.dropped = nil, 0
	s.mu.Unlock()
}

// stop ends the subscription and waits for its goroutine.
func (s *subscription) stop() {
	s.cancel()
	_ = s.ps.Close()
	<-s.done
}
