package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// knownSkipReasons start at 0 for every backend, so alerts and rate() work
// before the first bad job; reasons a watcher reports beyond these appear
// when they first occur.
var knownSkipReasons = []string{"malformed_json", "missing_field", "too_large", "unmappable"}

// jobCollector reads the job runners' counters at scrape time.
type jobCollector struct {
	stats                          []*jobs.Stats
	events, lag, skipped, unmapped *prometheus.Desc
	watching                       *prometheus.Desc
}

func newJobCollector(stats []*jobs.Stats) *jobCollector {
	return &jobCollector{stats: stats,
		events: prometheus.NewDesc("cablecar_job_events_total",
			"Job events published, by backend and status (running, progress, completed, retrying, dead, lost, failed).", []string{"backend", "status"}, nil),
		lag: prometheus.NewDesc("cablecar_job_watch_lag_seconds",
			"How far the watcher's last read is behind the backend's newest data.", []string{"backend"}, nil),
		skipped: prometheus.NewDesc("cablecar_job_skipped_total",
			"Jobs passed over as bad data (malformed JSON, missing fields, too large, no stream renders), by reason.", []string{"backend", "reason"}, nil),
		unmapped: prometheus.NewDesc("cablecar_job_unmapped_total",
			"Job events dropped because no CABLECAR_JOB_STREAMS rule covers their class.", []string{"backend"}, nil),
		watching: prometheus.NewDesc("cablecar_job_watching",
			"1 when this node holds the backend's lease and watches it, else 0 (another node does).", []string{"backend"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.lag, c.skipped, c.unmapped, c.watching} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.stats {
		b := st.Backend()
		snap := st.Snapshot()
		for _, s := range jobs.Statuses {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(snap.Events[s]), b, string(s))
		}
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, snap.LagSeconds, b)
		for _, r := range knownSkipReasons {
			if _, seen := snap.Skipped[r]; !seen {
				ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, 0, b, r)
			}
		}
		for r, n := range snap.Skipped {
			ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(n), b, r)
		}
		ch <- prometheus.MustNewConstMetric(c.unmapped, prometheus.CounterValue, float64(snap.Unmapped), b)
		watching := 0.0
		if snap.Watching {
			watching = 1
		}
		ch <- prometheus.MustNewConstMetric(c.watching, prometheus.GaugeValue, watching, b)
	}
}
