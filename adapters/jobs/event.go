package jobs

import (
	"encoding/json"
	"strconv"
	"time"
)

// Status is what happened to a job. The set is closed: every backend maps
// its own states onto these.
type Status string

// The statuses, in the order a job usually meets them.
const (
	// Running: a worker took the job.
	Running Status = "running"
	// Progress: the job reported progress (BullMQ's updateProgress).
	Progress Status = "progress"
	// Completed: the job finished without raising.
	Completed Status = "completed"
	// Retrying: the job raised and is scheduled to run again (NextRetryAt).
	Retrying Status = "retrying"
	// Dead: the job raised and will not be retried (Sidekiq's dead set).
	Dead Status = "dead"
	// Lost: the worker running the job died without a word (SIGKILL, out of
	// memory): its heartbeat expired while the job was listed as running.
	Lost Status = "lost"
	// Failed: the job raised and the backend keeps no retry for it (BullMQ
	// after its attempts, Celery's FAILURE, Solid Queue's failed executions).
	Failed Status = "failed"
)

// Statuses lists every status, so that counters can start at zero for each.
var Statuses = []Status{Running, Progress, Completed, Retrying, Dead, Lost, Failed}

// Backend names, as they appear in events, metrics and settings.
const (
	Sidekiq    = "sidekiq"
	BullMQ     = "bullmq"
	Celery     = "celery"
	SolidQueue = "solid_queue"
)

// Event is one change in a job's fate, as a watcher saw it in the backend.
// Every backend produces this one shape.
type Event struct {
	Backend string // Sidekiq, BullMQ, Celery or SolidQueue
	// JobID is the id the application knows: ActiveJob's job_id for Rails
	// jobs, else the backend's own (Sidekiq's jid, BullMQ's job id, Celery's
	// task id).
	JobID  string
	Class  string // the job class (ActiveJob's wrapped class, Celery's task name)
	Queue  string // the queue, where the backend says
	Status Status
	// ErrorClass and ErrorMessage describe the exception, for retrying,
	// dead and failed. The message is sent to pages only when
	// CABLECAR_JOB_ERROR_MESSAGES=true.
	ErrorClass   string
	ErrorMessage string
	// RetryCount is how many retries have been made, when the backend says
	// (HasRetryCount).
	RetryCount    int
	HasRetryCount bool
	// NextRetryAt is when a retrying job runs again; zero otherwise.
	NextRetryAt time.Time
	// Progress is the job's own progress value (JSON), for Progress events.
	Progress json.RawMessage
	// At is when it happened, by the backend's clock.
	At time.Time
	// Args are the job's arguments decoded with json.Number, for stream
	// mappings ({args.0}); ActiveJob's are unwrapped, GlobalIDs stay as
	// {"_aj_globalid": "gid://…"}. Never sent to pages.
	Args []any
}

// wireEvent is the JSON a page receives.
type wireEvent struct {
	Type         string          `json:"type"`
	Backend      string          `json:"backend"`
	JobID        string          `json:"job_id"`
	Class        string          `json:"class"`
	Queue        string          `json:"queue,omitempty"`
	Status       Status          `json:"status"`
	ErrorClass   string          `json:"error_class,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
	RetryCount   *int            `json:"retry_count,omitempty"`
	NextRetryAt  string          `json:"next_retry_at,omitempty"`
	Progress     json.RawMessage `json:"progress,omitempty"`
	At           string          `json:"at"`
}

// timeLayout is RFC 3339 in UTC with milliseconds: what JavaScript's
// Date.toISOString writes and new Date() reads.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Encode renders the event as the message pages receive:
//
//	{"type":"job","backend":"sidekiq","job_id":"…","class":"…","status":"retrying",
//	 "error_class":"…","retry_count":0,"next_retry_at":"…","at":"…"}
//
// Optional keys are left out when the backend does not know them. The error
// message is included only when withMessage is set.
func (e *Event) Encode(withMessage bool) []byte {
	w := wireEvent{Type: "job", Backend: e.Backend, JobID: e.JobID, Class: e.Class, Queue: e.Queue,
		Status: e.Status, ErrorClass: e.ErrorClass, At: formatTime(e.At)}
	if withMessage {
		w.ErrorMessage = e.ErrorMessage
	}
	if e.HasRetryCount {
		w.RetryCount = &e.RetryCount
	}
	if !e.NextRetryAt.IsZero() {
		w.NextRetryAt = formatTime(e.NextRetryAt)
	}
	if len(e.Progress) > 0 && json.Valid(e.Progress) {
		w.Progress = e.Progress
	}
	b, err := json.Marshal(w)
	if err != nil { // only strings and valid raw JSON: cannot happen
		return []byte(`{"type":"job","status":` + strconv.Quote(string(e.Status)) + `}`)
	}
	return b
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(timeLayout)
}

// UnixSeconds turns the fractional Unix seconds Sidekiq and Celery write
// into a time.
func UnixSeconds(f float64) time.Time {
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
}

// UnixMillis turns Unix milliseconds (Sidekiq 8, BullMQ) into a time.
func UnixMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
