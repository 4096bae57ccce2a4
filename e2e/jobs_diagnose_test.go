package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestJobWatcherDiagnosis: a job class with no CABLECAR_JOB_STREAMS rule is
// never guessed at. It is counted in the metrics, named on the status API
// and by `cablecar doctor`, which also checks the backend itself; every
// job metric exists at 0 before the first event.
func TestJobWatcherDiagnosis(t *testing.T) {
	rs := redistest.Start(t)
	env := bullmqEnv(rs.URL)
	env["CABLECAR_JOB_STREAMS"] = "resize=document:{args.0.document_id}" // no * rule
	sc := startSidecar(t, env, "serve")

	metrics, err := httpGet("http://" + sc.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`cablecar_job_events_total{backend="bullmq",status="lost"} 0`,
		`cablecar_job_events_total{backend="bullmq",status="completed"} 0`,
		`cablecar_job_skipped_total{backend="bullmq",reason="malformed_json"} 0`,
		`cablecar_job_unmapped_total{backend="bullmq"} 0`,
		`cablecar_job_watch_lag_seconds{backend="bullmq"}`,
		`cablecar_job_watching{backend="bullmq"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	worker := jobstest.StartBullMQ(t, rs.URL, "docs")
	worker.Add("mystery", map[string]any{}, 1)
	worker.Add("resize", map[string]any{"document_id": 3}, 1)
	waitUntil(t, "the resize job's events", func() bool {
		m, _ := httpGet("http://" + sc.admin + "/metrics")
		return strings.Contains(m, `cablecar_job_events_total{backend="bullmq",status="completed"} 1`)
	})
	metrics, _ = httpGet("http://" + sc.admin + "/metrics")
	if !strings.Contains(metrics, `cablecar_job_unmapped_total{backend="bullmq"} 2`) { // running and completed
		t.Errorf("unmapped count: %s", grepLines(metrics, "cablecar_job_unmapped_total"))
	}
	if !strings.Contains(sc.logs(), `no CABLECAR_JOB_STREAMS rule for its class (logged once per class)" backend=bullmq class=mystery`) ||
		strings.Count(sc.logs(), "class=mystery") != 1 {
		t.Errorf("want one log line naming class mystery:\n%s", sc.logs())
	}

	denv := map[string]string{"CABLECAR_ADMIN_ADDR": sc.admin, "CABLECAR_ADDR": sc.addr}
	for k, v := range env {
		denv[k] = v
	}
	start := time.Now()
	out, _ := run(t, denv, "doctor", "--listen", "0")
	for _, want := range []string{
		"rules for 1 job classes (resize); no * rule",
		"bullmq: reachable",
		"classes without a CABLECAR_JOB_STREAMS rule: bullmq: mystery (2 events dropped)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("doctor took %v", time.Since(start).Round(time.Millisecond))
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
