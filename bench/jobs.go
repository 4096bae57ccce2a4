package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ScenarioJobs is the job watcher benchmark (RunJobs).
const ScenarioJobs = "jobs"

// Backends whose writes RunJobs imitates.
const (
	BackendSidekiq = "sidekiq"
	BackendBullMQ  = "bullmq"
)

// Defaults of JobsConfig.
const (
	DefaultRetrySet      = 100_000
	DefaultJobRate       = 1000
	DefaultJobDuration   = 30 * time.Second
	DefaultJobDrain      = 30 * time.Second
	DefaultHugeBytes     = 80 << 10 // over the watcher's 64 KiB MaxJobBytes
	DefaultJobsBackend   = BackendSidekiq
	DefaultJobsQueue     = "bench"
	DefaultBullMQPrefix  = "bull"
	MaxRetrySet          = 5_000_000
	MaxJobRate           = 50_000
	MaxJobDuration       = 10 * time.Minute
	seedPipeline         = 1000
	seedMinAge           = 10.0 // seconds before the seeding, see seedEntry
	writeTick            = 10 * time.Millisecond
	sampleEvery          = 250 * time.Millisecond
	jobsSettleAfterWrite = 500 * time.Millisecond
)

// JobsConfig describes one job watcher benchmark: a Sidekiq retry set of
// RetrySet entries, then Rate failures a second for Duration, against a
// cablecar that watches that Redis (CABLECAR_JOBS_SIDEKIQ_URL) with
// CABLECAR_JOB_STREAMS=JobsStreamRule.
type JobsConfig struct {
	// Backend is the job backend whose writes are imitated: "sidekiq"
	// (default; the server needs CABLECAR_JOBS_SIDEKIQ_URL) or "bullmq"
	// (CABLECAR_JOBS_BULLMQ_URL, CABLECAR_JOBS_BULLMQ_QUEUES=Queue).
	Backend string
	// Queue is the BullMQ queue written to (default "bench").
	Queue string
	// BullMQPrefix is BullMQ's key prefix (default "bull").
	BullMQPrefix string
	// RedisURL is the Redis the server watches and publishes to (required).
	RedisURL string
	// Prefix is the server's CABLECAR_CHANNEL_PREFIX (default "").
	Prefix string
	// Namespace is the server's CABLECAR_JOBS_SIDEKIQ_NAMESPACE (default "").
	Namespace string
	// Reset deletes the retry set before seeding: for a Redis of the
	// benchmark's own only.
	Reset bool
	// RetrySet is how many entries to seed (default 100,000; -1: none):
	// Sidekiq's retry set, or BullMQ's delayed jobs.
	RetrySet int
	// Rate is failures written per second (default 1000).
	Rate int
	// Duration is how long they are written (default 30s).
	Duration time.Duration
	// BadEvery makes every BadEvery-th written entry bad, in turn
	// malformed JSON, an unknown class and huge arguments (default 0:
	// none).
	BadEvery int
	// HugeBytes is the size of a huge entry's argument (default 80 KiB).
	HugeBytes int
	// PID is the server's process id, for its CPU and RSS.
	PID int
	// AdminURL is the server's admin listener, e.g. http://127.0.0.1:9090,
	// for its job metrics (default: not read).
	AdminURL string
	// Drain bounds the wait for deliveries after the last write (default
	// 30s); Timeout bounds the whole run (default Duration + Drain + 5m).
	Drain   time.Duration
	Timeout time.Duration
	// AllowRemote permits non-loopback targets.
	AllowRemote bool
	// Seed seeds the random numbers (default: random).
	Seed uint64
}

func (c JobsConfig) withDefaults() JobsConfig {
	if c.Backend == "" {
		c.Backend = DefaultJobsBackend
	}
	if c.Queue == "" {
		c.Queue = DefaultJobsQueue
	}
	if c.BullMQPrefix == "" {
		c.BullMQPrefix = DefaultBullMQPrefix
	}
	if c.RetrySet == 0 {
		c.RetrySet = DefaultRetrySet
	} else if c.RetrySet < 0 {
		c.RetrySet = 0
	}
	if c.Rate == 0 {
		c.Rate = DefaultJobRate
	}
	if c.Duration == 0 {
		c.Duration = DefaultJobDuration
	}
	if c.Drain == 0 {
		c.Drain = DefaultJobDrain
	}
	if c.HugeBytes == 0 {
		c.HugeBytes = DefaultHugeBytes
	}
	if c.Timeout == 0 {
		c.Timeout = c.Duration + c.Drain + 5*time.Minute
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return c
}

// Validate reports every problem at once. It expects defaults applied.
func (c JobsConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Backend != BackendSidekiq && c.Backend != BackendBullMQ {
		bad("backend %q is not %s or %s", c.Backend, BackendSidekiq, BackendBullMQ)
	}
	loop := Config{AllowRemote: c.AllowRemote}
	if c.RedisURL == "" {
		bad("--redis URL is required: the Redis the server watches")
	} else if u, err := url.Parse(c.RedisURL); err != nil {
		bad("redis %q: %v", c.RedisURL, err)
	} else {
		errs = append(errs, loop.checkLoopback("redis", u.Hostname()))
	}
	if c.AdminURL != "" {
		if u, err := url.Parse(c.AdminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			bad("admin %q is not an http(s) URL", c.AdminURL)
		} else {
			errs = append(errs, loop.checkLoopback("admin", u.Hostname()))
		}
	}
	if c.RetrySet > MaxRetrySet {
		bad("retry-set %d is over %d", c.RetrySet, MaxRetrySet)
	}
	if c.Rate < 1 || c.Rate > MaxJobRate {
		bad("rate %d is outside 1…%d", c.Rate, MaxJobRate)
	}
	if c.Duration <= 0 || c.Duration > MaxJobDuration {
		bad("duration %v is outside (0, %v]", c.Duration, MaxJobDuration)
	}
	if c.BadEvery < 0 {
		bad("bad-every %d is negative", c.BadEvery)
	}
	if c.HugeBytes < 1 || c.HugeBytes > 16<<20 {
		bad("huge-bytes %d is outside 1…%d", c.HugeBytes, 16<<20)
	}
	if c.PID < 0 {
		bad("pid %d is negative", c.PID)
	}
	if c.Drain < 0 || c.Timeout < 0 {
		bad("drain and timeout must not be negative")
	}
	return errors.Join(errs...)
}

func (c JobsConfig) key(name string) string {
	if c.Namespace == "" {
		return name
	}
	return c.Namespace + ":" + name
}

func (c JobsConfig) channel() string {
	if c.Prefix == "" {
		return JobsStream
	}
	return c.Prefix + ":" + JobsStream
}

// RunJobs seeds the retry set, writes failures at the configured rate,
// counts what the server publishes and measures what it cost. Progress,
// if not nil, gets a line per phase.
func RunJobs(ctx context.Context, cfg JobsConfig, progress io.Writer) (*JobsResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	opt, err := goredis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis %q: %w", cfg.RedisURL, err)
	}
	opt.ClientName = "cablecar-bench-jobs"
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	logf := func(format string, a ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", a...)
		}
	}
	run := &jobsRun{cfg: cfg, rdb: rdb, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		runID: uint32(cfg.Seed >> 32), logf: logf}
	run.w = newJobWriter(cfg, run.runID, run.rng)
	res := &JobsResult{Scenario: ScenarioJobs, Date: time.Now().UTC(), Host: hostname(), Backend: cfg.Backend,
		Source: run.w.source(), RetrySet: cfg.RetrySet, Rate: cfg.Rate,
		DurationS: cfg.Duration.Seconds(), BadEvery: cfg.BadEvery, LoadAvgStart: loadAvg()}
	if err := run.seed(ctx, res); err != nil {
		return res, err
	}
	if err := run.measure(ctx, res); err != nil {
		return res, err
	}
	res.LoadAvgEnd = loadAvg()
	return res, nil
}

// jobsRun is the state of one RunJobs.
type jobsRun struct {
	cfg   JobsConfig
	rdb   *goredis.Client
	rng   *rand.Rand
	runID uint32
	w     jobWriter
	logf  func(string, ...any)
}

// seed writes the backlog's entries in pipelines of seedPipeline.
func (r *jobsRun) seed(ctx context.Context, res *JobsResult) error {
	if r.cfg.Reset {
		if err := r.rdb.Del(ctx, r.w.keys()...).Err(); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	start := time.Now()
	now := float64(start.UnixMicro()) / 1e6
	for i := 0; i < r.cfg.RetrySet; {
		pipe := r.rdb.Pipeline()
		for n := 0; n < seedPipeline && i < r.cfg.RetrySet; n, i = n+1, i+1 {
			r.w.seed(ctx, pipe, i, now)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	size, err := r.w.size(ctx, r.rdb)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	res.RetrySetSize = size
	res.SeedMS = ms(time.Since(start))
	r.logf("seeded %d entries in %.1f s; the set holds %d", r.cfg.RetrySet, time.Since(start).Seconds(), size)
	return nil
}

// measure writes the failures, counts the published events and samples
// the server and Redis around it.
func (r *jobsRun) measure(ctx context.Context, res *JobsResult) error {
	sub := newJobsSubscriber(r.rdb, r.cfg.channel(), r.runID)
	if err := sub.start(ctx); err != nil {
		return err
	}
	defer sub.close()
	var scr *metricsScraper
	if r.cfg.AdminURL != "" {
		scr = newMetricsScraper(r.cfg.AdminURL, r.cfg.Backend)
	}
	before, err := r.snapshot(ctx, scr)
	if err != nil {
		return err
	}
	samp := newSampler(r.cfg.PID, scr)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { samp.run(sctx) })
	w, err := r.write(ctx)
	res.Written = w
	if err == nil {
		r.logf("wrote %d entries (%d good) in %.1f s; waiting for deliveries", w.Total, w.Good, w.Seconds)
		res.Delivery.DrainMS = ms(sub.wait(ctx, int64(w.Good), r.cfg.Drain))
		if scr != nil && w.Good < w.Total {
			// A bad entry is counted by the poll whose span holds its
			// score minus the smallest backoff: up to the jitter (9 s)
			// after its failure, later than the good ones are delivered.
			r.waitCounted(ctx, scr, before.metrics, w, r.cfg.Drain-time.Duration(res.Delivery.DrainMS)*time.Millisecond)
		}
		time.Sleep(jobsSettleAfterWrite) // late duplicates, the last metrics
	}
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	after, err := r.snapshot(ctx, scr)
	if err != nil {
		return err
	}
	res.fill(before, after, sub, samp)
	if res.Server != nil {
		res.Server.PID = r.cfg.PID
	}
	return nil
}

// waitCounted waits, at most bound, until the server's metrics have
// counted every bad entry of w since before.
func (r *jobsRun) waitCounted(ctx context.Context, scr *metricsScraper, before map[string]float64, w written, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, err := scr.scrape(ctx)
		if err == nil {
			d := func(k string) int64 { return int64(m[k] - before[k]) }
			if d(seriesSkipped+`malformed_json"}`) >= w.Malformed && d(seriesSkipped+`too_large"}`) >= w.Huge && d(seriesUnmapped) >= w.Unknown {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// written counts the entries one run wrote.
type written struct {
	Total     int64   `json:"total"`
	Good      int64   `json:"good"`
	Malformed int64   `json:"malformed_json"`
	Unknown   int64   `json:"unknown_class"`
	Huge      int64   `json:"huge_args"`
	Seconds   float64 `json:"seconds"`
}

// write ZADDs Rate failures a second for Duration, in a pipeline every
// writeTick, each entry stamped with the time it is written.
func (r *jobsRun) write(ctx context.Context) (written, error) {
	var w written
	total := int64(float64(r.cfg.Rate) * r.cfg.Duration.Seconds())
	start := time.Now()
	t := time.NewTicker(writeTick)
	defer t.Stop()
	var seq uint64
	for int64(seq) < total {
		select {
		case <-ctx.Done():
			return w, fmt.Errorf("write failures: %w", ctx.Err())
		case <-t.C:
		}
		due := min(total, int64(time.Since(start).Seconds()*float64(r.cfg.Rate)))
		if int64(seq) >= due {
			continue
		}
		now := float64(time.Now().UnixMicro()) / 1e6
		pipe := r.rdb.Pipeline()
		for ; int64(seq) < due; seq++ {
			kind := badKind(seq, r.cfg.BadEvery)
			r.w.fail(ctx, pipe, seq, now, kind)
			w.count(kind)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return w, fmt.Errorf("write failures: %w", err)
		}
	}
	w.Seconds = time.Since(start).Seconds()
	return w, nil
}

func (w *written) count(kind int) {
	w.Total++
	switch kind {
	case badMalformed:
		w.Malformed++
	case badUnknown:
		w.Unknown++
	case badHuge:
		w.Huge++
	default:
		w.Good++
	}
}

// loadAvg is the one-minute load average, 0 when unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscan(string(b), &l)
	return l
}
