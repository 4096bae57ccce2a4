package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cablecar/cablecar/auth"
)

// runner is one run's shared state. Counters are atomics: thousands of
// reader goroutines update them.
type runner struct {
	cfg      Config
	start    time.Time // monotonic origin of every payload timestamp
	runID    int64
	progress io.Writer

	targets []string // per connection when tokens differ, else one
	sources []*net.TCPAddr
	streams []string // broadcasting name per stream index

	clients []*client // by connection number; nil when it never connected
	readers sync.WaitGroup

	next                  atomic.Int64 // next connection number to dial
	connected, subscribed atomic.Int64
	lost                  atomic.Int64 // connections that failed after the welcome
	lostUnconfirmed       atomic.Int64 // of those, ones never confirmed
	published             atomic.Int64
	roundsPublished       atomic.Int64
	noListener            atomic.Int64
	pings, unknown        atomic.Int64
	foreign, misrouted    atomic.Int64
	outOfOrder            atomic.Int64
	tally                 tally      // the goroutine readers' deliveries
	loops                 *readLoops // nil: a goroutine reads each connection
	connLat, subLat       histogram
	rounds                []atomic.Int64 // deliveries per round
	perRound              atomic.Int64   // deliveries that complete a round
	roundDone             chan struct{}
	closing               atomic.Bool
	phase                 atomic.Pointer[string]

	failMu   sync.Mutex // guards following
	failures map[string]int64
	examples map[string]string
}

// Run performs one benchmark run and returns its result. It returns an
// error without a result when the configuration is refused or the
// publisher cannot be reached; failures during the run (refused
// connections, missing deliveries, the timeout) are in the result, see
// Result.OK. progress, when not nil, gets a line a second.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, progress: progress, roundDone: make(chan struct{}, 1),
		failures: map[string]int64{}, examples: map[string]string{}}
	res := r.newResult()

	limit, err := raiseOpenFileLimit()
	if err != nil {
		res.Warnings = append(res.Warnings, "could not raise the open-file limit: "+err.Error())
	}
	res.Client.OpenFileLimit = int64(limit)
	if need := uint64(cfg.Connections+cfg.Slow) + 64; limit > 0 && need > limit {
		return nil, fmt.Errorf("%w: %d connections need about %d descriptors and this process may open %d "+
			"(ulimit -n; the hard limit is the ceiling, run the server and the load tool as separate processes)",
			ErrTooManyConnections, cfg.Connections+cfg.Slow, need, limit)
	}
	res.Warnings = append(res.Warnings, r.limitWarnings()...)
	if err := r.prepare(); err != nil {
		return nil, err
	}

	var pub publisher
	if cfg.Scenario == ScenarioFanout {
		if cfg.RedisURL != "" {
			rp, err := newRedisPublisher(cfg.RedisURL, cfg.Prefix, cfg.BroadcastFormat == FormatAnyCable)
			if err != nil {
				return nil, err
			}
			if err := rp.check(ctx); err != nil {
				rp.close()
				return nil, err
			}
			pub = rp
		} else {
			pub = newHTTPPublisher(cfg.BroadcastURL, cfg.BroadcastKey, cfg.BroadcastFormat == FormatAnyCable)
		}
		defer pub.close()
		res.Publisher = pub.name()
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r.start = time.Now()
	res.Date = r.start.UTC().Truncate(time.Second)
	stopProgress := r.startProgress()
	defer stopProgress()

	pid := ""
	if cfg.PID > 0 {
		pid = strconv.Itoa(cfg.PID)
		res.Server = &ProcResult{PID: cfg.PID, OpenFileLimit: openFileLimit(pid)}
	}
	sample := func(p string) procSample {
		if p == "" {
			return procSample{}
		}
		s, err := readProc(p)
		if err != nil && p != "self" { // no /proc/self: no client figures, no failure
			r.fail("measure", err)
		}
		return s
	}

	// Connect (and subscribe). Samples: s0 before, s1 once every socket
	// is open, s2 once every subscription is confirmed (connect: after
	// Hold), s3 after the fan-out.
	if !cfg.NormalScheduling {
		if err := batchScheduling(); err != nil {
			if runtime.GOOS == "linux" {
				res.Warnings = append(res.Warnings, "normal scheduling: "+err.Error())
			}
		} else {
			res.SchedBatch = true
		}
	}
	if !cfg.ReadGoroutines {
		loops, err := newReadLoops(r, cfg.Connections)
		if err != nil && runtime.GOOS == "linux" {
			res.Warnings = append(res.Warnings, "reading with a goroutine per connection: "+err.Error())
		}
		r.loops = loops
	}
	res.ReadLoops = r.loops != nil
	res.ClientMode = clientMode(res.ReadLoops, res.SchedBatch)
	s0, c0 := sample(pid), sample("self")
	r.setPhase("connect")
	connectStart := time.Now()
	r.connectAll(ctx)
	connectDur := time.Since(connectStart)
	s1, c1 := sample(pid), sample("self")
	if cfg.Scenario == ScenarioFanout || !cfg.NoSubscribe {
		r.setPhase("subscribe")
		r.awaitSubscribed(ctx)
	}
	res.Connect = ConnectResult{
		Attempted:        min(r.next.Load(), int64(cfg.Connections)),
		Connected:        r.connected.Load(),
		Subscribed:       r.subscribed.Load(),
		DurationMS:       ms(connectDur),
		Latency:          r.connLat.summary(),
		SubscribeLatency: r.subLat.summary(),
	}
	if connectDur > 0 {
		res.Connect.RatePerSec = float64(res.Connect.Connected) / connectDur.Seconds()
	}
	var sh, ch procSample // hold start
	holdStart := time.Now()
	if cfg.Scenario == ScenarioConnect {
		r.setPhase("hold")
		sh, ch = sample(pid), sample("self")
		sleep(ctx, cfg.Hold)
	}
	held := time.Since(holdStart)
	s2, c2 := sample(pid), sample("self")
	var s3, c3 procSample
	if cfg.Scenario == ScenarioFanout {
		// Slow subscribers join after the samples above, so the figures
		// per connection are the normal connections' own.
		slow := r.connectSlow(ctx)
		res.Fanout = r.fanout(ctx, pub)
		s3, c3 = sample(pid), sample("self")
		res.Slow = r.observeSlow(slow)
	}
	conns := res.Connect.Connected - r.lost.Load()
	res.Server.fill(s0, s1, s2, s3, conns, res.Fanout)
	res.Client.fill(c0, c1, c2, c3, conns, res.Fanout)
	if cfg.Scenario == ScenarioConnect {
		res.Server.fillIdle(sh, s2, held)
		res.Client.fillIdle(ch, c2, held)
	}
	switch ctx.Err() {
	case context.DeadlineExceeded:
		r.fail("timeout", fmt.Errorf("run stopped by --timeout %v", cfg.Timeout))
	case context.Canceled:
		r.fail("interrupted", fmt.Errorf("run interrupted after %v", time.Since(r.start).Round(time.Millisecond)))
	}
	r.setPhase("close")
	r.closeAll()
	stopProgress()
	r.finish(res)
	return res, nil
}

// prepare works out names, addresses and tokens before the clock starts.
func (r *runner) prepare() error {
	cfg := r.cfg
	var b [8]byte
	_, _ = rand.Read(b[:])
	// Below 2^50: positive, and exact even for a JSON reader using floats.
	r.runID = int64(binary.BigEndian.Uint64(b[:]) % (1 << 50))
	for _, s := range cfg.Sources {
		r.sources = append(r.sources, &net.TCPAddr{IP: net.ParseIP(s)})
	}
	r.streams = make([]string, cfg.Streams)
	for i := range r.streams {
		r.streams[i] = expand(cfg.Stream, i)
	}
	r.clients = make([]*client, cfg.Connections)
	if cfg.Scenario == ScenarioFanout {
		r.rounds = make([]atomic.Int64, cfg.Broadcasts)
	}
	r.targets = []string{cfg.URL}
	if cfg.JWTSecret == "" {
		return nil
	}
	a, err := auth.New(auth.Config{JWTSecret: cfg.JWTSecret, StreamsClaim: cfg.StreamsClaim})
	if err != nil {
		return fmt.Errorf("jwt-secret: %w", err)
	}
	sep := "?"
	if strings.Contains(cfg.URL, "?") {
		sep = "&"
	}
	r.targets = make([]string, cfg.Connections)
	ttl := cfg.Timeout + time.Hour
	for n := range r.targets {
		tok, err := a.Mint("bench-"+itoa(n), []string{r.streams[n%cfg.Streams]}, ttl)
		if err != nil {
			return err
		}
		r.targets[n] = cfg.URL + sep + "token=" + url.QueryEscape(tok)
	}
	return nil
}

// limitWarnings says which machine limits this run is close to.
func (r *runner) limitWarnings() []string {
	cfg := r.cfg
	var out []string
	perSource := cfg.Connections / max(len(cfg.Sources), 1)
	if ports := ephemeralPorts(); ports > 0 && perSource > ports*9/10 {
		out = append(out, fmt.Sprintf("%d connections per source address against %d ephemeral ports "+
			"(net.ipv4.ip_local_port_range, and ports in TIME_WAIT count): add --sources 127.0.0.2,127.0.0.3,…", perSource, ports))
	}
	if bl := listenBacklog(); bl > 0 && cfg.Concurrency > bl {
		out = append(out, fmt.Sprintf("concurrency %d is above the listen backlog (net.core.somaxconn=%d): "+
			"handshakes may be dropped and retried after 1 s", cfg.Concurrency, bl))
	}
	if cfg.PID > 0 {
		if lim := openFileLimit(strconv.Itoa(cfg.PID)); lim > 0 && int64(cfg.Connections)+32 > lim {
			out = append(out, fmt.Sprintf("the server (pid %d) may open %d files, fewer than %d connections plus its own: "+
				"expect refused or dropped connections near the limit", cfg.PID, lim, cfg.Connections))
		}
	}
	return out
}

// connectAll dials every connection, Concurrency at a time. Each is
// welcomed, sends subscribe (unless NoSubscribe in the connect scenario)
// and gets a reader goroutine; confirmations arrive there.
func (r *runner) connectAll(ctx context.Context) {
	subscribe := r.cfg.Scenario == ScenarioFanout || !r.cfg.NoSubscribe
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(r.next.Add(1) - 1)
				if n >= r.cfg.Connections {
					return
				}
				c := &client{r: r, n: n, stream: int64(n % r.cfg.Streams), lastSeq: -1, t: &r.tally}
				var src *net.TCPAddr
				if len(r.sources) > 0 {
					src = r.sources[n%len(r.sources)]
				}
				target := r.targets[0]
				if len(r.targets) > 1 {
					target = r.targets[n]
				}
				t0 := time.Now()
				err := c.dial(ctx, target, src, r.cfg.DialTimeout)
				if err == nil && subscribe {
					err = c.subscribe(expand(r.cfg.Identifier, int(c.stream)))
				}
				if err != nil {
					if c.nc != nil {
						c.nc.Close()
					}
					if ctx.Err() == nil {
						r.fail("", err)
					}
					continue
				}
				r.connLat.record(time.Since(t0))
				r.connected.Add(1)
				r.clients[n] = c
				r.startReading(c)
			}
		}()
	}
	wg.Wait()
}

// awaitSubscribed waits until every live connection is confirmed, or
// DrainTimeout passes; the rest count as confirm_timeout.
func (r *runner) awaitSubscribed(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if r.subscribed.Load()+r.lostUnconfirmed.Load() >= r.connected.Load() {
			return
		}
		sleep(ctx, 5*time.Millisecond)
	}
	if missing := r.connected.Load() - r.subscribed.Load() - r.lostUnconfirmed.Load(); missing > 0 {
		r.failN("confirm_timeout", missing, fmt.Errorf("%d subscriptions not confirmed within %v (--drain-timeout)", missing, r.cfg.DrainTimeout))
	}
}

// fanout publishes Broadcasts rounds, one message per stream each, and
// waits for them to arrive.
func (r *runner) fanout(ctx context.Context, pub publisher) *FanoutResult {
	cfg := r.cfg
	fr := &FanoutResult{}
	perRound := r.subscribed.Load()
	r.perRound.Store(perRound)
	fr.Expected = perRound * int64(cfg.Broadcasts)
	if perRound == 0 {
		return fr
	}
	r.setPhase("fanout")
	msgs := make([]message, cfg.Streams)
	offsets := make([]int, cfg.Streams+1)
	var buf []byte
	start := time.Now()
	interval := time.Duration(0)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	completed := 0 // rounds fully delivered, for the closed loop
	for k := 0; k < cfg.Broadcasts && ctx.Err() == nil; k++ {
		if interval > 0 {
			sleep(ctx, time.Until(start.Add(time.Duration(k)*interval)))
		} else if !r.awaitWindow(ctx, k, &completed) {
			r.fail("stalled", fmt.Errorf("round %d not delivered within %v; the closed loop stopped", completed, cfg.DrainTimeout))
			break
		}
		if ctx.Err() != nil {
			break
		}
		buf = buf[:0]
		for s := range msgs {
			offsets[s] = len(buf)
			buf = appendPayload(buf, stamp{at: int64(r.since()), seq: int64(k), stream: int64(s), run: r.runID}, cfg.PayloadSize)
		}
		offsets[len(msgs)] = len(buf)
		for s := range msgs {
			msgs[s] = message{stream: r.streams[s], payload: buf[offsets[s]:offsets[s+1]]}
		}
		none, err := pub.publish(ctx, msgs)
		if err != nil {
			if ctx.Err() == nil {
				r.fail("publish", err)
			}
			break
		}
		r.noListener.Add(int64(none))
		r.published.Add(int64(len(msgs)))
		r.roundsPublished.Add(1)
	}
	published := time.Since(start)
	r.setPhase("drain")
	deadline := time.Now().Add(cfg.DrainTimeout)
	want := perRound * r.roundsPublished.Load()
	for ctx.Err() == nil && time.Now().Before(deadline) && r.deliveredCount() < want {
		sleep(ctx, 2*time.Millisecond)
	}
	total := time.Since(start)

	fr.RoundsPublished = r.roundsPublished.Load()
	fr.MessagesPublished = r.published.Load()
	fr.PublishDurationMS = ms(published)
	if published > 0 && fr.RoundsPublished > 1 {
		// n rounds on a schedule span n-1 intervals.
		fr.RoundsPerSec = float64(fr.RoundsPublished-1) / published.Seconds()
	}
	fr.Delivered = r.deliveredCount()
	fr.DurationMS = ms(total)
	if total > 0 {
		fr.DeliveriesPerSec = float64(fr.Delivered) / total.Seconds()
	}
	fr.NoListener = r.noListener.Load()
	// Rounds never published are the stopping failure's (timeout,
	// interrupted, publish, stalled); undelivered counts what was sent.
	if missing := perRound*fr.RoundsPublished - fr.Delivered; missing > 0 {
		r.failN("undelivered", missing, fmt.Errorf("%d of %d published deliveries missing %v after the last publish (--drain-timeout)",
			missing, perRound*fr.RoundsPublished, cfg.DrainTimeout))
	}
	return fr
}

// awaitWindow blocks until fewer than Window rounds before k are still
// being delivered. It reports false when delivery stopped progressing.
func (r *runner) awaitWindow(ctx context.Context, k int, completed *int) bool {
	per := r.perRound.Load()
	last := time.Now()
	for {
		for *completed < k && r.rounds[*completed].Load() >= per {
			*completed++
			last = time.Now()
		}
		if k-*completed < r.cfg.Window {
			return true
		}
		if time.Since(last) > r.cfg.DrainTimeout {
			return false
		}
		select {
		case <-ctx.Done():
			return true
		case <-r.roundDone:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// closeAll resets every socket (SO_LINGER 0: no TIME_WAIT left on this
// side to eat the port range of the next run) and waits for the readers.
// The read loops stop first: they read descriptors outside Go's
// bookkeeping, which must not be closed under them.
func (r *runner) closeAll() {
	r.closing.Store(true)
	r.loops.stop()
	for _, c := range r.clients {
		if c == nil {
			continue
		}
		if c.nc == nil { // a read loop's
			resetSocket(c.fd)
			continue
		}
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.nc.Close()
	}
	done := make(chan struct{})
	go func() { r.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// fail counts err under its kind (from a *failure, else kind).
func (r *runner) fail(kind string, err error) { r.failN(kind, 1, err) }

func (r *runner) failN(kind string, n int64, err error) {
	if f, ok := err.(*failure); ok {
		kind, err = f.kind, f.err
	}
	if kind == "" {
		kind = "other"
	}
	r.failMu.Lock()
	defer r.failMu.Unlock()
	r.failures[kind] += n
	if _, seen := r.examples[kind]; !seen {
		r.examples[kind] = err.Error()
	}
}

func (r *runner) failureTotal() int64 {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	var n int64
	for _, v := range r.failures {
		n += v
	}
	return n
}

// since is the monotonic time since the run started.
// startReading gives c, subscribed, to a read loop, or else to a
// goroutine of its own.
func (r *runner) startReading(c *client) {
	if r.loops != nil {
		err := r.loops.add(c)
		if err == nil {
			return
		}
		r.fail("read_loop", err)
	}
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		c.readerDone(c.read())
	}()
}

func (r *runner) since() time.Duration { return time.Since(r.start) }

func (r *runner) setPhase(p string) { r.phase.Store(&p) }

// startProgress prints one line a second until the returned func is called.
func (r *runner) startProgress() (stop func()) {
	if r.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(r.progress, r.progressLine())
			}
		}
	}()
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func (r *runner) progressLine() string {
	phase := "start"
	if p := r.phase.Load(); p != nil {
		phase = *p
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bench %s %4.0fs %-9s connected %d/%d", r.cfg.Scenario, r.since().Seconds(), phase,
		r.connected.Load()-r.lost.Load(), r.cfg.Connections)
	if r.cfg.Scenario == ScenarioFanout || !r.cfg.NoSubscribe {
		fmt.Fprintf(&b, ", subscribed %d", r.subscribed.Load())
	}
	if r.cfg.Scenario == ScenarioFanout && r.perRound.Load() > 0 {
		fmt.Fprintf(&b, ", round %d/%d, delivered %d/%d", r.roundsPublished.Load(), r.cfg.Broadcasts,
			r.deliveredCount(), r.perRound.Load()*int64(r.cfg.Broadcasts))
		if lat := r.latency(); lat.count() > 0 {
			fmt.Fprintf(&b, ", p99 %s", fmtMS(ms(lat.quantile(0.99))))
		}
	}
	fmt.Fprintf(&b, ", failed %d", r.failureTotal())
	return b.String()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// hostname is for the result header only.
func hostname() string {
	h, _ := os.Hostname()
	return h
}
