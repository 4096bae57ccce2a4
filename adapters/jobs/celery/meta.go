package celery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// statuses maps Celery's states to job statuses. PROGRESS is not Celery's
// own but the name its documentation uses with update_state for progress;
// PENDING, RECEIVED, REJECTED, IGNORED and other custom states are not
// reported. REVOKED (a cancelled task) counts as failed.
var statuses = map[string]jobs.Status{
	"STARTED":  jobs.Running,
	"PROGRESS": jobs.Progress,
	"SUCCESS":  jobs.Completed,
	"RETRY":    jobs.Retrying,
	"FAILURE":  jobs.Failed,
	"REVOKED":  jobs.Failed,
}

// ready are the states that carry date_done and stay in the key: the ones
// the sweep reports.
var ready = map[string]bool{"SUCCESS": true, "FAILURE": true, "REVOKED": true}

// meta is the part of a result (the JSON in celery-task-meta-<id>) the
// watcher reads.
type meta struct {
	Status   string          `json:"status"`
	Result   json.RawMessage `json:"result"`
	DateDone *string         `json:"date_done"`
	TaskID   string          `json:"task_id"`
	// With result_extended only:
	Name    *string         `json:"name"`
	Args    json.RawMessage `json:"args"`
	Queue   *string         `json:"queue"`
	Retries *json.Number    `json:"retries"`
}

// excInfo is how the JSON serializer stores an exception: its class's
// qualified name, its args and its module.
type excInfo struct {
	Type    string          `json:"exc_type"`
	Message json.RawMessage `json:"exc_message"`
	Module  string          `json:"exc_module"`
}

// result is one parsed result: its event, whether its state is ready
// (then done is date_done) and whether it is reported at all.
type result struct {
	event  jobs.Event
	status string
	done   time.Time
	rawDay string // date_done as stored, for the dedup key
	report bool
}

// parse reads a result's JSON. where names it in a Skip; at is when it was
// seen, the time of states without date_done.
func parse(value []byte, maxValue int, where string, at time.Time) (result, *jobs.Skip) {
	if len(value) > maxValue {
		return result{}, &jobs.Skip{Reason: "too_large", Detail: fmt.Sprintf("%s: result of %d bytes (limit %d)", where, len(value), maxValue)}
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var m meta
	if err := dec.Decode(&m); err != nil {
		return result{}, &jobs.Skip{Reason: "malformed_json", Detail: fmt.Sprintf("%s: %v", where, err)}
	}
	if m.Status == "" || m.TaskID == "" {
		return result{}, &jobs.Skip{Reason: "missing_field", Detail: where + ": no status or task_id"}
	}
	r := result{status: m.Status}
	status, ok := statuses[m.Status]
	if !ok {
		return r, nil
	}
	ev := jobs.Event{Backend: jobs.Celery, JobID: m.TaskID, Status: status, At: at}
	if ready[m.Status] {
		if m.DateDone == nil {
			return result{}, &jobs.Skip{Reason: "missing_field", Detail: where + ": " + m.Status + " without date_done"}
		}
		t, err := parseDate(*m.DateDone)
		if err != nil {
			return result{}, &jobs.Skip{Reason: "malformed_date", Detail: fmt.Sprintf("%s: date_done %q", where, *m.DateDone)}
		}
		ev.At, r.done, r.rawDay = t, t, *m.DateDone
	}
	if m.Name != nil {
		ev.Class = *m.Name
	}
	if m.Queue != nil {
		ev.Queue = *m.Queue
	}
	if len(m.Args) > 0 && !bytes.Equal(m.Args, []byte("null")) {
		if err := decodeArgs(m.Args, &ev.Args); err != nil {
			return result{}, &jobs.Skip{Reason: "malformed_json", Detail: where + ": args is not a JSON list"}
		}
	}
	switch status {
	case jobs.Progress:
		if len(m.Result) > 0 && !bytes.Equal(m.Result, []byte("null")) {
			ev.Progress = append(json.RawMessage(nil), m.Result...)
		}
	case jobs.Retrying, jobs.Failed:
		ev.ErrorClass, ev.ErrorMessage = describeExc(m.Result)
		if m.Retries != nil {
			if n, err := m.Retries.Int64(); err == nil && n >= 0 {
				ev.RetryCount, ev.HasRetryCount = int(n), true
			}
		}
	}
	r.event, r.report = ev, true
	return r, nil
}

// decodeArgs decodes a JSON list with json.Number for numbers.
func decodeArgs(raw json.RawMessage, out *[]any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(out)
}

// describeExc reads a serialized exception: the class is exc_type; the
// message is the exception's single string argument, or its arguments as
// JSON. A result that is not an exception (retry() without exc) gives
// nothing.
func describeExc(raw json.RawMessage) (class, message string) {
	var e excInfo
	if json.Unmarshal(raw, &e) != nil || e.Type == "" {
		return "", ""
	}
	var one []string
	var s string
	switch {
	case json.Unmarshal(e.Message, &one) == nil && len(one) == 1:
		message = one[0]
	case json.Unmarshal(e.Message, &s) == nil:
		message = s
	case len(e.Message) > 0 && !bytes.Equal(e.Message, []byte("[]")) && !bytes.Equal(e.Message, []byte("null")):
		var buf bytes.Buffer
		if json.Compact(&buf, e.Message) == nil {
			message = buf.String()
		}
	}
	return e.Type, message
}

// parseDate reads date_done: Python's isoformat of a UTC time, naive in
// Celery 5.2 ("2026-12-04T14:55:06.071994", no fraction when it is zero),
// with an offset in later versions.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time")
}
