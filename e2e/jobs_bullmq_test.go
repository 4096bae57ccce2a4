package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// bullmqEnv watches the queue "docs" on redisURL, which is also the broker.
func bullmqEnv(redisURL string) map[string]string {
	return map[string]string{
		"CABLECAR_REDIS_URL":          redisURL,
		"CABLECAR_CHANNEL_PREFIX":     "myapp",
		"CABLECAR_JWT_SECRET":         secret,
		"CABLECAR_ROUTES":             "replay:DocumentChannel={channel}:{params.id}",
		"CABLECAR_JOBS_BULLMQ_URL":    redisURL,
		"CABLECAR_JOBS_BULLMQ_QUEUES": "docs",
		"CABLECAR_JOB_STREAMS":        "resize=document:{args.0.document_id};*=job:{job_id}",
	}
}

// TestBullMQJobFateReachesRealJSClient: a real BullMQ worker runs a job
// that reports progress and completes, and one whose processor throws on
// both of its attempts. The real JS client, subscribed to the document the
// jobs name, learns each one's fate with no line of job code; a client
// that subscribes afterwards gets the last state right after its confirm.
func TestBullMQJobFateReachesRealJSClient(t *testing.T) {
	rs := redistest.Start(t)
	env := bullmqEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")
	worker := jobstest.StartBullMQ(t, rs.URL, "docs")

	c := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + tok),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 7}},
		Duration:      60 * time.Second,
	})
	waitEvent(t, c, jsclient.KindConnected)

	good := worker.Add("resize", map[string]any{"document_id": 7, "progress": []any{50}, "result": "ok"}, 1)
	evs := waitJobStatuses(t, c, 0, good, "running", "progress", "completed")
	for _, je := range evs {
		if je.Backend != "bullmq" || je.Class != "resize" || je.Queue != "docs" || je.ErrorMessage != nil {
			t.Errorf("event %v", je)
		}
	}
	if string(evs[1].Progress) != "50" {
		t.Errorf("progress %s, want 50", evs[1].Progress)
	}

	bad := worker.Add("resize", map[string]any{"document_id": 7, "fail": "page 2 unreadable"}, 2)
	evs = waitJobStatuses(t, c, 0, bad, "running", "retrying", "running", "failed")
	// retry_count counts the retries made before the event, as Sidekiq's
	// does: 0 at the first failure, 1 when the one retry failed too.
	if r, f := evs[1], evs[3]; r.ErrorMessage != nil || f.ErrorMessage != nil || r.RetryCount == nil || *r.RetryCount != 0 ||
		f.RetryCount == nil || *f.RetryCount != 1 || r.ErrorClass != "Error" || r.NextRetryAt == "" {
		t.Errorf("retrying %v, failed %v: want retry counts 0 and 1, error class Error, a next retry time, and no error message (CABLECAR_JOB_ERROR_MESSAGES unset)", r, f)
	}

	// A page opened after the job failed still learns it, first thing.
	late := jsclient.Start(t, jsclient.Options{
		URL:           sc.wsURL("token=" + tok),
		Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": 7}},
		Duration:      20 * time.Second,
		ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: 1},
	})
	events := late.Wait()
	got := jobEvents(t, events, 0)
	if len(got) != 1 || got[0].JobID != bad || got[0].Status != "failed" {
		t.Fatalf("late subscriber got %v, want the failed event of job %s", got, bad)
	}
	frames := jsclient.FramesIn(events)
	const identifier = `{"identifier":"{\"channel\":\"DocumentChannel\",\"id\":7}",`
	confirmAt, stateAt := -1, -1
	for i, f := range frames {
		switch {
		case confirmAt < 0 && f == identifier+`"type":"confirm_subscription"}`:
			confirmAt = i
		case stateAt < 0 && confirmAt >= 0 && strings.HasPrefix(f, identifier+`"message":{"type":"job",`):
			stateAt = i
		}
	}
	if confirmAt < 0 || stateAt != confirmAt+1 {
		t.Errorf("want the last state right after confirm_subscription; frames %q", frames)
	}
}
