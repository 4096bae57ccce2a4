package admin

import (
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cablecar/cablecar/proxy"
)

// Sizes of what the status page can see.
const (
	recentMax       = 100 // entries per recent list
	previewMax      = 120 // bytes of a payload preview
	broadcastsPerS  = 50  // broadcast events sent per second at most
	subscriberQueue = 256 // events buffered per event-stream client
)

// Record types, as the API shows them.
type (
	broadcastRecord struct {
		At        time.Time `json:"at"`
		Stream    string    `json:"stream"`
		Bytes     int       `json:"bytes"`
		Delivered int       `json:"delivered"`
		Preview   string    `json:"preview"`
		Skipped   int       `json:"skipped,omitempty"`
	}
	rejectionRecord struct {
		At         time.Time `json:"at"`
		Conn       uint64    `json:"conn"`
		User       string    `json:"user"`
		Channel    string    `json:"channel"`
		Identifier string    `json:"identifier"`
		Reason     string    `json:"reason"`
		Detail     string    `json:"detail"`
	}
	authFailureRecord struct {
		At     time.Time `json:"at"`
		Remote string    `json:"remote"`
		Reason string    `json:"reason"`
		Detail string    `json:"detail"`
	}
	connRecord struct {
		At     time.Time `json:"at"`
		ID     uint64    `json:"id"`
		User   string    `json:"user"`
		Remote string    `json:"remote"`
		Reason string    `json:"reason,omitempty"`
	}
	brokerRecord struct {
		At     time.Time `json:"at"`
		Up     bool      `json:"up"`
		Reason string    `json:"reason"`
	}
)

// event is one Server-Sent Event, encoded once for every listener.
type event struct {
	name string
	data []byte
}

// ring keeps the newest n items.
type ring[T any] struct {
	items []T
	next  int
}

func (r *ring[T]) add(v T) {
	if len(r.items) < recentMax {
		r.items = append(r.items, v)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % recentMax
}

// newestFirst copies the items, newest first.
func (r *ring[T]) newestFirst() []T {
	out := make([]T, 0, len(r.items))
	n := len(r.items)
	for i := 0; i < n; i++ {
		out = append(out, r.items[(r.next-1-i+2*n)%n])
	}
	return out
}

// feed keeps the recent lists and fans events out to event-stream clients.
// Slow listeners lose events rather than slow the proxy down.
type feed struct {
	mu          sync.Mutex // guards following
	broadcasts  ring[broadcastRecord]
	rejections  ring[rejectionRecord]
	authFails   ring[authFailureRecord]
	listeners   map[chan event]struct{}
	windowStart time.Time
	windowSent  int
	skipped     int
}

func newFeed() *feed { return &feed{listeners: map[chan event]struct{}{}} }

func (f *feed) subscribe() chan event {
	ch := make(chan event, subscriberQueue)
	f.mu.Lock()
	f.listeners[ch] = struct{}{}
	f.mu.Unlock()
	return ch
}

func (f *feed) unsubscribe(ch chan event) {
	f.mu.Lock()
	delete(f.listeners, ch)
	f.mu.Unlock()
}

// publishLocked sends ev to every listener that has room.
func (f *feed) publishLocked(name string, v any) {
	if len(f.listeners) == 0 {
		return
	}
	data, _ := json.Marshal(v)
	ev := event{name: name, data: data}
	for ch := range f.listeners {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *feed) record(name string, v any, add func()) {
	f.mu.Lock()
	if add != nil {
		add()
	}
	f.publishLocked(name, v)
	f.mu.Unlock()
}

// broadcast records a fan-out; events are capped at broadcastsPerS, the
// excess counted into the next one's "skipped".
func (f *feed) broadcast(stream string, payload []byte, delivered int) {
	now := time.Now()
	r := broadcastRecord{At: now, Stream: stream, Bytes: len(payload), Delivered: delivered, Preview: preview(payload)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broadcasts.add(r)
	if now.Sub(f.windowStart) >= time.Second {
		f.windowStart, f.windowSent = now, 0
	}
	if f.windowSent >= broadcastsPerS {
		f.skipped++
		return
	}
	f.windowSent++
	r.Skipped, f.skipped = f.skipped, 0
	f.publishLocked("broadcast", r)
}

// preview is the start of a payload, cut on a rune boundary.
func preview(p []byte) string {
	if len(p) > previewMax {
		p = p[:previewMax]
		for len(p) > 0 && !utf8.Valid(p) {
			p = p[:len(p)-1]
		}
	}
	return string(p)
}

func (f *feed) hooks() proxy.Hooks {
	return proxy.Hooks{
		ConnOpened: func(c proxy.ConnInfo) {
			f.record("connect", connRecord{At: time.Now(), ID: c.ID, User: c.User, Remote: c.Remote}, nil)
		},
		ConnClosed: func(c proxy.ConnInfo, reason string) {
			f.record("disconnect", connRecord{At: time.Now(), ID: c.ID, User: c.User, Remote: c.Remote, Reason: reason}, nil)
		},
		AuthFailed: func(remote, reason, detail string) {
			r := authFailureRecord{At: time.Now(), Remote: remote, Reason: reason, Detail: detail}
			f.record("auth_failure", r, func() { f.authFails.add(r) })
		},
		Rejected: func(c proxy.ConnInfo, channel, identifier, reason, detail string) {
			r := rejectionRecord{At: time.Now(), Conn: c.ID, User: c.User, Channel: channel, Identifier: identifier, Reason: reason, Detail: detail}
			f.record("rejection", r, func() { f.rejections.add(r) })
		},
		Broadcast: func(stream string, payload []byte, delivered int, _ time.Time) {
			f.broadcast(stream, payload, delivered)
		},
	}
}

// recent returns copies of the recent lists, newest first.
func (f *feed) recent() (b []broadcastRecord, r []rejectionRecord, a []authFailureRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broadcasts.newestFirst(), f.rejections.newestFirst(), f.authFails.newestFirst()
}
