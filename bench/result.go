package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Result is what one run measured. It marshals to the --json output.
type Result struct {
	Scenario     string    `json:"scenario"`
	Date         time.Time `json:"date"`
	Host         string    `json:"host"`
	Target       string    `json:"target"`
	Publisher    string    `json:"publisher,omitempty"`
	Connections  int       `json:"connections"`
	Concurrency  int       `json:"concurrency"`
	Streams      int       `json:"streams"`
	Subscribe    bool      `json:"subscribe"`
	Broadcasts   int       `json:"broadcasts_per_stream,omitempty"`
	Rate         float64   `json:"rate,omitempty"`   // rounds per second; 0 with Window: closed loop
	Window       int       `json:"window,omitempty"` // closed loop only
	PayloadBytes int       `json:"payload_bytes,omitempty"`
	Sources      []string  `json:"sources,omitempty"`
	// SchedBatch: the load tool ran as SCHED_BATCH (Config.NormalScheduling).
	SchedBatch bool `json:"sched_batch"`
	// ReadLoops: the load tool read with epoll loops, not a goroutine per
	// connection (Config.ReadGoroutines).
	ReadLoops bool `json:"read_loops"`
	// ClientMode names the load tool's mode: ClientLean (epoll loops,
	// SCHED_BATCH), ClientPlain (a goroutine per connection, normal
	// scheduling, as an ordinary client process) or "mixed".
	ClientMode string `json:"client_mode"`

	Connect ConnectResult `json:"connect"`
	Fanout  *FanoutResult `json:"fanout,omitempty"`
	// Slow is what became of the --slow connections; nil without them.
	Slow *SlowResult `json:"slow,omitempty"`

	// Failures counts problems by kind: dial_*, handshake*, welcome*,
	// rejected, confirm_timeout, disconnect_<reason>, server_close, read,
	// protocol, publish, undelivered, stalled, timeout, interrupted,
	// slow_connect.
	Failures        map[string]int64  `json:"failures"`
	FailureExamples map[string]string `json:"failure_examples,omitempty"`
	FailuresTotal   int64             `json:"failures_total"`
	// Frames seen besides the expected ones.
	Pings      int64 `json:"pings"`
	Unknown    int64 `json:"unknown_frames"`
	Foreign    int64 `json:"foreign_messages"` // broadcasts not from this run
	Misrouted  int64 `json:"misrouted"`        // a message for another stream
	OutOfOrder int64 `json:"out_of_order"`     // a stream's messages reordered or repeated

	Server   *ProcResult `json:"server,omitempty"`
	Client   *ProcResult `json:"client"`
	Warnings []string    `json:"warnings,omitempty"`
}

// ConnectResult is the connect phase.
type ConnectResult struct {
	Attempted  int64 `json:"attempted"`
	Connected  int64 `json:"connected"`  // welcomed
	Subscribed int64 `json:"subscribed"` // confirmed
	// DurationMS is from the first dial to the last welcome (or failure);
	// subscriptions are confirmed asynchronously and not included.
	DurationMS float64 `json:"duration_ms"`
	RatePerSec float64 `json:"rate_per_s"`
	// Latency is dial to welcome; SubscribeLatency subscribe to confirm.
	Latency          *Latency `json:"latency_ms,omitempty"`
	SubscribeLatency *Latency `json:"subscribe_latency_ms,omitempty"`
}

// FanoutResult is the publish and delivery phase.
type FanoutResult struct {
	RoundsPublished   int64   `json:"rounds_published"`
	MessagesPublished int64   `json:"messages_published"`
	PublishDurationMS float64 `json:"publish_duration_ms"`
	RoundsPerSec      float64 `json:"rounds_per_s"`
	Expected          int64   `json:"expected"` // confirmed subscriptions × broadcasts per stream
	Delivered         int64   `json:"delivered"`
	// DurationMS is from the first publish until everything arrived (or
	// the drain timeout).
	DurationMS       float64 `json:"duration_ms"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	// Latency is from the publisher's timestamp in the payload to the
	// client reading the frame.
	Latency    *Latency `json:"latency_ms,omitempty"`
	NoListener int64    `json:"redis_no_listener,omitempty"` // PUBLISH answered 0
}

// Latency is a distribution in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// ProcResult is one process's memory and CPU over the run, from /proc.
type ProcResult struct {
	PID           int   `json:"pid,omitempty"`
	OpenFileLimit int64 `json:"open_file_limit,omitempty"`
	// RSS before connecting, once connected and subscribed (connect: after
	// Hold), and at the end; PeakRSSKB is VmHWM.
	RSSStartKB     int64 `json:"rss_start_kb"`
	RSSConnectedKB int64 `json:"rss_connected_kb"`
	RSSEndKB       int64 `json:"rss_end_kb,omitempty"`
	PeakRSSKB      int64 `json:"peak_rss_kb"`
	// RSSPerConnBytes is (connected − start) / open connections.
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes"`
	// CPU time (user + system) in the connect phase and in the fan-out
	// (first publish to drained); 10 ms resolution.
	CPUConnectMS            float64 `json:"cpu_connect_ms"`
	CPUFanoutMS             float64 `json:"cpu_fanout_ms,omitempty"`
	CPUPer1000DeliveriesMS  float64 `json:"cpu_ms_per_1000_deliveries,omitempty"`
	CPUPer1000ConnectionsMS float64 `json:"cpu_ms_per_1000_connections,omitempty"`
	// IdleCPUPercent is CPU time over wall time while the connect
	// scenario holds its connections (pings and nothing else), in percent
	// of one core.
	IdleCPUPercent float64 `json:"idle_cpu_percent,omitempty"`
}

func (p *ProcResult) fillIdle(start, end procSample, held time.Duration) {
	if p == nil || start.rssKB == 0 || end.rssKB == 0 || held <= 0 {
		return
	}
	p.IdleCPUPercent = 100 * float64(end.cpu-start.cpu) / float64(held)
}

func (p *ProcResult) fill(s0, s1, s2, s3 procSample, conns int64, fr *FanoutResult) {
	if p == nil || s0.rssKB == 0 {
		return
	}
	p.RSSStartKB, p.RSSConnectedKB, p.RSSEndKB = s0.rssKB, s2.rssKB, s3.rssKB
	p.PeakRSSKB = max(s2.hwmKB, s3.hwmKB)
	if conns > 0 {
		p.RSSPerConnBytes = float64(s2.rssKB-s0.rssKB) * 1024 / float64(conns)
		p.CPUPer1000ConnectionsMS = ms(s1.cpu-s0.cpu) / (float64(conns) / 1000)
	}
	p.CPUConnectMS = ms(s1.cpu - s0.cpu)
	if fr != nil && s3.rssKB > 0 {
		p.CPUFanoutMS = ms(s3.cpu - s2.cpu)
		if fr.Delivered > 0 {
			p.CPUPer1000DeliveriesMS = p.CPUFanoutMS / (float64(fr.Delivered) / 1000)
		}
	}
}

func (r *runner) newResult() *Result {
	cfg := r.cfg
	res := &Result{Scenario: cfg.Scenario, Host: hostname(), Target: cfg.URL, Connections: cfg.Connections,
		Concurrency: cfg.Concurrency, Streams: cfg.Streams, Sources: cfg.Sources, Client: &ProcResult{},
		Subscribe: cfg.Scenario == ScenarioFanout || !cfg.NoSubscribe}
	if cfg.Scenario == ScenarioFanout {
		res.Broadcasts, res.PayloadBytes = cfg.Broadcasts, cfg.PayloadSize
		if cfg.Rate > 0 {
			res.Rate = cfg.Rate
		} else {
			res.Window = cfg.Window
		}
	}
	return res
}

// finish copies the counters into res.
func (r *runner) finish(res *Result) {
	if res.Fanout != nil {
		res.Fanout.Latency = r.latency().summary()
	}
	r.failMu.Lock()
	res.Failures = maps.Clone(r.failures)
	res.FailureExamples = maps.Clone(r.examples)
	r.failMu.Unlock()
	for _, n := range res.Failures {
		res.FailuresTotal += n
	}
	res.Pings, res.Unknown, res.Foreign = r.pings.Load(), r.unknown.Load(), r.foreign.Load()
	res.Misrouted, res.OutOfOrder = r.misrouted.Load(), r.outOfOrder.Load()
}

// OK reports a clean run: every connection welcomed (and confirmed when
// subscribing), every delivery made, nothing misrouted or reordered, no
// failure of any kind.
func (res *Result) OK() bool {
	c := res.Connect
	ok := res.FailuresTotal == 0 && c.Connected == int64(res.Connections) && res.Misrouted == 0 && res.OutOfOrder == 0
	if res.Subscribe {
		ok = ok && c.Subscribed == c.Connected
	}
	if f := res.Fanout; f != nil {
		ok = ok && f.Delivered == f.Expected && f.Expected > 0
	}
	return ok
}

// WriteText prints the summary people read.
func (res *Result) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	head := fmt.Sprintf("cablecar bench %s: %s, %d connections", res.Scenario, res.Target, res.Connections)
	if res.Subscribe {
		head += fmt.Sprintf(" over %d stream%s", res.Streams, plural(res.Streams))
	}
	if res.Scenario == ScenarioFanout {
		pace := fmt.Sprintf("%g rounds/s", res.Rate)
		if res.Rate == 0 {
			pace = fmt.Sprintf("closed loop, window %d rounds", res.Window)
		}
		head += fmt.Sprintf(", %d broadcasts per stream at %s via %s", res.Broadcasts, pace, res.Publisher)
	}
	p("%s", head)
	p("  date         %s on %s, concurrency %d%s", res.Date.Format(time.RFC3339), res.Host, res.Concurrency, sourcesText(res.Sources))
	p("  load tool    %s", clientText(res))
	c := res.Connect
	p("  connect      %d/%d welcomed in %s (%.0f/s); dial→welcome %s", c.Connected, res.Connections,
		fmtMS(c.DurationMS), c.RatePerSec, latText(c.Latency))
	if res.Subscribe {
		p("  subscribe    %d/%d confirmed; subscribe→confirm %s", c.Subscribed, c.Connected, latText(c.SubscribeLatency))
	}
	if f := res.Fanout; f != nil {
		p("  publish      %d rounds, %d messages in %s (%.1f rounds/s)", f.RoundsPublished, f.MessagesPublished,
			fmtMS(f.PublishDurationMS), f.RoundsPerSec)
		pct := 0.0
		if f.Expected > 0 {
			pct = 100 * float64(f.Delivered) / float64(f.Expected)
		}
		p("  delivered    %d/%d (%.2f%%) in %s: %.0f deliveries/s", f.Delivered, f.Expected, pct, fmtMS(f.DurationMS), f.DeliveriesPerSec)
		p("  latency      %s (publish → received)", latText(f.Latency))
		if f.NoListener > 0 {
			p("  note         %d PUBLISHes reached no subscriber in Redis: check --prefix against CABLECAR_CHANNEL_PREFIX", f.NoListener)
		}
	}
	if res.Slow != nil {
		p("  slow         %s", res.Slow.text())
	}
	if res.FailuresTotal == 0 {
		p("  failures     none")
	} else {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(res.Failures)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, res.Failures[k]))
		}
		p("  failures     %d: %s", res.FailuresTotal, strings.Join(parts, ", "))
		for _, k := range slices.Sorted(maps.Keys(res.FailureExamples)) {
			p("    %-18s e.g. %s", k, res.FailureExamples[k])
		}
	}
	if res.Misrouted+res.OutOfOrder+res.Foreign+res.Unknown > 0 {
		p("  anomalies    misrouted %d, out of order %d, foreign %d, unknown frames %d",
			res.Misrouted, res.OutOfOrder, res.Foreign, res.Unknown)
	}
	if s := res.Server; s != nil {
		p("  server       %s", procText(s, res.Fanout != nil))
	}
	p("  client       %s", procText(res.Client, res.Fanout != nil))
	for _, w := range res.Warnings {
		p("  warning      %s", w)
	}
}

func procText(s *ProcResult, fanout bool) string {
	var b strings.Builder
	if s.PID > 0 {
		fmt.Fprintf(&b, "pid %d: ", s.PID)
	}
	if s.RSSStartKB == 0 {
		b.WriteString("not measured")
		return b.String()
	}
	fmt.Fprintf(&b, "RSS %s → %s connected (%.0f B/conn)", kib(s.RSSStartKB), kib(s.RSSConnectedKB), s.RSSPerConnBytes)
	if s.RSSEndKB > 0 {
		fmt.Fprintf(&b, " → %s end", kib(s.RSSEndKB))
	}
	fmt.Fprintf(&b, ", peak %s; CPU %s connecting", kib(s.PeakRSSKB), fmtMS(s.CPUConnectMS))
	if s.CPUPer1000ConnectionsMS > 0 {
		fmt.Fprintf(&b, " (%.1f ms/1000 conns)", s.CPUPer1000ConnectionsMS)
	}
	if fanout {
		fmt.Fprintf(&b, ", %s in fan-out = %.2f ms per 1000 deliveries", fmtMS(s.CPUFanoutMS), s.CPUPer1000DeliveriesMS)
	} else if s.IdleCPUPercent > 0 {
		fmt.Fprintf(&b, ", %.1f%% of a core while holding", s.IdleCPUPercent)
	}
	if s.OpenFileLimit > 0 {
		fmt.Fprintf(&b, "; open-file limit %d", s.OpenFileLimit)
	}
	return b.String()
}

func latText(l *Latency) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("p50 %s p90 %s p99 %s p99.9 %s max %s", fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
}

// fmtMS prints milliseconds with sensible precision.
func fmtMS(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

func kib(kb int64) string {
	if kb >= 10*1024 {
		return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
	}
	return fmt.Sprintf("%d KiB", kb)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func sourcesText(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ", sources " + strings.Join(s, ",")
}

// The load tool's client modes (Result.ClientMode).
const (
	// ClientLean reads with a few epoll loops and runs as SCHED_BATCH,
	// so that on a shared machine the tool takes as little from the
	// server as it can: the default.
	ClientLean = "lean"
	// ClientPlain reads each connection on a goroutine of its own at
	// normal scheduling, as an ordinary client process would
	// (--read-goroutines --normal-scheduling).
	ClientPlain = "plain"
	// ClientMixed is any other combination.
	ClientMixed = "mixed"
)

// clientMode names the mode of a run that read with loops (or not) and
// ran as SCHED_BATCH (or not).
func clientMode(loops, batch bool) string {
	switch {
	case loops && batch:
		return ClientLean
	case !loops && !batch:
		return ClientPlain
	}
	return ClientMixed
}

func clientText(res *Result) string {
	read := "a goroutine per connection"
	if res.ReadLoops {
		read = "epoll loops"
	}
	sched := "normal scheduling"
	if res.SchedBatch {
		sched = "SCHED_BATCH"
	}
	return fmt.Sprintf("%s (%s, %s)", res.ClientMode, read, sched)
}
