package sidekiq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// activeJobWrappers are the class names under which Sidekiq stores an
// ActiveJob job: Rails' adapter (and Sidekiq 7's subclass of its own
// wrapper, which keeps Rails' name, up to 8.0.4) and Sidekiq's own class
// from 8.0.5, of which JobWrapper became an alias.
var activeJobWrappers = map[string]bool{
	"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper": true,
	"Sidekiq::ActiveJob::Wrapper":                          true,
}

// payload is the part of a Sidekiq job hash the watcher uses. The numbers
// stay json.Number because Sidekiq 6 and 7 write float seconds where
// Sidekiq 8 writes integer milliseconds.
type payload struct {
	Class        string          `json:"class"`
	Wrapped      json.RawMessage `json:"wrapped"`
	JID          string          `json:"jid"`
	Queue        string          `json:"queue"`
	Args         json.RawMessage `json:"args"`
	ErrorClass   string          `json:"error_class"`
	ErrorMessage string          `json:"error_message"`
	RetryCount   *json.Number    `json:"retry_count"`
	FailedAt     *json.Number    `json:"failed_at"`
	RetriedAt    *json.Number    `json:"retried_at"`
}

// job is one decoded Sidekiq job: what every event about it carries.
type job struct {
	jid   string // Sidekiq's jid, the key across the backend's keys
	id    string // the id the application knows (ActiveJob's job_id or jid)
	class string
	queue string
	args  []any
	p     payload
}

// errMissing marks a job hash without jid or class; the caller reports it
// as "missing_field" rather than "malformed_json".
var errMissing = errors.New("missing field")

// parseJob decodes one job hash as Sidekiq stores it in the retry and dead
// sets and in a work entry's payload. It never returns the job's arguments
// in an error.
func parseJob(raw []byte) (*job, error) {
	var p payload
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	switch {
	case p.JID == "":
		return nil, fmt.Errorf("%w: no jid", errMissing)
	case p.Class == "":
		return nil, fmt.Errorf("%w: no class", errMissing)
	}
	j := &job{jid: p.JID, id: p.JID, class: p.Class, queue: p.Queue, p: p}
	var args []any
	if len(p.Args) > 0 && !bytes.Equal(p.Args, []byte("null")) {
		if err := decode(p.Args, &args); err != nil {
			return nil, fmt.Errorf("args: %w", err)
		}
	}
	j.args = args
	unwrapActiveJob(j)
	return j, nil
}

// unwrapActiveJob replaces the wrapper's view with ActiveJob's own: the
// real class, ActiveJob's job_id and its arguments (GlobalIDs stay as
// {"_aj_globalid": …} objects). A wrapper without a serialized job keeps
// Sidekiq's view rather than failing.
func unwrapActiveJob(j *job) {
	var wrapped string
	if len(j.p.Wrapped) > 0 {
		// "wrapped" is a class name string; anything else is ignored.
		_ = json.Unmarshal(j.p.Wrapped, &wrapped)
	}
	if !activeJobWrappers[j.class] && wrapped == "" {
		return
	}
	if len(j.args) == 0 {
		return
	}
	aj, ok := j.args[0].(map[string]any)
	if !ok {
		return
	}
	id, _ := aj["job_id"].(string)
	jobClass, _ := aj["job_class"].(string)
	if id == "" && jobClass == "" {
		return // not a serialized ActiveJob
	}
	if id != "" {
		j.id = id
	}
	switch {
	case wrapped != "":
		j.class = wrapped
	case jobClass != "":
		j.class = jobClass
	}
	if args, ok := aj["arguments"].([]any); ok {
		j.args = args
	} else {
		j.args = nil
	}
	if q, ok := aj["queue_name"].(string); ok && j.queue == "" {
		j.queue = q
	}
}

// decode is json.Unmarshal with numbers kept as json.Number.
func decode(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// event is the job's event of status st at, with Sidekiq's backend name.
func (j *job) event(st jobs.Status, at time.Time) jobs.Event {
	return jobs.Event{Backend: jobs.Sidekiq, JobID: j.id, Class: j.class, Queue: j.queue,
		Status: st, At: at, Args: j.args}
}

// failure is the job's retrying or dead event: error, retry count.
func (j *job) failure(st jobs.Status, at time.Time) jobs.Event {
	e := j.event(st, at)
	e.ErrorClass, e.ErrorMessage = j.p.ErrorClass, j.p.ErrorMessage
	if n, ok := number(j.p.RetryCount); ok {
		e.RetryCount, e.HasRetryCount = int(n), true
	}
	return e
}

// retryCount is the job's retry_count, or -1 when it has none.
func (j *job) retryCount() int {
	if n, ok := number(j.p.RetryCount); ok && n >= 0 && n == math.Trunc(n) {
		return int(n)
	}
	return -1
}

// failedAt is when the job last raised, in Unix seconds: retried_at after a
// retry, else failed_at. ok is false when neither is there.
func (j *job) failedAt() (float64, bool) {
	if j.retryCount() > 0 {
		if t, ok := stamp(j.p.RetriedAt); ok {
			return t, true
		}
	}
	if t, ok := stamp(j.p.FailedAt); ok {
		return t, true
	}
	return stamp(j.p.RetriedAt)
}

// millisThreshold tells Sidekiq 8's integer milliseconds from the float
// seconds of Sidekiq 6 and 7: 1e11 seconds is in the year 5138, 1e11
// milliseconds in 1973.
const millisThreshold = 1e11

// stamp reads a Sidekiq time field as Unix seconds, whichever unit the
// version wrote.
func stamp(n *json.Number) (float64, bool) {
	f, ok := number(n)
	if !ok || f <= 0 {
		return 0, false
	}
	if f >= millisThreshold {
		f /= 1000
	}
	return f, true
}

func number(n *json.Number) (float64, bool) {
	if n == nil {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// seconds turns Unix seconds into a time, rounded to the microsecond so
// that values read back from Redis scores compare equal.
func seconds(f float64) time.Time {
	return jobs.UnixSeconds(f).Round(time.Microsecond)
}
