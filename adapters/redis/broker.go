package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Broker is the Redis pub/sub broker; it satisfies proxy.Broker. Create it
// with New: the zero value is not usable. All methods are safe for
// concurrent use. See the package documentation for the design.
type Broker struct {
	cfg          Config                  // defaults applied; immutable
	log          *slog.Logger            // never nil; immutable
	client       goredis.UniversalClient // PUBLISH, probes, and the factory for subscriber connections
	prefix       string                  // ChannelPrefix + ":", or ""; immutable
	probeChannel string                  // this node's private probe channel; immutable
	// sharded selects SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH; immutable.
	sharded bool
	// shards, when set, serves every method instead: a Redis Cluster with
	// sharded pub/sub, one subscriber connection per master (shard.go).
	shards *shardSet
	// moved, when set, is told of a stream whose subscription Redis ended
	// on its own (its slot moved to another shard); without it such a loss
	// ends the connection. Immutable.
	moved func(stream string)

	wake      chan struct{}   // capacity 1: the command goroutine has work
	closing   context.Context // done once Close is called
	stopAll   context.CancelFunc
	closeOnce sync.Once
	closeErr  error // from client.Close, set in closeOnce

	// cbMu serialises calls into the hub (deliver and active). It is never
	// taken while mu is held.
	cbMu sync.Mutex

	mu      sync.Mutex    // guards following
	running bool          // a Run call is active
	closed  bool          // Close was called
	runDone chan struct{} // closed when the active Run returns
	// Desired and sent subscription state; stream names, without prefix.
	want     map[string]struct{} // streams the hub asked for
	dirty    map[string]struct{} // streams touched since the command goroutine last looked
	sent     map[string]struct{} // SUBSCRIBE written on the current connection, no UNSUBSCRIBE since
	inflight map[string]int      // SUBSCRIBEs written on the current connection and not yet acknowledged
	unsubs   map[string]int      // sharded: SUNSUBSCRIBEs written on the current connection, not yet acknowledged
	gen      *generation         // current subscriber connection, or nil
	synced   bool                // the command goroutine has taken its first diff of gen
	// Health.
	up        bool  // a probe came back on the current connection
	everUp    bool  // a probe came back at some time during this Run
	healthErr error // why the broker is not up; meaningful while !up
	lostAt    time.Time
	announce  bool // log "reconnected" once the resubscription is acknowledged
	probe     probeState
	lag       lagState

	stats counters
}

// probeState tracks the probes of the current connection. Guarded by
// Broker.mu.
type probeState struct {
	seq         uint64      // last sequence number handed out (never reset)
	outstanding []sentProbe // published (or being published), not yet back; oldest first
	lastBack    time.Time   // when a probe last came back
	publishErr  error       // from the newest probe PUBLISH, if it failed
}

// lagState tracks a connection that delivers, but behind: its probes wait
// behind a backlog. Guarded by Broker.mu; reset when a probe comes back.
type lagState struct {
	since     time.Time // when the overdue probe was sent; zero when not lagging
	announced bool      // the lag was logged
}

// sentProbe is one probe on its way.
type sentProbe struct {
	seq uint64
	at  time.Time
}

// counters are the Stats, kept as atomics so readers never take mu.
type counters struct {
	delivered, published, publishErrors atomic.Uint64
	disconnects, reconnects             atomic.Uint64
	probeTimeouts                       atomic.Uint64
}

// Stats are counters since New, for metrics.
type Stats struct {
	// Streams is the number of streams the hub wants now.
	Streams int
	// Delivered counts messages handed to deliver.
	Delivered uint64
	// Published and PublishErrors count Publish calls that succeeded and
	// failed.
	Published, PublishErrors uint64
	// Disconnects counts working subscriber connections that were lost
	// (each one a gap in which published messages were missed).
	Disconnects uint64
	// Reconnects counts subscriber connections re-established after a
	// loss.
	Reconnects uint64
	// ProbeTimeouts counts subscriber connections replaced because a probe
	// did not come back in time.
	ProbeTimeouts uint64
}

// New checks cfg and returns a stopped broker. It does no IO: Run connects.
// A nil logger discards logs. Call Close when done.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg = cfg.withDefaults()
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShardedPubSub && opts.universal != nil && opts.universal.IsClusterMode {
		set := newShardSet(cfg, logger, opts)
		b := makeBroker(cfg, logger, set.client, "")
		b.sharded, b.shards = true, set
		return b, nil
	}
	// The client name labels this node's connections in CLIENT LIST, as
	// Rails does with "ActionCable-PID-<pid>". One dial per attempt
	// instead of go-redis's five with 100 ms pauses: Publish then fails
	// fast while Redis is down, and Run has its own backoff for the
	// subscriber connection.
	b := makeBroker(cfg, logger, opts.newClient(clientName()), "")
	b.sharded = cfg.ShardedPubSub
	return b, nil
}

// makeBroker returns a stopped broker on client; cfg has its defaults.
// probeChannel is generated when empty.
func makeBroker(cfg Config, logger *slog.Logger, client goredis.UniversalClient, probeChannel string) *Broker {
	b := &Broker{
		cfg:          cfg,
		log:          logger,
		client:       client,
		probeChannel: probeChannel,
		wake:         make(chan struct{}, 1),
		want:         map[string]struct{}{},
		dirty:        map[string]struct{}{},
		sent:         map[string]struct{}{},
		inflight:     map[string]int{},
		unsubs:       map[string]int{},
	}
	b.closing, b.stopAll = context.WithCancel(context.Background())
	if cfg.ChannelPrefix != "" {
		b.prefix = cfg.ChannelPrefix + ":"
	}
	if b.probeChannel == "" {
		b.probeChannel = b.prefix + "cablecar/probe/" + randomID()
	}
	return b
}

// randomID is 16 hex digits from crypto/rand, naming this node's probes.
func randomID() string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// Close stops Run (waiting for it to return) and closes the Redis
// connections. Publish fails afterwards. It must not be called from inside
// deliver or active. Calling it again returns the first result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.stopAll()
		b.mu.Lock()
		b.closed = true
		done := b.runDone
		b.mu.Unlock()
		if done != nil {
			<-done
		}
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}

// Subscribe records that the hub wants stream. The command goroutine
// subscribes it; active follows Redis's acknowledgement. It never blocks and
// does no IO.
func (b *Broker) Subscribe(stream string) {
	if b.shards != nil {
		b.shards.subscribe(stream)
		return
	}
	b.mu.Lock()
	b.want[stream] = struct{}{}
	b.dirty[stream] = struct{}{}
	b.mu.Unlock()
	b.signal()
}

// Unsubscribe records that the hub no longer needs stream; the command
// goroutine unsubscribes it. It never blocks and does no IO.
func (b *Broker) Unsubscribe(stream string) {
	if b.shards != nil {
		b.shards.unsubscribe(stream)
		return
	}
	b.mu.Lock()
	delete(b.want, stream)
	b.dirty[stream] = struct{}{}
	b.mu.Unlock()
	b.signal()
}

// Publish sends payload to stream's Redis channel with PUBLISH, as Rails
// does (SPUBLISH with ShardedPubSub), on a pooled connection (never the
// subscriber's). It does not need Run. ctx bounds the call, retries
// included.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte) error {
	if err := b.publish(ctx, b.channel(stream), payload); err != nil {
		if b.shards != nil {
			b.shards.reloadClientState(ctx)
		}
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("redis publish %q: %w", stream, err)
	}
	b.stats.published.Add(1)
	return nil
}

// Health returns nil when a probe published on this node's private channel
// has recently come back through the subscriber connection, which proves
// that Redis delivers to this node. Otherwise the error says why, e.g.
// "redis: dial tcp 127.0.0.1:6379: connect: connection refused" or
// "redis: pub/sub probe not received for 3s".
func (b *Broker) Health(ctx context.Context) error {
	b.mu.Lock()
	if b.shards != nil {
		running := b.running
		b.mu.Unlock()
		if !running {
			return ErrNotRunning
		}
		return b.shards.health(ctx)
	}
	defer b.mu.Unlock()
	switch {
	case !b.running:
		return ErrNotRunning
	case !b.up:
		return b.healthErr
	}
	return b.probeLateLocked(time.Now())
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	if b.shards != nil {
		s := b.shards.stats()
		s.Published += b.stats.published.Load() // Publish counts here
		s.PublishErrors += b.stats.publishErrors.Load()
		return s
	}
	b.mu.Lock()
	n := len(b.want)
	b.mu.Unlock()
	return Stats{
		Streams:       n,
		Delivered:     b.stats.delivered.Load(),
		Published:     b.stats.published.Load(),
		PublishErrors: b.stats.publishErrors.Load(),
		Disconnects:   b.stats.disconnects.Load(),
		Reconnects:    b.stats.reconnects.Load(),
		ProbeTimeouts: b.stats.probeTimeouts.Load(),
	}
}

// probeLateLocked returns an ErrProbeLate error if the probes show the
// current connection no longer delivers: a probe is overdue, or none has
// come back for longer than one interval plus the timeout (no probe was
// even sent), and nothing at all was read from the connection for the
// probe timeout. A connection still being read is behind, not wedged: its
// probe waits behind a backlog the hub has yet to take (a saturated CPU),
// and replacing it would throw that backlog away. It is recorded as lag.
func (b *Broker) probeLateLocked(now time.Time) error {
	p := &b.probe
	late := len(p.outstanding) > 0 && now.Sub(p.outstanding[0].at) > b.cfg.ProbeTimeout
	if !late && !p.lastBack.IsZero() && now.Sub(p.lastBack) > b.cfg.ProbeInterval+b.cfg.ProbeTimeout {
		late = true
	}
	if !late {
		return nil
	}
	if g := b.gen; g != nil && now.Sub(time.Unix(0, g.lastRecv.Load())) <= b.cfg.ProbeTimeout {
		if b.lag.since.IsZero() && len(p.outstanding) > 0 {
			b.lag.since = p.outstanding[0].at
		}
		return nil
	}
	if p.publishErr != nil {
		return fmt.Errorf("%w for %v (publishing the probe failed: %v)", ErrProbeLate, b.cfg.ProbeTimeout, p.publishErr)
	}
	return fmt.Errorf("%w for %v", ErrProbeLate, b.cfg.ProbeTimeout)
}

// takeLagLocked returns, once per episode of lag, how far behind the
// overdue probe is; otherwise 0.
func (b *Broker) takeLagLocked() time.Duration {
	if b.lag.since.IsZero() || b.lag.announced {
		return 0
	}
	b.lag.announced = true
	return time.Since(b.lag.since)
}

// publish sends payload on channel with PUBLISH, or SPUBLISH when sharded.
func (b *Broker) publish(ctx context.Context, channel string, payload any) error {
	if b.sharded {
		return b.client.SPublish(ctx, channel, payload).Err()
	}
	return b.client.Publish(ctx, channel, payload).Err()
}

// channel returns stream's Redis channel.
func (b *Broker) channel(stream string) string { return b.prefix + stream }

// stream returns the stream of a Redis channel, false if the channel is not
// one of ours.
func (b *Broker) stream(channel string) (string, bool) {
	if !strings.HasPrefix(channel, b.prefix) {
		return "", false
	}
	return channel[len(b.prefix):], true
}

// signal wakes the command goroutine without blocking.
func (b *Broker) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// clientName is "cablecar-<hostname>-<pid>", limited to the characters
// CLIENT SETNAME accepts.
func clientName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, host)
	if host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("cablecar-%s-%d", host, os.Getpid())
}

// Reconnects returns Stats().Reconnects, for the reconnect metric.
func (b *Broker) Reconnects() uint64 { return b.stats.reconnects.Load() }
