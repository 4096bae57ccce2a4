package bullmq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// stalledMessage is the ErrorMessage of a stalled job's Retrying event.
const stalledMessage = "job stalled: its worker stopped renewing the lock; BullMQ put it back in wait"

// describer maps one queue's entries (a batch, then the tail written after
// it) to events, with the job hashes read together with the tail.
type describer struct {
	w      *Watcher
	list   []entry
	hashes map[string]map[string]string
}

func (d describer) hash(e entry) map[string]string {
	return d.hashes[e.queue+"\x00"+e.field("jobId")]
}

// isRetry reports whether list[i] is BullMQ moving a failed job back to
// delayed or wait for another attempt (see the package documentation).
func (d describer) isRetry(i int) bool {
	e := d.list[i]
	switch e.field("event") {
	case "delayed":
	case "waiting":
		if e.field("prev") != "active" {
			return false
		}
		// A stalled job's move to wait is followed, in the same script,
		// by its stalled event.
		if i+1 < len(d.list) && d.list[i+1].field("event") == "stalled" && d.list[i+1].field("jobId") == e.field("jobId") {
			return false
		}
	default:
		return false
	}
	return d.hash(e)["failedReason"] != ""
}

// later counts, for the job of list[i], the attempts that ended after it
// (each adds one to the hash's atm) and the failures among them (each adds
// a stack to its stacktrace).
func (d describer) later(i int) (attempts, failures int) {
	id := d.list[i].field("jobId")
	for j := i + 1; j < len(d.list); j++ {
		if d.list[j].field("jobId") != id {
			continue
		}
		switch ev := d.list[j].field("event"); {
		case ev == "completed":
			attempts++
		case ev == "failed" || d.isRetry(j):
			attempts++
			failures++
		}
	}
	return attempts, failures
}

// event maps list[i]; ok is false for entries that are not a job's fate.
func (d describer) event(i int) (ev jobs.Event, ok bool, skip *jobs.Skip) {
	e := d.list[i]
	kind := e.field("event")
	var status jobs.Status
	switch {
	case kind == "active":
		status = jobs.Running
	case kind == "progress":
		status = jobs.Progress
	case kind == "completed":
		status = jobs.Completed
	case kind == "failed":
		status = jobs.Failed
	case kind == "stalled", d.isRetry(i):
		status = jobs.Retrying
	default:
		return ev, false, nil
	}
	where := fmt.Sprintf("queue %s event %s (%s)", e.queue, e.id, kind)
	jobID := e.field("jobId")
	if jobID == "" {
		return ev, false, &jobs.Skip{Reason: "missing_field", Detail: where + ": no jobId"}
	}
	ev = jobs.Event{Backend: jobs.BullMQ, JobID: jobID, Queue: e.queue, Status: status, At: idTime(e.id)}
	if h := d.hash(e); h != nil {
		if skip := d.fromHash(&ev, h, where); skip != nil {
			return ev, false, skip
		}
	}
	switch {
	case kind == "progress":
		data := e.field("data")
		if len(data) > d.w.cfg.MaxValue {
			return ev, false, &jobs.Skip{Reason: "too_large", Detail: fmt.Sprintf("%s: progress of %d bytes (limit %d)", where, len(data), d.w.cfg.MaxValue)}
		}
		if !json.Valid([]byte(data)) {
			return ev, false, &jobs.Skip{Reason: "malformed_json", Detail: where + ": progress data is not JSON"}
		}
		ev.Progress = json.RawMessage(data)
	case kind == "stalled":
		ev.ErrorMessage, ev.NextRetryAt = stalledMessage, ev.At
	case status == jobs.Failed || status == jobs.Retrying:
		d.failure(&ev, i)
	}
	return ev, true, nil
}

// fromHash fills Class and Args from the job hash.
func (d describer) fromHash(ev *jobs.Event, h map[string]string, where string) *jobs.Skip {
	name, okName := h["name"]
	data, okData := h["data"]
	if !okName || !okData {
		return &jobs.Skip{Reason: "missing_field", Detail: where + ": job hash without name or data"}
	}
	if len(data) > d.w.cfg.MaxValue {
		return &jobs.Skip{Reason: "too_large", Detail: fmt.Sprintf("%s: job data of %d bytes (limit %d)", where, len(data), d.w.cfg.MaxValue)}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return &jobs.Skip{Reason: "malformed_json", Detail: where + ": job data is not JSON"}
	}
	ev.Class, ev.Args = name, []any{v}
	return nil
}

// failure fills the error and the retry of a Failed or Retrying event at
// list[i], as of that moment: later attempts are taken off the hash's atm,
// and later stacks skipped.
func (d describer) failure(ev *jobs.Event, i int) {
	e := d.list[i]
	h := d.hash(e)
	attempts, failures := d.later(i)
	if e.field("event") == "failed" {
		ev.ErrorMessage = e.field("failedReason")
	} else if failures == 0 {
		ev.ErrorMessage = h["failedReason"]
	}
	if e.field("event") == "delayed" {
		if ms, err := strconv.ParseInt(e.field("delay"), 10, 64); err == nil && ms > 0 {
			ev.NextRetryAt = jobs.UnixMillis(ms)
		}
	} else if ev.Status == jobs.Retrying {
		ev.NextRetryAt = ev.At // straight back to wait
	}
	if h == nil {
		// Removed with removeOnFail: the retries-exhausted entry that
		// follows a final failure still counts the attempts.
		if n := i + 1; e.field("event") == "failed" && n < len(d.list) &&
			d.list[n].field("event") == "retries-exhausted" && d.list[n].field("jobId") == e.field("jobId") {
			if atm, err := strconv.Atoi(d.list[n].field("attemptsMade")); err == nil && atm >= 1 {
				ev.RetryCount, ev.HasRetryCount = atm-1, true
			}
		}
		return
	}
	if atm, err := strconv.Atoi(h["atm"]); err == nil && atm-attempts >= 1 {
		ev.RetryCount, ev.HasRetryCount = atm-attempts-1, true
	}
	var stacks []string
	if json.Unmarshal([]byte(h["stacktrace"]), &stacks) == nil {
		if k := len(stacks) - 1 - failures; k >= 0 {
			class, msg := stackHead(stacks[k])
			if ev.ErrorMessage == "" {
				ev.ErrorMessage = msg
			}
			if class != "" && firstLine(ev.ErrorMessage) == msg {
				ev.ErrorClass = class
			}
		}
	}
}

// headRE matches the first line of a V8 stack: "TypeError: message".
var headRE = regexp.MustCompile(`^([A-Za-z_$][A-Za-z0-9_$.]*): (.*)$`)

// stackHead splits a stack's first line into the error's name and message.
func stackHead(stack string) (class, msg string) {
	m := headRE.FindStringSubmatch(firstLine(stack))
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
