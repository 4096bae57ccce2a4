package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// probeTagTries bounds the search for a probe channel that hashes to a
// given master. A master owning a third of the slots is hit in about three
// tries; none is found only when ChannelPrefix carries a hash tag of its
// own, and then no channel of ours can live on that master either.
const probeTagTries = 1 << 16

// shardSet is the broker behind a Broker for sharded pub/sub on a Redis
// Cluster. A shard channel lives only on the master that owns its slot, so
// one subscriber connection cannot hear them all: the set keeps one Broker
// (its own subscriber connection, probes and reconnects) per master, puts
// each stream on the master of its channel's slot, and follows the slot
// map, reading CLUSTER SLOTS every ProbeInterval and at once when Redis
// says that a subscribed slot moved.
type shardSet struct {
	cfg    Config
	log    *slog.Logger
	client goredis.UniversalClient // the cluster client: SPUBLISH routed by slot, CLUSTER SLOTS
	opts   goredis.UniversalOptions
	prefix string
	id     string        // names this process's probe channels
	kick   chan struct{} // capacity 1: read the slot map now

	cbMu sync.Mutex // one hub callback at a time, whichever shard calls

	mu       sync.Mutex // guards following; taken before any shard Broker's mu
	want     map[string]struct{}
	moved    map[string]struct{} // streams whose subscription Redis ended; placed again by the next refresh
	assigned map[string]*shard   // where each placed stream is subscribed
	shards   map[string]*shard   // by master address
	owner    [slotCount]*shard   // the shard of each slot; nil while unknown
	layout   string              // the slot map last applied, for change detection
	mapErr   error               // why the slot map is unknown; nil once read
	retired  Stats               // counters of shards that are gone
}

// shard is one master's Broker and the goroutine running it.
type shard struct {
	addr string
	b    *Broker
	stop context.CancelFunc
	done chan struct{} // closed when b.Run returns
}

// slotRange is an inclusive range of slots.
type slotRange struct{ start, end int }

func newShardSet(cfg Config, log *slog.Logger, opts clientOptions) *shardSet {
	client := opts.newClient(clientName()) // also names opts.universal's connections
	s := &shardSet{
		cfg:      cfg,
		log:      log,
		client:   client,
		opts:     *opts.universal,
		id:       randomID(),
		kick:     make(chan struct{}, 1),
		want:     map[string]struct{}{},
		moved:    map[string]struct{}{},
		assigned: map[string]*shard{},
		shards:   map[string]*shard{},
		mapErr:   ErrNotConnected,
	}
	if cfg.ChannelPrefix != "" {
		s.prefix = cfg.ChannelPrefix + ":"
	}
	return s
}

// run follows the slot map and runs a Broker per master until ctx is done,
// then stops them all.
func (s *shardSet) run(ctx context.Context, deliver func(string, []byte), active func(string)) error {
	d := func(stream string, payload []byte) {
		s.cbMu.Lock()
		defer s.cbMu.Unlock()
		deliver(stream, payload)
	}
	a := func(stream string) {
		s.cbMu.Lock()
		defer s.cbMu.Unlock()
		active(stream)
	}
	s.mu.Lock()
	s.mapErr, s.layout = ErrNotConnected, ""
	s.mu.Unlock()
	defer s.stopShards()
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		s.refresh(ctx, d, a)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// refresh reads the slot map and, when it changed or a stream lost its
// subscription, starts and retires shards and places streams.
func (s *shardSet) refresh(ctx context.Context, deliver func(string, []byte), active func(string)) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	slots, err := s.client.ClusterSlots(rctx).Result()
	cancel()
	if err == nil && len(slots) == 0 {
		err = errors.New("CLUSTER SLOTS lists no slots")
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.mapFailed(err)
		return
	}
	byAddr, layout := masters(slots)
	s.mu.Lock()
	if layout == s.layout && len(s.moved) == 0 {
		s.mu.Unlock()
		return
	}
	retire := s.applyLocked(ctx, slots, byAddr, deliver, active)
	recovered := s.mapErr != nil && s.layout != ""
	changed := s.layout != "" && s.layout != layout
	s.layout, s.mapErr = layout, nil
	s.mu.Unlock()
	if changed {
		s.reloadClientState(ctx)
	}
	if recovered || changed {
		s.log.Info("redis cluster slot map read", "masters", len(byAddr), "changed", changed)
	}
	for _, sh := range retire {
		s.retire(sh)
	}
}

// applyLocked makes the shards match byAddr and places every wanted stream
// on the shard owning its slot. It returns the shards to retire, which the
// caller stops after unlocking; streams moving off them are subscribed on
// their new shard first, and the old master no longer delivers them, so
// the handover neither loses nor repeats a message published after it.
func (s *shardSet) applyLocked(ctx context.Context, slots []goredis.ClusterSlot, byAddr map[string][]slotRange,
	deliver func(string, []byte), active func(string)) (retire []*shard) {
	for addr, sh := range s.shards {
		if rs, ok := byAddr[addr]; !ok || !inRanges(rs, keySlot(sh.b.probeChannel)) {
			retire = append(retire, sh)
			delete(s.shards, addr)
		}
	}
	for addr, rs := range byAddr {
		if s.shards[addr] != nil {
			continue
		}
		if sh := s.startShard(ctx, addr, rs, deliver, active); sh != nil {
			s.shards[addr] = sh
		}
	}
	s.owner = [slotCount]*shard{}
	for _, cs := range slots {
		if len(cs.Nodes) == 0 {
			continue
		}
		sh := s.shards[cs.Nodes[0].Addr]
		for i := max(cs.Start, 0); i <= min(cs.End, slotCount-1); i++ {
			s.owner[i] = sh
		}
	}
	for _, sh := range retire {
		for stream, at := range s.assigned {
			if at == sh {
				delete(s.assigned, stream) // its Broker is stopping; no UNSUBSCRIBE needed
			}
		}
	}
	for stream := range s.want {
		s.placeLocked(stream)
	}
	clear(s.moved)
	return retire
}

// placeLocked subscribes stream on the shard owning its slot, moving it
// from the shard it was on, or subscribes it again where it is when Redis
// ended its subscription.
func (s *shardSet) placeLocked(stream string) {
	sh := s.owner[keySlot(s.prefix+stream)]
	old := s.assigned[stream]
	_, moved := s.moved[stream]
	if sh == old && !moved {
		return
	}
	if old != nil && old != sh {
		old.b.Unsubscribe(stream)
	}
	if sh == nil {
		delete(s.assigned, stream)
		return
	}
	// After a move on the same shard, the Broker sees the stream wanted but
	// no longer sent, and writes SSUBSCRIBE again.
	sh.b.Subscribe(stream)
	s.assigned[stream] = sh
}

// startShard starts a Broker on the master at addr, with a probe channel
// in the master's slots. It returns nil when no channel of ours can hash
// there.
func (s *shardSet) startShard(ctx context.Context, addr string, rs []slotRange,
	deliver func(string, []byte), active func(string)) *shard {
	probe, ok := s.probeChannel(rs)
	if !ok {
		s.log.Debug("no probe channel hashes to this master; not subscribing there", "shard", addr)
		return nil
	}
	b := makeBroker(s.cfg, s.log.With("shard", addr), s.nodeClient(addr), probe)
	b.sharded, b.moved = true, s.streamMoved
	sctx, stop := context.WithCancel(ctx)
	sh := &shard{addr: addr, b: b, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(sh.done)
		_ = b.Run(sctx, deliver, active)
	}()
	return sh
}

// nodeClient returns a plain client for one master, with the cluster's
// options (password, TLS, names), so the shard's subscriber connection and
// probes go to that master and no other.
func (s *shardSet) nodeClient(addr string) goredis.UniversalClient {
	o := s.opts
	o.Addrs, o.IsClusterMode = []string{addr}, false
	return goredis.NewClient(o.Simple())
}

// probeChannel returns a probe channel whose slot is in rs.
func (s *shardSet) probeChannel(rs []slotRange) (string, bool) {
	for n := range probeTagTries {
		ch := s.prefix + "cablecar/probe/{" + s.id + "-" + strconv.Itoa(n) + "}"
		if inRanges(rs, keySlot(ch)) {
			return ch, true
		}
	}
	return "", false
}

// reloadClientState makes the cluster client reread the slot map in the
// background. go-redis rereads it only every minute or after a MOVED
// reply, and a publish to a dead master fails before either: after a
// failover, Publish would keep dialing the dead master. Reloads in flight
// are coalesced, so calling this after every failed Publish is cheap.
func (s *shardSet) reloadClientState(ctx context.Context) {
	if cc, ok := s.client.(*goredis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
}

// retire stops a shard's Broker, keeps its counters and closes it.
func (s *shardSet) retire(sh *shard) {
	sh.stop()
	<-sh.done
	st := sh.b.Stats()
	_ = sh.b.Close()
	s.mu.Lock()
	addStats(&s.retired, st)
	s.mu.Unlock()
}

// stopShards retires every shard; run calls it on the way out.
func (s *shardSet) stopShards() {
	s.mu.Lock()
	all := make([]*shard, 0, len(s.shards))
	for _, sh := range s.shards {
		all = append(all, sh)
	}
	clear(s.shards)
	clear(s.assigned)
	s.owner = [slotCount]*shard{}
	s.layout, s.mapErr = "", ErrNotRunning
	s.mu.Unlock()
	for _, sh := range all {
		s.retire(sh)
	}
}

// streamMoved is a shard Broker's report that Redis ended a stream's
// subscription: the next refresh, at once, places it again.
func (s *shardSet) streamMoved(stream string) {
	s.mu.Lock()
	if _, ok := s.want[stream]; ok {
		s.moved[stream] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// mapFailed records that the slot map could not be read, logging the
// first failure after a success (or at start) only.
func (s *shardSet) mapFailed(err error) {
	s.mu.Lock()
	first := s.mapErr == nil || errors.Is(s.mapErr, ErrNotConnected)
	if s.layout == "" {
		s.mapErr = fmt.Errorf("%w: cluster slot map: %s", ErrNotConnected, strings.TrimPrefix(err.Error(), "redis: "))
	} else {
		s.mapErr = fmt.Errorf("redis: cluster slot map: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	s.mu.Unlock()
	if first {
		s.log.Error("redis cluster slot map unreadable; retrying", "err", err)
	} else {
		s.log.Debug("redis cluster slot map still unreadable", "err", err)
	}
}

func (s *shardSet) subscribe(stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want[stream] = struct{}{}
	s.placeLocked(stream)
}

func (s *shardSet) unsubscribe(stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.want, stream)
	delete(s.moved, stream)
	if sh := s.assigned[stream]; sh != nil {
		sh.b.Unsubscribe(stream)
		delete(s.assigned, stream)
	}
}

// health is nil when the slot map is known and every shard's probes come
// back; otherwise it names the first shard (by address) that fails.
func (s *shardSet) health(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mapErr != nil {
		return s.mapErr
	}
	addrs := make([]string, 0, len(s.shards))
	for addr := range s.shards {
		addrs = append(addrs, addr)
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		if err := s.shards[addr].b.Health(ctx); err != nil {
			return &shardError{addr: addr, err: err}
		}
	}
	return nil
}

// stats sums the shards' counters, past and present.
func (s *shardSet) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.retired
	for _, sh := range s.shards {
		addStats(&st, sh.b.Stats())
	}
	st.Streams = len(s.want)
	return st
}

// shardError is a shard's Health error, naming the master.
type shardError struct {
	addr string
	err  error
}

func (e *shardError) Error() string {
	return "redis shard " + e.addr + ": " + strings.TrimPrefix(e.err.Error(), "redis: ")
}

func (e *shardError) Unwrap() error { return e.err }

// masters groups the slot ranges by master address and returns a
// canonical text of the map, equal for equal maps.
func masters(slots []goredis.ClusterSlot) (map[string][]slotRange, string) {
	by := map[string][]slotRange{}
	var lines []string
	for _, cs := range slots {
		if len(cs.Nodes) == 0 {
			continue
		}
		addr := cs.Nodes[0].Addr
		by[addr] = append(by[addr], slotRange{cs.Start, cs.End})
		lines = append(lines, fmt.Sprintf("%d-%d %s", cs.Start, cs.End, addr))
	}
	slices.Sort(lines)
	for _, rs := range by {
		slices.SortFunc(rs, func(x, y slotRange) int { return cmp.Compare(x.start, y.start) })
	}
	return by, strings.Join(lines, ",")
}

func inRanges(rs []slotRange, slot int) bool {
	for _, r := range rs {
		if slot >= r.start && slot <= r.end {
			return true
		}
	}
	return false
}

// addStats adds the counters of from (not Streams) to to.
func addStats(to *Stats, from Stats) {
	to.Delivered += from.Delivered
	to.Published += from.Published
	to.PublishErrors += from.PublishErrors
	to.Disconnects += from.Disconnects
	to.Reconnects += from.Reconnects
	to.ProbeTimeouts += from.ProbeTimeouts
}
