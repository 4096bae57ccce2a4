package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
)

// jobEvent is the JSON a page receives from cablecar's job watchers.
type jobEvent struct {
	Type         string          `json:"type"`
	Backend      string          `json:"backend"`
	JobID        string          `json:"job_id"`
	Class        string          `json:"class"`
	Queue        string          `json:"queue"`
	Status       string          `json:"status"`
	ErrorClass   string          `json:"error_class"`
	ErrorMessage *string         `json:"error_message"`
	RetryCount   *int            `json:"retry_count"`
	NextRetryAt  string          `json:"next_retry_at"`
	Progress     json.RawMessage `json:"progress"`
	At           string          `json:"at"`
}

// jobEvents decodes the job events subscription index received, in order,
// passing over other messages.
func jobEvents(t *testing.T, events []jsclient.Event, index int) []jobEvent {
	t.Helper()
	var out []jobEvent
	for _, ev := range jsclient.Filter(events, jsclient.KindReceived) {
		if ev.Index != index {
			continue
		}
		var je jobEvent
		if json.Unmarshal(ev.Data, &je) != nil || je.Type != "job" {
			continue // the page's own messages share the stream
		}
		if _, err := time.Parse(time.RFC3339Nano, je.At); err != nil {
			t.Errorf("event %s: at %q is not RFC 3339: %v", ev.Data, je.At, err)
		}
		out = append(out, je)
	}
	return out
}

// waitJobStatuses waits until subscription index has received, for job,
// exactly the statuses want, in order, and returns those events.
func waitJobStatuses(t *testing.T, c *jsclient.Client, index int, job string, want ...string) []jobEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got []jobEvent
		var statuses []string
		for _, je := range jobEvents(t, c.Snapshot(), index) {
			if je.JobID == job {
				got = append(got, je)
				statuses = append(statuses, je.Status)
			}
		}
		if strings.Join(statuses, ",") == strings.Join(want, ",") {
			return got
		}
		if len(statuses) > len(want) || !strings.HasPrefix(strings.Join(want, ","), strings.Join(statuses, ",")) {
			t.Fatalf("job %s: statuses %v, want %v", job, statuses, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: statuses %v after 60s, want %v", job, statuses, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (je jobEvent) String() string {
	b, _ := json.Marshal(je)
	return string(b)
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
