package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Memory keeps history in this process, for the single-node memory broker.
// Each stream keeps at most its rule's Size messages, none older than its
// TTL; a stream without a message for TTL is forgotten (a later message
// starts a new epoch). Safe for concurrent use.
type Memory struct {
	rules Rules
	now   func() time.Time

	mu        sync.Mutex
	streams   map[string]*memStream
	lastSweep time.Time
}

type memStream struct {
	epoch   string
	last    uint64
	ttl     time.Duration
	entries []Entry // oldest first, at most the rule's Size
	dropped int64   // the newest dropped entry's Time
}

// NewMemory returns an empty store for rules.
func NewMemory(rules Rules) *Memory {
	return &Memory{rules: rules, now: time.Now, streams: map[string]*memStream{}}
}

// Append records data on stream if a rule covers it, and returns its
// epoch and offset; ok is false for a stream without history.
func (m *Memory) Append(stream string, data []byte) (epoch string, offset uint64, ok bool) {
	rule, ok := m.rules.Match(stream)
	if !ok {
		return "", 0, false
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	s := m.streams[stream]
	if s == nil || s.idle(now) { // forgotten: a new epoch
		s = &memStream{epoch: newEpoch(), ttl: rule.TTL}
		m.streams[stream] = s
	}
	s.expire(now)
	if len(s.entries) == rule.Size {
		s.dropped = s.entries[0].Time
		clear(s.entries[:1]) // let the payload go
		s.entries = s.entries[1:]
	}
	s.last++
	s.entries = append(s.entries, Entry{Offset: s.last, Time: now.UnixMilli(), Data: append([]byte(nil), data...)})
	return s.epoch, s.last, true
}

// Snapshot implements Reader.
func (m *Memory) Snapshot(_ context.Context, stream string) (Snapshot, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[stream]
	if s == nil || s.idle(now) {
		return Snapshot{}, nil
	}
	s.expire(now)
	return Snapshot{Epoch: s.epoch, Last: s.last, Entries: append([]Entry(nil), s.entries...), DroppedAt: s.dropped}, nil
}

// Len reports how many streams and messages are kept, for the benchmarks.
func (m *Memory) Len() (streams, messages int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.streams {
		messages += len(s.entries)
	}
	return len(m.streams), messages
}

// expire drops the entries older than the ttl.
func (s *memStream) expire(now time.Time) {
	cut := now.Add(-s.ttl).UnixMilli()
	i := 0
	for i < len(s.entries) && s.entries[i].Time < cut {
		s.dropped = s.entries[i].Time
		i++
	}
	if i > 0 {
		s.entries = append(s.entries[:0:0], s.entries[i:]...)
	}
}

// idle reports a stream whose newest message is older than its ttl.
func (s *memStream) idle(now time.Time) bool {
	newest := s.dropped
	if n := len(s.entries); n > 0 {
		newest = s.entries[n-1].Time
	}
	return newest < now.Add(-s.ttl).UnixMilli()
}

// sweepLocked forgets idle streams, at most once a second, so the store
// is bounded by the streams that had a message within their ttl.
func (m *Memory) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < time.Second {
		return
	}
	m.lastSweep = now
	for name, s := range m.streams {
		if s.idle(now) {
			delete(m.streams, name)
		}
	}
}

// newEpoch is a random 8-hex-digit id.
func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
