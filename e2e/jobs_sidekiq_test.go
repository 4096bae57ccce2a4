package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/rails"
)

// sidekiqEnv watches the Sidekiq on redisURL, which is also the broker.
func sidekiqEnv(redisURL string) map[string]string {
	return map[string]string{
		"CABLECAR_REDIS_URL":        redisURL,
		"CABLECAR_CHANNEL_PREFIX":   "myapp",
		"CABLECAR_JWT_SECRET":       secret,
		"CABLECAR_GID_APP":          "cablecar-test",
		"CABLECAR_ROUTES":           "replay:OrderChannel=order:{params.id};replay:DocumentChannel={channel}:{gid:Document:params.id}",
		"CABLECAR_JOBS_SIDEKIQ_URL": redisURL,
		"CABLECAR_JOB_STREAMS":      "FailJob=order:{args.0};SleepActiveJob=document:{gid:Document:args.0}",
	}
}

// statusesOf waits until the job's events, kept to the statuses in keep,
// are exactly want, and returns them.
func statusesOf(t *testing.T, c *jsclient.Client, job string, timeout time.Duration, keep []string, want ...string) []jobEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []jobEvent
		var statuses []string
		for _, je := range jobEvents(t, c.Snapshot(), 0) {
			if je.JobID == job && slices.Contains(keep, je.Status) {
				got = append(got, je)
				statuses = append(statuses, je.Status)
			}
		}
		if slices.Equal(statuses, want) {
			return got
		}
		if len(statuses) > len(want) || !slices.Equal(statuses, want[:len(statuses)]) {
			t.Fatalf("job %s: statuses %v, want %v", job, statuses, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: statuses %v after %v, want %v", job, statuses, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSidekiqJobThatRaisesReachesRealJSClient: a real Sidekiq 6 runs a job
// with retry: 1 that raises every time. With no line of job code the page
// learns "retrying" with the error class, then "dead" once the retry
// failed too.
func TestSidekiqJobThatRaisesReachesRealJSClient(t *testing.T) {
	t.Parallel() // most of it is Sidekiq's retry delay (15 to 24 s)
	rs := redistest.Start(t)
	env := sidekiqEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	sk := jobstest.StartSidekiq(t, rs.URL)
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "order:*")),
		Subscriptions: []map[string]any{{"channel": "OrderChannel", "id": "o-17"}},
		Duration:      90 * time.Second,
	})
	waitEvent(t, c, jsclient.KindConnected)
	jid := sk.Enqueue("FailJob", "o-17")
	evs := statusesOf(t, c, jid, 60*time.Second, []string{"retrying", "dead"}, "retrying", "dead")
	r, d := evs[0], evs[1]
	if r.Backend != "sidekiq" || r.Class != "FailJob" || r.Queue != "default" || r.ErrorClass != "CablecarTestError" ||
		r.RetryCount == nil || *r.RetryCount != 0 || r.NextRetryAt == "" || r.ErrorMessage != nil {
		t.Errorf("retrying event %v", r)
	}
	if d.ErrorClass != "CablecarTestError" || d.RetryCount == nil || *d.RetryCount != 1 || d.NextRetryAt != "" {
		t.Errorf("dead event %v", d)
	}
}

// TestSidekiqKilledMidJobIsLost: a real Sidekiq runs an ActiveJob job whose
// argument is a record (a GlobalID on the wire), and is killed with
// SIGKILL mid-job. The page subscribed to that record's DocumentChannel
// learns "running", then "lost" once the dead process's heartbeat expires
// (60 s in Sidekiq 6), plus a poll.
func TestSidekiqKilledMidJobIsLost(t *testing.T) {
	t.Parallel() // most of it is waiting for the heartbeat to expire
	rs := redistest.Start(t)
	env := sidekiqEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	sk := jobstest.StartSidekiq(t, rs.URL)
	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + mustToken(t, env, "document:*")),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 5}},
		Duration:      120 * time.Second,
	})
	waitEvent(t, c, jsclient.KindConnected)
	jobID := sk.EnqueueActiveJob("SleepActiveJob", map[string]any{"document": 5}, 60)
	statusesOf(t, c, jobID, 20*time.Second, []string{"running", "lost", "completed"}, "running")
	killed := time.Now()
	sk.Kill()
	evs := statusesOf(t, c, jobID, 90*time.Second, []string{"running", "lost", "completed"}, "running", "lost")
	if l := evs[1]; l.Class != "SleepActiveJob" || l.Backend != "sidekiq" {
		t.Errorf("lost event %v", l)
	}
	took := time.Since(killed)
	if took > 75*time.Second {
		t.Errorf("lost reported %v after the kill, want within the 60 s heartbeat expiry plus a few seconds", took.Round(time.Second))
	}
	t.Logf("lost reported %v after SIGKILL; stream %q", took.Round(time.Second), "document:"+rails.GlobalIDParam("cablecar-test", "Document", "5"))
}
