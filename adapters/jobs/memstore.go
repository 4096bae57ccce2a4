package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Publisher sends a payload to a stream's subscribers: the broker's
// Publish.
type Publisher interface {
	Publish(ctx context.Context, stream string, payload []byte) error
}

// MemoryStore is the Store of a single node (no Redis to share state in):
// the lease is always this node's, the cursor and the last states live in
// this process, and Commit publishes through the broker. A restart starts
// the watchers from now again.
type MemoryStore struct {
	pub      Publisher
	stateTTL time.Duration
	now      func() time.Time

	mu      sync.Mutex
	cursors map[string][]byte
	last    map[string]lastState
}

type lastState struct {
	payload []byte
	expires time.Time
}

// NewMemoryStore publishes through pub and keeps last states for stateTTL
// (default 1h).
func NewMemoryStore(pub Publisher, stateTTL time.Duration) *MemoryStore {
	if stateTTL <= 0 {
		stateTTL = time.Hour
	}
	return &MemoryStore{pub: pub, stateTTL: stateTTL, now: time.Now, cursors: map[string][]byte{}, last: map[string]lastState{}}
}

// Acquire implements Store: a single node always holds every lease.
func (s *MemoryStore) Acquire(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

// Release implements Store.
func (s *MemoryStore) Release(context.Context, string, string) error { return nil }

// Cursor implements Store.
func (s *MemoryStore) Cursor(_ context.Context, backend string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[backend], nil
}

// Commit implements Store. A publish that fails leaves the cursor where it
// was, so the watcher reads the same events again; the messages published
// before the failure may then arrive twice, which a single node without a
// shared store cannot rule out.
func (s *MemoryStore) Commit(ctx context.Context, backend, _ string, _ time.Duration, msgs []Message, cursor []byte) error {
	for _, m := range msgs {
		if err := s.pub.Publish(ctx, m.Stream, m.Payload); err != nil {
			return fmt.Errorf("publish %s event to %q: %w", backend, m.Stream, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, m := range msgs {
		s.last[m.Stream] = lastState{payload: m.Payload, expires: now.Add(s.stateTTL)}
	}
	s.cursors[backend] = cursor
	s.sweepLocked(now)
	return nil
}

// sweepLocked drops expired states, a few per commit, so the map does not
// grow with streams nobody reads.
func (s *MemoryStore) sweepLocked(now time.Time) {
	n := 0
	for k, v := range s.last {
		if n++; n > 64 {
			return
		}
		if now.After(v.expires) {
			delete(s.last, k)
		}
	}
}

// Last implements Store.
func (s *MemoryStore) Last(_ context.Context, streams []string) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out [][]byte
	for _, st := range streams {
		if v, ok := s.last[st]; ok && now.Before(v.expires) {
			out = append(out, v.payload)
		}
	}
	return out, nil
}
