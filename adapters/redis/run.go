package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/outage"

	goredis "github.com/redis/go-redis/v9"
)

// subscribeBatch is the most channels sent in one SUBSCRIBE or UNSUBSCRIBE.
const subscribeBatch = 1000

// generation is one subscriber connection (a go-redis PubSub) and the three
// goroutines that serve it. It ends on the first error; the next generation
// starts from a fresh PubSub and resubscribes every wanted stream.
type generation struct {
	ps      *goredis.PubSub
	deliver func(stream string, payload []byte)
	active  func(stream string)

	probeAcked     chan struct{} // closed when SUBSCRIBE of the probe channel is acknowledged
	probeAckedOnce sync.Once
	lastRecv       atomic.Int64 // UnixNano of the last reply or message read from ps
	errc           chan error   // capacity 1: the first error ends the generation
	wg             sync.WaitGroup
}

// fail reports err as the reason this generation ends; later reports are
// dropped.
func (g *generation) fail(err error) {
	select {
	case g.errc <- err:
	default:
	}
}

// Run keeps the wanted streams subscribed and delivers their messages until
// ctx is done or Close is called, reconnecting with backoff whenever the
// subscriber connection fails or stops delivering probes. It returns nil
// when stopped, ErrAlreadyRunning if another Run is active, or ErrClosed
// after Close. deliver and active are called from Run's goroutines, one
// call at a time; after Run returns neither is called again.
func (b *Broker) Run(ctx context.Context, deliver func(stream string, payload []byte), active func(stream string)) error {
	if deliver == nil || active == nil {
		return errors.New("redis broker: Run needs deliver and active callbacks")
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.running:
		b.mu.Unlock()
		return ErrAlreadyRunning
	}
	done := make(chan struct{})
	b.running, b.runDone = true, done
	b.up, b.everUp, b.healthErr, b.lostAt = false, false, ErrNotConnected, time.Time{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running, b.runDone = false, nil
		b.mu.Unlock()
		close(done)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.closing, cancel)() // Close stops Run too
	if b.shards != nil {
		return b.shards.run(ctx, deliver, active)
	}

	outage.Retry(ctx, b.cfg.BackoffMin, b.cfg.BackoffMax,
		func(ctx context.Context) (bool, error) { return b.runGeneration(ctx, deliver, active) }, b.noteFailure)
	return nil
}

// runGeneration opens a subscriber connection, serves it until it fails,
// is found wedged, or ctx is done, and tears it down. wasUp reports whether
// a probe came back on it.
func (b *Broker) runGeneration(ctx context.Context, deliver func(string, []byte), active func(string)) (wasUp bool, err error) {
	ps := b.newPubSub(ctx) // no channels: does not dial yet
	// The probe channel goes first: it dials, and it puts the connection
	// into subscribe mode.
	if err := b.subscribe(ctx, ps, b.probeChannel); err != nil {
		_ = ps.Close()
		b.mu.Lock()
		b.setDownLocked(err)
		b.mu.Unlock()
		return false, err
	}
	g := &generation{
		ps:         ps,
		deliver:    deliver,
		active:     active,
		probeAcked: make(chan struct{}),
		errc:       make(chan error, 1),
	}
	now := time.Now()
	g.lastRecv.Store(now.UnixNano())
	b.mu.Lock()
	b.gen = g
	clear(b.sent)
	clear(b.inflight)
	clear(b.unsubs)
	for s := range b.want {
		b.dirty[s] = struct{}{}
	}
	b.synced, b.up, b.announce = false, false, false
	// Count the connection itself as an outstanding probe, so a connection
	// on which no probe ever makes it back is found wedged too.
	b.probe.outstanding = append(b.probe.outstanding[:0], sentProbe{seq: b.probe.seq, at: now})
	b.probe.lastBack, b.probe.publishErr = time.Time{}, nil
	b.lag = lagState{}
	b.mu.Unlock()

	gctx, cancel := context.WithCancel(ctx)
	g.wg.Add(3)
	go b.receiveLoop(gctx, g)
	go b.commandLoop(gctx, g)
	go b.probeLoop(gctx, g)

	check := time.NewTicker(max(b.cfg.ProbeInterval/2, time.Millisecond))
	for err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case err = <-g.errc:
		case now := <-check.C:
			b.mu.Lock()
			err = b.probeLateLocked(now)
			behind := b.takeLagLocked()
			b.mu.Unlock()
			if err != nil {
				b.stats.probeTimeouts.Add(1)
			}
			if behind > 0 {
				b.log.Warn("redis subscriber lagging: messages arrive late because the hub takes them slower than Redis sends them; keeping the connection",
					"probe_behind", behind.Round(time.Millisecond))
			}
		}
	}
	check.Stop()
	// Down from this moment: Health says why, and whatever the old
	// goroutines still do (a probe, an acknowledgement) no longer counts.
	b.mu.Lock()
	wasUp = b.up
	b.gen, b.up, b.announce = nil, false, false
	if ctx.Err() == nil {
		b.setDownLocked(err)
	}
	b.mu.Unlock()
	cancel()
	_ = ps.Close() // unblocks the receive loop and any command in flight
	g.wg.Wait()

	b.mu.Lock()
	clear(b.sent)
	clear(b.inflight)
	clear(b.unsubs)
	b.probe.outstanding = b.probe.outstanding[:0]
	b.mu.Unlock()
	return wasUp, err
}

// setDownLocked records err as the reason Health reports until a probe
// comes back again.
func (b *Broker) setDownLocked(err error) {
	reason := describe(err)
	if b.everUp {
		b.healthErr = reason
	} else {
		b.healthErr = fmt.Errorf("%w: %s", ErrNotConnected, strings.TrimPrefix(reason.Error(), "redis: "))
	}
}

// noteFailure records why the subscriber connection is down and logs it:
// once when a working connection is lost (or the first one cannot be made),
// then only at debug level for each further attempt.
func (b *Broker) noteFailure(err error, wasUp bool, failures int, retryIn time.Duration) {
	reason := describe(err)
	b.mu.Lock()
	first := !b.everUp && failures == 1
	if wasUp {
		b.lostAt = time.Now()
	}
	streams := len(b.want)
	b.mu.Unlock()
	if wasUp {
		b.stats.disconnects.Add(1)
	}
	msgs := outage.Messages{
		Lost:          "redis subscriber connection lost; messages published until it is back are missed",
		CannotConnect: "redis subscriber cannot connect; retrying",
		Retry:         "redis subscriber reconnect failed",
	}
	msgs.Log(b.log, outage.Attempt{Reason: reason, WasUp: wasUp, First: first, Failures: failures, RetryIn: retryIn, Streams: streams})
}

// receiveLoop reads the subscriber connection: acknowledgements, probes and
// messages. It never blocks on the hub: deliver must not block.
func (b *Broker) receiveLoop(ctx context.Context, g *generation) {
	defer g.wg.Done()
	// A read timeout is no failure here (the probe judges liveness); it
	// only bounds how long the loop sleeps between checks of ctx.
	timeout := b.cfg.ProbeInterval + b.cfg.ProbeTimeout
	for {
		msg, err := g.ps.ReceiveTimeout(ctx, timeout)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) {
				continue
			}
			g.fail(fmt.Errorf("subscriber connection: %w", err))
			return
		}
		g.lastRecv.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *goredis.Message:
			b.handleMessage(g, m)
		case *goredis.Subscription:
			b.handleSubscription(g, m)
		}
	}
}

// handleMessage passes a message to the hub, or takes a probe.
func (b *Broker) handleMessage(g *generation, m *goredis.Message) {
	if m.Channel == b.probeChannel {
		b.probeBack(g, m.Payload)
		return
	}
	stream, ok := b.stream(m.Channel)
	if !ok {
		return
	}
	b.stats.delivered.Add(1)
	b.cbMu.Lock()
	g.deliver(stream, []byte(m.Payload))
	b.cbMu.Unlock()
}

// handleSubscription counts a SUBSCRIBE acknowledgement and calls active
// once every SUBSCRIBE written for a wanted stream has been acknowledged.
func (b *Broker) handleSubscription(g *generation, m *goredis.Subscription) {
	switch m.Kind {
	case "subscribe", "ssubscribe":
	case "sunsubscribe":
		b.handleSunsubscribe(g, m.Channel)
		return
	default:
		return
	}
	if m.Channel == b.probeChannel {
		g.probeAckedOnce.Do(func() { close(g.probeAcked) })
		return
	}
	stream, ok := b.stream(m.Channel)
	if !ok {
		return
	}
	b.mu.Lock()
	if b.gen != g {
		b.mu.Unlock()
		return
	}
	n := b.inflight[stream] - 1
	if n > 0 {
		b.inflight[stream] = n
	} else {
		delete(b.inflight, stream)
	}
	_, wanted := b.want[stream]
	_, sent := b.sent[stream]
	announce, streams, downFor := b.takeAnnounceLocked()
	b.mu.Unlock()
	if n <= 0 && wanted && sent {
		b.cbMu.Lock()
		g.active(stream)
		b.cbMu.Unlock()
	}
	if announce {
		b.logReconnected(streams, downFor)
	}
}

// handleSunsubscribe takes a SUNSUBSCRIBE reply. Redis also sends one
// unasked when a shard channel's slot moves to another shard: the
// subscription is gone, and the stream must be subscribed on its new shard
// (moved) or, without anyone to tell, on a fresh connection.
func (b *Broker) handleSunsubscribe(g *generation, channel string) {
	if channel == b.probeChannel {
		g.fail(fmt.Errorf("redis ended the probe subscription (slot of %q moved)", channel))
		return
	}
	stream, ok := b.stream(channel)
	if !ok {
		return
	}
	b.mu.Lock()
	if b.gen != g {
		b.mu.Unlock()
		return
	}
	if n := b.unsubs[stream]; n > 0 { // the reply to our own SUNSUBSCRIBE
		if n == 1 {
			delete(b.unsubs, stream)
		} else {
			b.unsubs[stream] = n - 1
		}
		b.mu.Unlock()
		return
	}
	delete(b.sent, stream)
	delete(b.inflight, stream)
	b.mu.Unlock()
	if b.moved == nil {
		g.fail(fmt.Errorf("redis ended the subscription of %q (slot moved)", channel))
		return
	}
	b.log.Info("redis moved a stream's slot to another shard; resubscribing there", "stream", stream)
	b.moved(stream)
}

// commandLoop turns the difference between the wanted and the sent
// streams into batched SUBSCRIBE and UNSUBSCRIBE commands, and reports
// active for streams subscribed again while their subscription was already
// acknowledged.
func (b *Broker) commandLoop(ctx context.Context, g *generation) {
	defer g.wg.Done()
	for {
		subs, unsubs, actives := b.diff(g)
		if len(actives) > 0 {
			b.cbMu.Lock()
			for _, s := range actives {
				g.active(s)
			}
			b.cbMu.Unlock()
		}
		for chunk := range b.chunks(unsubs) {
			if err := b.unsubscribe(ctx, g.ps, chunk...); err != nil {
				g.fail(fmt.Errorf("unsubscribe: %w", err))
				return
			}
		}
		for chunk := range b.chunks(subs) {
			if err := b.subscribe(ctx, g.ps, chunk...); err != nil {
				g.fail(fmt.Errorf("subscribe: %w", err))
				return
			}
		}
		if len(subs)+len(unsubs)+len(actives) > 0 {
			continue // more may have been asked for meanwhile
		}
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
	}
}

// diff takes the dirty streams and returns the channels to subscribe and
// unsubscribe and the streams to report active now. Streams to subscribe are
// marked sent and in flight before any command is written, because the
// acknowledgement can arrive before the write returns.
func (b *Broker) diff(g *generation) (subs, unsubs, actives []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != g {
		return nil, nil, nil // ending; the next generation starts over
	}
	for s := range b.dirty {
		_, wanted := b.want[s]
		_, sent := b.sent[s]
		switch {
		case wanted && !sent:
			b.sent[s] = struct{}{}
			b.inflight[s]++
			subs = append(subs, b.channel(s))
		case !wanted && sent:
			delete(b.sent, s)
			if b.sharded {
				b.unsubs[s]++
			}
			unsubs = append(unsubs, b.channel(s))
		case wanted && b.inflight[s] == 0:
			// Unsubscribe then Subscribe again before we wrote either:
			// the subscription never lapsed, but this Subscribe needs
			// its own active.
			actives = append(actives, s)
		}
	}
	clear(b.dirty)
	b.synced = true
	return subs, unsubs, actives
}

// chunks yields channels in pieces of at most subscribeBatch. Sharded
// pieces also share one slot, since SSUBSCRIBE and SUNSUBSCRIBE refuse
// channels of different slots (CROSSSLOT) on a cluster.
func (b *Broker) chunks(channels []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		if b.sharded {
			slices.SortFunc(channels, func(x, y string) int { return cmp.Compare(keySlot(x), keySlot(y)) })
		}
		for len(channels) > 0 {
			n := min(len(channels), subscribeBatch)
			if b.sharded {
				slot := keySlot(channels[0])
				n = 1
				for n < len(channels) && n < subscribeBatch && keySlot(channels[n]) == slot {
					n++
				}
			}
			if !yield(channels[:n]) {
				return
			}
			channels = channels[n:]
		}
	}
}

// newPubSub returns a PubSub with no channels, which does not dial yet.
func (b *Broker) newPubSub(ctx context.Context) *goredis.PubSub {
	if b.sharded {
		return b.client.SSubscribe(ctx)
	}
	return b.client.Subscribe(ctx)
}

// subscribe writes SUBSCRIBE, or SSUBSCRIBE when sharded.
func (b *Broker) subscribe(ctx context.Context, ps *goredis.PubSub, channels ...string) error {
	if b.sharded {
		return ps.SSubscribe(ctx, channels...)
	}
	return ps.Subscribe(ctx, channels...)
}

// unsubscribe writes UNSUBSCRIBE, or SUNSUBSCRIBE when sharded.
func (b *Broker) unsubscribe(ctx context.Context, ps *goredis.PubSub, channels ...string) error {
	if b.sharded {
		return ps.SUnsubscribe(ctx, channels...)
	}
	return ps.Unsubscribe(ctx, channels...)
}

// probeLoop publishes a probe on the private channel as soon as that
// channel's subscription is acknowledged, then every ProbeInterval.
func (b *Broker) probeLoop(ctx context.Context, g *generation) {
	defer g.wg.Done()
	select {
	case <-ctx.Done():
		return
	case <-g.probeAcked:
	}
	t := time.NewTicker(b.cfg.ProbeInterval)
	defer t.Stop()
	for {
		b.sendProbe(ctx, g)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendProbe publishes the next probe. It counts as outstanding from before
// the PUBLISH, so a PUBLISH that hangs or fails also makes the probe late.
func (b *Broker) sendProbe(ctx context.Context, g *generation) {
	b.mu.Lock()
	if b.gen != g {
		b.mu.Unlock()
		return
	}
	b.probe.seq++
	seq := b.probe.seq
	b.probe.outstanding = append(b.probe.outstanding, sentProbe{seq: seq, at: time.Now()})
	b.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, b.cfg.ProbeTimeout)
	err := b.publish(pctx, b.probeChannel, strconv.FormatUint(seq, 10))
	cancel()
	if ctx.Err() != nil {
		return
	}
	b.mu.Lock()
	if b.gen == g {
		b.probe.publishErr = err
	}
	b.mu.Unlock()
	if err != nil {
		b.log.Debug("redis probe publish failed", "err", err)
	}
}

// probeBack takes a probe that came back. The first one on a connection
// makes the broker healthy.
func (b *Broker) probeBack(g *generation, payload string) {
	seq, err := strconv.ParseUint(payload, 10, 64)
	if err != nil {
		return
	}
	now := time.Now()
	b.mu.Lock()
	if b.gen != g {
		b.mu.Unlock()
		return
	}
	p := &b.probe
	i := 0
	for i < len(p.outstanding) && p.outstanding[i].seq <= seq {
		i++
	}
	p.outstanding = append(p.outstanding[:0], p.outstanding[i:]...)
	p.lastBack = now
	b.lag = lagState{}
	first := !b.everUp
	becameUp := !b.up
	if becameUp {
		b.up, b.everUp, b.healthErr = true, true, nil
		b.announce = !first
		if !first {
			b.stats.reconnects.Add(1)
		}
	}
	announce, streams, downFor := b.takeAnnounceLocked()
	wanted := len(b.want)
	b.mu.Unlock()
	if becameUp && first {
		b.log.Info("redis subscriber connected", "streams", wanted)
	}
	if announce {
		b.logReconnected(streams, downFor)
	}
}

// takeAnnounceLocked reports, once per reconnection, when the
// resubscription is complete: a probe came back and every SUBSCRIBE of the
// new connection was acknowledged.
func (b *Broker) takeAnnounceLocked() (ok bool, streams int, downFor time.Duration) {
	if !b.announce || !b.synced || len(b.inflight) > 0 {
		return false, 0, 0
	}
	b.announce = false
	if !b.lostAt.IsZero() {
		downFor = time.Since(b.lostAt)
	}
	return true, len(b.sent), downFor
}

func (b *Broker) logReconnected(streams int, downFor time.Duration) {
	b.log.Info(fmt.Sprintf("redis subscriber reconnected, resubscribed %d streams", streams),
		"streams", streams, "down_for", downFor.Round(time.Millisecond))
}

// describe turns a generation's error into Health's words: prefixed with
// "redis: " once.
func describe(err error) error {
	if err == nil {
		return errors.New("redis: subscriber connection closed")
	}
	if strings.HasPrefix(err.Error(), "redis: ") {
		return err
	}
	return fmt.Errorf("redis: %w", err)
}

// isTimeout reports a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
