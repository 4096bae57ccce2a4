package e2e

import (
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestCeleryTaskThatRaisesReachesRealJSClient: a real Celery worker (Debian
// python3-celery, Redis result backend) runs a task that raises ValueError.
// A page subscribed to the task learns "running", then "failed" with the
// exception's class, and with CABLECAR_JOB_ERROR_MESSAGES=true its
// message; another task's progress and completion arrive too.
func TestCeleryTaskThatRaisesReachesRealJSClient(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{
		"CABLECAR_REDIS_URL":          rs.URL,
		"CABLECAR_JWT_SECRET":         secret,
		"CABLECAR_ROUTES":             "replay:TaskChannel=task:{params.name}",
		"CABLECAR_JOBS_CELERY_URL":    rs.URL,
		"CABLECAR_JOB_STREAMS":        "*=task:{class}",
		"CABLECAR_JOB_ERROR_MESSAGES": "true",
	}
	sc := startSidecar(t, env, "serve")
	worker := jobstest.StartCelery(t, rs.URL)
	c := jsclient.Start(t, jsclient.Options{
		URL: sc.wsURL("token=" + mustToken(t, env, "task:*")),
		Subscriptions: []map[string]any{{"channel": "TaskChannel", "name": "tasks.explode"},
			{"channel": "TaskChannel", "name": "tasks.steps"}},
		Duration: 60 * time.Second,
	})
	waitConnected(t, c, 2)

	id := worker.Send("tasks.explode", "page 2 of document 7 is unreadable")
	evs := waitJobStatuses(t, c, 0, id, "running", "failed")
	f := evs[1]
	if f.Backend != "celery" || f.Class != "tasks.explode" || f.ErrorClass != "ValueError" ||
		f.ErrorMessage == nil || *f.ErrorMessage != "page 2 of document 7 is unreadable" {
		t.Errorf("failed event %v", f)
	}

	id = worker.Send("tasks.steps", 2)
	evs = waitJobStatuses(t, c, 1, id, "running", "progress", "progress", "completed")
	if string(evs[1].Progress) != `{"done":1,"of":2}` || string(evs[2].Progress) != `{"done":2,"of":2}` {
		t.Errorf("progress %s, %s", evs[1].Progress, evs[2].Progress)
	}
}
