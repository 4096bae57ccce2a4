package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// JobsResult is what one job watcher benchmark measured; it marshals to
// the --json output.
type JobsResult struct {
	Scenario string    `json:"scenario"`
	Date     time.Time `json:"date"`
	Host     string    `json:"host"`
	Backend  string    `json:"backend"`
	// Source names what the load tool wrote to make the events.
	Source string `json:"source"`
	// RetrySet is the entries seeded; RetrySetSize the set's size after.
	RetrySet     int     `json:"retry_set_seeded"`
	RetrySetSize int64   `json:"retry_set_size"`
	SeedMS       float64 `json:"seed_ms"`
	Rate         int     `json:"rate"`
	DurationS    float64 `json:"duration_s"`
	BadEvery     int     `json:"bad_every,omitempty"`
	// One-minute load averages when the run started and ended.
	LoadAvgStart float64 `json:"loadavg_start"`
	LoadAvgEnd   float64 `json:"loadavg_end"`

	Written written `json:"written"`
	// Delivery counts the events published on the benchmark's stream.
	Delivery JobsDelivery `json:"delivery"`
	// Server is cablecar's cost (with --pid); Redis is the whole Redis
	// server's, the load tool's writes included. Both cover the measured
	// phase (first write to drained), not the seeding.
	Server  *JobsServer `json:"server,omitempty"`
	Redis   JobsRedis   `json:"redis"`
	Metrics *JobsMetric `json:"metrics,omitempty"`
	// Problems lists why the run is not clean; empty when it is.
	Problems []string `json:"problems,omitempty"`
}

// JobsDelivery counts the events the server published.
type JobsDelivery struct {
	Expected   int64 `json:"expected"`  // good entries written
	Published  int64 `json:"published"` // distinct jobs of this run, status retrying
	Duplicates int64 `json:"duplicates"`
	// DuplicateJIDs are the first few jobs delivered more than once.
	DuplicateJIDs []string `json:"duplicate_jids,omitempty"`
	SeedEvents    int64    `json:"seed_events"` // events for seeded entries: none expected
	BadStatus     int64    `json:"bad_status"`
	Foreign       int64    `json:"foreign"`  // not this run's jobs
	DrainMS       float64  `json:"drain_ms"` // last write to last delivery (or the drain bound)
	// Delay is from the job's failure (the event's "at", milliseconds) to
	// the event's arrival at the load tool: the watcher's Settle, its
	// polling and the publish.
	Delay *Latency `json:"delay_ms,omitempty"`
}

// JobsServer is cablecar's CPU and memory over the measured phase.
type JobsServer struct {
	PID                int     `json:"pid"`
	CPUMS              float64 `json:"cpu_ms"`
	CPUPer1000EventsMS float64 `json:"cpu_ms_per_1000_events"`
	CPUPercent         float64 `json:"cpu_percent"` // of one core, over the phase
	RSSStartKB         int64   `json:"rss_start_kb"`
	RSSEndKB           int64   `json:"rss_end_kb"`
	RSSPeakKB          int64   `json:"rss_peak_kb"` // largest sample, every 250 ms
	HWMKB              int64   `json:"hwm_kb"`      // VmHWM: since the process started
}

// JobsRedis is Redis's CPU and memory over the measured phase.
type JobsRedis struct {
	CPUMS              float64                `json:"cpu_ms"`
	CPUPer1000EventsMS float64                `json:"cpu_ms_per_1000_events"`
	UsedMemoryStart    int64                  `json:"used_memory_start"`
	UsedMemoryEnd      int64                  `json:"used_memory_end"`
	Commands           map[string]CommandStat `json:"commands"` // deltas
}

// JobsMetric is what the server's metrics counted over the phase.
type JobsMetric struct {
	LagMaxS  float64 `json:"lag_max_s"`
	LagEndS  float64 `json:"lag_end_s"`
	Retrying int64   `json:"events_retrying"`
	// Skipped is by reason; Unmapped the events of classes without a rule.
	Skipped  map[string]int64 `json:"skipped"`
	Unmapped int64            `json:"unmapped"`
}

// fill computes the result from the snapshots around the phase.
func (res *JobsResult) fill(before, after jobsSnapshot, sub *jobsSubscriber, samp *sampler) {
	sub.mu.Lock()
	res.Delivery = JobsDelivery{Expected: res.Written.Good, Published: sub.unique, Duplicates: sub.duplicates, DuplicateJIDs: sub.dupJIDs,
		SeedEvents: sub.seedEvents, BadStatus: sub.badStatus, Foreign: sub.foreign, DrainMS: res.Delivery.DrainMS}
	if sub.delay.count() > 0 {
		res.Delivery.Delay = sub.delay.summary()
	}
	sub.mu.Unlock()
	wall := after.at.Sub(before.at)
	per1000 := func(msv float64) float64 {
		if res.Written.Total == 0 {
			return 0
		}
		return msv * 1000 / float64(res.Written.Total)
	}
	if before.proc != nil && after.proc != nil {
		cpu := ms(after.proc.cpu - before.proc.cpu)
		samp.mu.Lock()
		peak := max(samp.peakRSSKB, before.proc.rssKB, after.proc.rssKB)
		samp.mu.Unlock()
		res.Server = &JobsServer{CPUMS: cpu, CPUPer1000EventsMS: per1000(cpu),
			CPUPercent: 100 * cpu / ms(wall), RSSStartKB: before.proc.rssKB, RSSEndKB: after.proc.rssKB,
			RSSPeakKB: peak, HWMKB: after.proc.hwmKB}
	}
	rcpu := (after.redisCPU - before.redisCPU) * 1000
	res.Redis = JobsRedis{CPUMS: rcpu, CPUPer1000EventsMS: per1000(rcpu), UsedMemoryStart: before.redisMem,
		UsedMemoryEnd: after.redisMem, Commands: map[string]CommandStat{}}
	for name, a := range after.cmds {
		b := before.cmds[name]
		if d := (CommandStat{Calls: a.Calls - b.Calls, USec: a.USec - b.USec}); d.Calls > 0 {
			res.Redis.Commands[name] = d
		}
	}
	if after.metrics != nil {
		m := &JobsMetric{LagEndS: after.metrics[seriesLag], Skipped: map[string]int64{},
			Retrying: int64(after.metrics[seriesRetrying] - before.metrics[seriesRetrying]),
			Unmapped: int64(after.metrics[seriesUnmapped] - before.metrics[seriesUnmapped])}
		for k, v := range after.metrics {
			if reason, ok := strings.CutPrefix(k, seriesSkipped); ok {
				if d := int64(v - before.metrics[k]); d != 0 {
					m.Skipped[strings.TrimSuffix(reason, `"}`)] = d
				}
			}
		}
		samp.mu.Lock()
		m.LagMaxS = max(samp.maxLag, m.LagEndS)
		samp.mu.Unlock()
		res.Metrics = m
	}
	res.Problems = res.problems()
}

// problems compares what was written with what was delivered and counted.
func (res *JobsResult) problems() []string {
	var p []string
	d := res.Delivery
	if d.Published != d.Expected {
		p = append(p, fmt.Sprintf("delivered %d of %d events", d.Published, d.Expected))
	}
	if d.Duplicates > 0 || d.SeedEvents > 0 || d.BadStatus > 0 {
		p = append(p, fmt.Sprintf("%d duplicates %v, %d events for seeded entries, %d with another status", d.Duplicates, d.DuplicateJIDs, d.SeedEvents, d.BadStatus))
	}
	if m := res.Metrics; m != nil {
		w := res.Written
		want := map[string]int64{}
		if w.Malformed > 0 {
			want["malformed_json"] = w.Malformed
		}
		if w.Huge > 0 {
			want["too_large"] = w.Huge
		}
		if !maps.Equal(want, m.Skipped) {
			p = append(p, fmt.Sprintf("skipped %v, want %v", m.Skipped, want))
		}
		if m.Unmapped != w.Unknown {
			p = append(p, fmt.Sprintf("unmapped %d, want %d", m.Unmapped, w.Unknown))
		}
	}
	return p
}

// OK reports whether every good event arrived once and the bad ones were
// counted (when the metrics were read).
func (res *JobsResult) OK() bool { return len(res.Problems) == 0 }

// WriteText prints the result for a person.
func (res *JobsResult) WriteText(out io.Writer) {
	row := func(k, format string, a ...any) { fmt.Fprintf(out, "| %s | %s |\n", k, fmt.Sprintf(format, a...)) }
	fmt.Fprintf(out, "| bench jobs (%s) | %s |\n|---|---|\n", res.Backend, res.Date.Format(time.RFC3339))
	row("source", "%s", res.Source)
	row("retry set", "%d seeded in %.1f s, %d entries", res.RetrySet, res.SeedMS/1000, res.RetrySetSize)
	row("written", "%d at %d/s over %.1f s (%d good, %d malformed, %d unknown class, %d huge)",
		res.Written.Total, res.Rate, res.Written.Seconds, res.Written.Good, res.Written.Malformed, res.Written.Unknown, res.Written.Huge)
	d := res.Delivery
	row("published / expected", "%d / %d (duplicates %d, seed events %d, foreign %d); drained %.1f s after the last write",
		d.Published, d.Expected, d.Duplicates, d.SeedEvents, d.Foreign, d.DrainMS/1000)
	if l := d.Delay; l != nil {
		row("failure → event delay", "p50 %.0f ms, p99 %.0f ms, max %.0f ms", l.P50, l.P99, l.Max)
	}
	if s := res.Server; s != nil {
		row("cablecar CPU", "%.0f ms = **%.1f ms per 1,000 events** (%.1f%% of a core)", s.CPUMS, s.CPUPer1000EventsMS, s.CPUPercent)
		row("cablecar RSS", "start %.1f MiB, end %.1f MiB, peak %.1f MiB", mib(s.RSSStartKB), mib(s.RSSEndKB), mib(s.RSSPeakKB))
	}
	r := res.Redis
	row("Redis CPU", "%.0f ms = **%.1f ms per 1,000 events** (load tool's writes included)", r.CPUMS, r.CPUPer1000EventsMS)
	row("Redis commands", "%s", topCommands(r.Commands, 6))
	row("Redis memory", "%.1f → %.1f MiB", float64(r.UsedMemoryStart)/(1<<20), float64(r.UsedMemoryEnd)/(1<<20))
	if m := res.Metrics; m != nil {
		row("watcher lag", "max %.2f s, end %.2f s", m.LagMaxS, m.LagEndS)
		row("bad data counted", "skipped %v, unmapped %d", m.Skipped, m.Unmapped)
	}
	row("load average", "%.2f → %.2f", res.LoadAvgStart, res.LoadAvgEnd)
	if len(res.Problems) > 0 {
		row("problems", "%s", strings.Join(res.Problems, "; "))
	}
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// topCommands names the n commands that took Redis the most time.
func topCommands(cmds map[string]CommandStat, n int) string {
	names := slices.SortedFunc(maps.Keys(cmds), func(a, b string) int { return int(cmds[b].USec - cmds[a].USec) })
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		c := cmds[name]
		parts = append(parts, fmt.Sprintf("%s %d calls %.0f ms", name, c.Calls, float64(c.USec)/1000))
	}
	return strings.Join(parts, ", ")
}
