package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxNamed bounds the unmapped classes and skip reasons remembered.
const maxNamed = 100

// Stats describe one runner; safe for concurrent use.
type Stats struct {
	backend  string
	watching atomic.Bool
	lagNanos atomic.Int64
	events   map[Status]*atomic.Int64 // fixed keys: Statuses

	mu         sync.Mutex
	lastErr    string
	lastErrAt  time.Time
	lastEvent  time.Time
	minute     [60]int64 // events per second, ring
	minuteAt   int64     // unix second of the ring's newest slot
	unmappedN  int64
	unmappedBy map[string]int64
	skippedBy  map[string]int64
}

func newStats(backend string) *Stats {
	s := &Stats{backend: backend, events: map[Status]*atomic.Int64{}, unmappedBy: map[string]int64{}, skippedBy: map[string]int64{}}
	for _, st := range Statuses {
		s.events[st] = new(atomic.Int64)
	}
	return s
}

// Backend names the backend.
func (s *Stats) Backend() string { return s.backend }

// Events returns how many events of status were published.
func (s *Stats) Events(st Status) int64 {
	if c := s.events[st]; c != nil {
		return c.Load()
	}
	return 0
}

// Lag is the last batch's lag behind the backend.
func (s *Stats) Lag() time.Duration { return time.Duration(s.lagNanos.Load()) }

// Skipped returns the count of skipped jobs by reason.
func (s *Stats) Skipped() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.skippedBy))
	for k, v := range s.skippedBy {
		out[k] = v
	}
	return out
}

// Unmapped returns how many events had no stream, and the classes seen.
func (s *Stats) Unmapped() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	classes := make([]string, 0, len(s.unmappedBy))
	for c := range s.unmappedBy {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	return s.unmappedN, classes
}

// Snapshot is a runner's state for the status API.
type Snapshot struct {
	Backend         string           `json:"backend"`
	Watching        bool             `json:"watching"`
	LagSeconds      float64          `json:"lag_seconds"`
	EventsPerMinute int64            `json:"events_per_minute"`
	Events          map[Status]int64 `json:"events"`
	LastEventAt     *time.Time       `json:"last_event_at,omitempty"`
	LastError       string           `json:"last_error,omitempty"`
	LastErrorAt     *time.Time       `json:"last_error_at,omitempty"`
	Unmapped        int64            `json:"unmapped"`
	UnmappedClasses []string         `json:"unmapped_classes,omitempty"`
	Skipped         map[string]int64 `json:"skipped,omitempty"`
}

// Snapshot returns the runner's state now.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{Backend: s.backend, Watching: s.watching.Load(), LagSeconds: s.Lag().Seconds(), Events: map[Status]int64{}}
	for _, st := range Statuses {
		snap.Events[st] = s.Events(st)
	}
	snap.Unmapped, snap.UnmappedClasses = s.Unmapped()
	snap.Skipped = s.Skipped()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(time.Now().Unix())
	for _, n := range s.minute {
		snap.EventsPerMinute += n
	}
	if !s.lastEvent.IsZero() {
		t := s.lastEvent
		snap.LastEventAt = &t
	}
	if s.lastErr != "" {
		t := s.lastErrAt
		snap.LastError, snap.LastErrorAt = s.lastErr, &t
	}
	return snap
}

func (s *Stats) setWatching(v bool) { s.watching.Store(v) }

// observe counts published events and records the lag.
func (s *Stats) observe(events []*Event, lag time.Duration) {
	s.lagNanos.Store(int64(lag))
	if len(events) == 0 {
		return
	}
	for _, ev := range events {
		if c := s.events[ev.Status]; c != nil {
			c.Add(1)
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now.Unix())
	s.minute[now.Unix()%60] += int64(len(events))
	s.lastEvent = now
}

// rollLocked clears the ring's slots between its newest second and now.
func (s *Stats) rollLocked(now int64) {
	if now-s.minuteAt >= 60 {
		s.minute = [60]int64{}
	} else {
		for t := s.minuteAt + 1; t <= now; t++ {
			s.minute[t%60] = 0
		}
	}
	if now > s.minuteAt {
		s.minuteAt = now
	}
}

// setError records msg and reports whether it differs from the last one.
func (s *Stats) setError(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := msg != s.lastErr
	s.lastErr, s.lastErrAt = msg, time.Now()
	return changed
}

func (s *Stats) clearError() {
	s.mu.Lock()
	s.lastErr = ""
	s.mu.Unlock()
}

// unmapped counts an event without a stream; true the first time its
// class is seen.
func (s *Stats) unmapped(class string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unmappedN++
	if _, seen := s.unmappedBy[class]; seen || len(s.unmappedBy) >= maxNamed {
		return false
	}
	s.unmappedBy[class] = 1
	return true
}

// skipped counts a skipped job; true the first time its reason is seen.
func (s *Stats) skipped(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, seen := s.skippedBy[reason]
	if !seen && len(s.skippedBy) >= maxNamed {
		reason = "other"
		n, seen = s.skippedBy[reason]
	}
	s.skippedBy[reason] = n + 1
	return !seen
}

func randomHolder() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
