package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// jobsSubscriber counts the job events the server publishes on the
// benchmark's stream, each job of this run once.
type jobsSubscriber struct {
	rdb     *goredis.Client
	channel string
	runID   uint32
	ps      *goredis.PubSub
	done    chan struct{}

	mu         sync.Mutex
	seen       map[uint64]bool
	unique     int64 // events of this run's written jobs, once each
	duplicates int64 // an event for a job already seen
	seedEvents int64 // an event for a seeded entry (should not happen)
	foreign    int64 // another run's, or not a job event
	badStatus  int64 // an event of this run that is not "retrying"
	dupJIDs    []string
	// delay is failure (the event's "at") to arrival here, first
	// deliveries only.
	delay histogram
}

func newJobsSubscriber(rdb *goredis.Client, channel string, runID uint32) *jobsSubscriber {
	return &jobsSubscriber{rdb: rdb, channel: channel, runID: runID, seen: map[uint64]bool{}, done: make(chan struct{})}
}

// start subscribes and returns once Redis confirmed the subscription.
func (s *jobsSubscriber) start(ctx context.Context) error {
	s.ps = s.rdb.Subscribe(ctx, s.channel)
	if _, err := s.ps.Receive(ctx); err != nil {
		_ = s.ps.Close()
		return fmt.Errorf("subscribe %s: %w", s.channel, err)
	}
	go s.read()
	return nil
}

func (s *jobsSubscriber) read() {
	defer close(s.done)
	for m := range s.ps.Channel(goredis.WithChannelSize(1 << 16)) {
		s.note([]byte(m.Payload))
	}
}

// wireJob is the part of a published job event the count needs.
type wireJob struct {
	Type   string `json:"type"`
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	At     string `json:"at"`
}

func (s *jobsSubscriber) note(payload []byte) {
	var w wireJob
	err := json.Unmarshal(payload, &w)
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := parseJID(s.runID, w.JobID)
	switch {
	case err != nil || w.Type != "job" || !ok:
		s.foreign++
	case seq&seedBit != 0:
		s.seedEvents++
	case w.Status != "retrying":
		s.badStatus++
	case s.seen[seq]:
		s.duplicates++
		if len(s.dupJIDs) < 5 {
			s.dupJIDs = append(s.dupJIDs, w.JobID)
		}
	default:
		s.seen[seq] = true
		s.unique++
		if at, err := time.Parse(time.RFC3339Nano, w.At); err == nil {
			s.delay.record(max(0, time.Since(at)))
		}
	}
}

func (s *jobsSubscriber) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unique
}

// wait returns when want events arrived or drain passed, with the time it
// waited.
func (s *jobsSubscriber) wait(ctx context.Context, want int64, drain time.Duration) time.Duration {
	start := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.count() < want && time.Since(start) < drain {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-t.C:
		}
	}
	return time.Since(start)
}

func (s *jobsSubscriber) close() {
	_ = s.ps.Close()
	<-s.done
}

// metricsScraper reads the server's job metrics from its admin /metrics.
type metricsScraper struct {
	url     string
	backend string
	client  *http.Client
}

func newMetricsScraper(adminURL, backend string) *metricsScraper {
	return &metricsScraper{url: strings.TrimSuffix(adminURL, "/") + "/metrics", backend: backend, client: &http.Client{Timeout: 5 * time.Second}}
}

// scrape returns every cablecar_job_* series of the backend (see
// parseJobMetrics).
func (m *metricsScraper) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read server metrics: GET %s: %s", m.url, resp.Status)
	}
	return parseJobMetrics(io.LimitReader(resp.Body, 8<<20), m.backend)
}

// parseJobMetrics picks the cablecar_job_ series of backend out of a
// Prometheus text exposition, keyed without the backend label
// (`cablecar_job_events_total{status="retrying"}`).
func parseJobMetrics(r io.Reader, backend string) (map[string]float64, error) {
	label := `backend="` + backend + `"`
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cablecar_job_") || !strings.Contains(line, label) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		key := strings.Replace(strings.Replace(line[:i], label+",", "", 1), label, "", 1)
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read server metrics: %w", err)
	}
	return out, nil
}

// Series names the result reads, without the backend label.
const (
	seriesLag      = `cablecar_job_watch_lag_seconds{}`
	seriesUnmapped = `cablecar_job_unmapped_total{}`
	seriesRetrying = `cablecar_job_events_total{status="retrying"}`
	seriesSkipped  = `cablecar_job_skipped_total{reason="`
)

// jobsSnapshot is the state of the server and Redis at one moment.
type jobsSnapshot struct {
	at       time.Time
	proc     *procSample
	redisCPU float64 // used_cpu_user + used_cpu_sys, seconds
	redisMem int64   // used_memory
	cmds     map[string]CommandStat
	metrics  map[string]float64
}

func (r *jobsRun) snapshot(ctx context.Context, scr *metricsScraper) (jobsSnapshot, error) {
	s := jobsSnapshot{at: time.Now()}
	if r.cfg.PID > 0 {
		p, err := readProc(strconv.Itoa(r.cfg.PID))
		if err != nil {
			return s, err
		}
		s.proc = &p
	}
	info, err := r.rdb.Info(ctx, "cpu", "memory", "commandstats").Result()
	if err != nil {
		return s, fmt.Errorf("redis INFO: %w", err)
	}
	s.redisCPU, s.redisMem, s.cmds = parseRedisInfo(info)
	if scr != nil {
		if s.metrics, err = scr.scrape(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// CommandStat is one command's line of INFO commandstats.
type CommandStat struct {
	Calls int64 `json:"calls"`
	USec  int64 `json:"usec"`
}

// parseRedisInfo reads CPU seconds, used_memory and the command stats.
func parseRedisInfo(info string) (cpu float64, mem int64, cmds map[string]CommandStat) {
	cmds = map[string]CommandStat{}
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		case k == "used_memory":
			mem, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(k, "cmdstat_"):
			var c CommandStat
			for f := range strings.SplitSeq(v, ",") {
				fk, fv, _ := strings.Cut(f, "=")
				switch fk {
				case "calls":
					c.Calls, _ = strconv.ParseInt(fv, 10, 64)
				case "usec":
					c.USec, _ = strconv.ParseInt(fv, 10, 64)
				}
			}
			cmds[strings.TrimPrefix(k, "cmdstat_")] = c
		}
	}
	return cpu, mem, cmds
}

// sampler follows the server's RSS and the watcher's lag during a run.
type sampler struct {
	pid int
	scr *metricsScraper

	mu        sync.Mutex
	peakRSSKB int64
	maxLag    float64
	lagSeen   bool
}

func newSampler(pid int, scr *metricsScraper) *sampler { return &sampler{pid: pid, scr: scr} }

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample(ctx context.Context) {
	var rss int64
	if s.pid > 0 {
		if p, err := readProc(strconv.Itoa(s.pid)); err == nil {
			rss = p.rssKB
		}
	}
	lag, lagOK := 0.0, false
	if s.scr != nil {
		if m, err := s.scr.scrape(ctx); err == nil {
			lag, lagOK = m[seriesLag]
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peakRSSKB = max(s.peakRSSKB, rss)
	if lagOK {
		s.maxLag, s.lagSeen = max(s.maxLag, lag), true
	}
}
