package proxy

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cablecar/cablecar/history"
)

// shardCount is the number of hub shards. A power of two, so the shard is a
// mask of the hash; 64 keeps lock contention low on a few cores without
// costing memory worth mentioning.
const shardCount = 64

// hub knows which connections are open and which subscriptions want which
// stream. Streams and connections are sharded, each shard under its own
// lock; see doc.go for the lock order.
type hub struct {
	broker Broker
	log    *slog.Logger
	seed   maphash.Seed
	stats  *Stats
	hooks  *Hooks
	// writers write what deliver queues; nil in tests that need no
	// pool (every connection then gets a flusher goroutine).
	writers *writerPool
	// recorded: some streams have history, and their annotated copies
	// (history.InternalPrefix+stream) go to deliverRecorded. Set before
	// the broker runs.
	recorded bool

	streams [shardCount]streamShard
	conns   [shardCount]connShard
}

type streamShard struct {
	mu sync.RWMutex
	m  map[string]*stream // guarded by mu
}

type connShard struct {
	mu sync.Mutex
	m  map[uint64]*conn // by conn.id; guarded by mu
}

// stream is one broadcasting name with local subscribers. Its fields are
// guarded by the owning shard's lock.
type stream struct {
	// active is set once the broker acknowledged the subscription; until
	// then new subscribers wait for their confirm.
	active bool
	// groups holds subscribers by identifier, so a broadcast is encoded
	// once per distinct identifier. Almost always one group.
	groups []*group
	nsubs  int
}

// group is every subscription on one stream sharing an identifier string.
type group struct {
	internal   bool // the connections' own channel: commands, not frames
	identifier string
	quoted     []byte
	subs       map[*subscription]struct{}
}

func newHub(b Broker, log *slog.Logger, stats *Stats, hooks *Hooks) *hub {
	h := &hub{broker: b, log: log, seed: maphash.MakeSeed(), stats: stats, hooks: hooks}
	for i := range h.streams {
		h.streams[i].m = make(map[string]*stream)
		h.conns[i].m = make(map[uint64]*conn)
	}
	return h
}

func (h *hub) streamShard(name string) *streamShard {
	return &h.streams[maphash.String(h.seed, name)&(shardCount-1)]
}

func (h *hub) connShard(id uint64) *connShard {
	return &h.conns[id&(shardCount-1)]
}

func (h *hub) addConn(c *conn) {
	s := h.connShard(c.id)
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
	h.stats.ConnsOpen.Add(1)
}

// conn finds an open connection by id; nil once it was removed.
func (h *hub) conn(id uint64) *conn {
	s := h.connShard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (h *hub) removeConn(c *conn) {
	s := h.connShard(c.id)
	s.mu.Lock()
	_, ok := s.m[c.id]
	delete(s.m, c.id)
	s.mu.Unlock()
	if ok {
		h.stats.ConnsOpen.Add(-1)
	}
}

// eachConn calls fn for every open connection, one shard at a time. fn runs
// under the shard lock and must not block.
func (h *hub) eachConn(fn func(*conn)) { h.eachConnIn(0, 1, fn) }

// eachConnIn is eachConn for the connections of slice k of n: those in the
// shards i with i mod n = k. It returns how many there were.
func (h *hub) eachConnIn(k, n int, fn func(*conn)) int {
	count := 0
	for i := k; i < len(h.conns); i += n {
		s := &h.conns[i]
		s.mu.Lock()
		for _, c := range s.m {
			fn(c)
		}
		count += len(s.m)
		s.mu.Unlock()
	}
	return count
}

// subscribe adds sub to each of its streams. The first local subscriber of
// a stream asks the broker for it; sub is confirmed once every one of its
// streams is active.
func (h *hub) subscribe(sub *subscription) {
	sub.waiting.Store(int32(len(sub.streams)))
	for _, name := range sub.streams {
		s := h.streamShard(name)
		s.mu.Lock()
		st := s.m[name]
		if st == nil {
			st = &stream{}
			s.m[name] = st
			// Under the shard lock, so the broker sees this stream's
			// subscribes and unsubscribes in the order the hub made them.
			h.broker.Subscribe(name)
		}
		st.add(sub)
		ready := st.active
		s.mu.Unlock()
		if ready {
			sub.streamReady()
		}
	}
}

// unsubscribe removes sub from its streams; the last local subscriber of a
// stream releases it at the broker.
func (h *hub) unsubscribe(sub *subscription) {
	for _, name := range sub.streams {
		s := h.streamShard(name)
		s.mu.Lock()
		if st := s.m[name]; st != nil && st.remove(sub) && st.nsubs == 0 {
			delete(s.m, name)
			h.broker.Unsubscribe(name)
		}
		s.mu.Unlock()
	}
}

// activate is the broker's acknowledgement for name: everyone waiting on it
// moves one step closer to confirm_subscription.
func (h *hub) activate(name string) {
	s := h.streamShard(name)
	s.mu.Lock()
	st := s.m[name]
	if st == nil || st.active {
		s.mu.Unlock()
		return
	}
	st.active = true
	waiting := make([]*subscription, 0, st.nsubs)
	for _, g := range st.groups {
		for sub := range g.subs {
			waiting = append(waiting, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range waiting {
		sub.streamReady()
	}
}

// deliver fans one broker message out to the stream's local subscribers.
// It only queues bytes: no socket IO happens here, so one slow client
// cannot hold up the broker's read loop or anyone else.
func (h *hub) deliver(name string, payload []byte) {
	received := time.Now()
	h.stats.BroadcastsReceived.Add(1)
	if h.recorded && strings.HasPrefix(name, history.InternalPrefix) {
		h.deliverRecorded(name, payload)
		return
	}
	if !json.Valid(payload) {
		h.stats.InvalidPayloads.Add(1)
		h.log.Warn("broadcast dropped: payload is not valid JSON", "stream", name, "bytes", len(payload))
		return
	}
	s := h.streamShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.m[name]
	if st == nil {
		return
	}
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("transmitting "+strconv.Itoa(len(payload))+" bytes to "+name+" ("+strconv.Itoa(st.nsubs)+" subscribers)",
			"stream", name, "bytes", len(payload), "subscribers", st.nsubs)
	}
	for _, g := range st.groups {
		if g.internal {
			for sub := range g.subs {
				sub.conn.remoteCommand(payload)
			}
			continue
		}
		frame := messageFrame(g.quoted, payload)
		var batch *flushBatch
		for sub := range g.subs {
			batch = sub.conn.sendBatched(frame, batch) // the writer pool puts it on the socket
		}
		h.writers.submit(batch)
	}
	if hook := h.hooks.Broadcast; hook != nil {
		hook(name, payload, st.nsubs, received)
	}
}

// streams lists up to limit streams with their subscriber counts.
func (h *hub) streamList(limit int) []StreamInfo {
	var out []StreamInfo
	for i := range h.streams {
		s := &h.streams[i]
		s.mu.RLock()
		for name, st := range s.m {
			if len(out) >= limit {
				break
			}
			out = append(out, StreamInfo{Name: name, Subscribers: st.nsubs})
		}
		s.mu.RUnlock()
	}
	return out
}

// streamCount reports how many streams have local subscribers.
func (h *hub) streamCount() int {
	n := 0
	for i := range h.streams {
		s := &h.streams[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func (st *stream) add(sub *subscription) {
	for _, g := range st.groups {
		if g.identifier == sub.identifier {
			g.subs[sub] = struct{}{}
			st.nsubs++
			return
		}
	}
	st.groups = append(st.groups, &group{
		internal:   sub.internal,
		identifier: sub.identifier,
		quoted:     sub.quoted,
		subs:       map[*subscription]struct{}{sub: {}},
	})
	st.nsubs++
}

// remove reports whether sub was there.
func (st *stream) remove(sub *subscription) bool {
	for i, g := range st.groups {
		if g.identifier != sub.identifier {
			continue
		}
		if _, ok := g.subs[sub]; !ok {
			return false
		}
		delete(g.subs, sub)
		st.nsubs--
		if len(g.subs) == 0 {
			st.groups = append(st.groups[:i], st.groups[i+1:]...)
		}
		return true
	}
	return false
}

// subscription is one confirmed-or-pending subscribe of one connection.
type subscription struct {
	conn       *conn
	identifier string   // exactly as the client sent it
	quoted     []byte   // identifier as a JSON string, for frames
	channel    string   // the identifier's "channel"
	streams    []string // what it receives; fixed at subscribe time
	waiting    atomic.Int32
	confirmed  bool // guarded by conn.mu
	// internal marks the connection's own Rails channel,
	// action_cable/<connection identifier>, which carries remote
	// disconnects. Its identifier is "", which no client can subscribe.
	internal bool
	// restored: brought back by a session restore, confirmed without a
	// frame.
	restored bool
}

// streamReady counts one of sub's streams as active and confirms sub when
// it was the last.
func (sub *subscription) streamReady() {
	if sub.waiting.Add(-1) == 0 {
		sub.conn.confirm(sub)
	}
}

// Stats are the server's counters. All fields are safe for concurrent use.
type Stats struct {
	ConnsOpen          atomic.Int64 // connections open now
	ConnsTotal         atomic.Int64 // connections accepted since start
	AuthFailures       atomic.Int64 // connections refused as unauthorized
	SubsConfirmed      atomic.Int64 // confirm_subscription frames sent
	SubsRejected       atomic.Int64 // reject_subscription frames sent
	BroadcastsReceived atomic.Int64 // messages from the broker
	InvalidPayloads    atomic.Int64 // broker messages dropped as invalid JSON
	DroppedClosed      atomic.Int64 // frames for connections already closing
	DisconnectsSlow    atomic.Int64 // connections closed as too_slow
	PingsSent          atomic.Int64 // heartbeat frames queued
}
