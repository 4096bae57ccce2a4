package solidqueue

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// jobRow is one row of the event queries: an execution (or, for finished
// jobs, the job itself) and the job's columns.
type jobRow struct {
	id       int64 // the execution's id; the job's for finished jobs
	at       dbTime
	errText  sql.NullString // NULL when over the cap
	errLen   sql.NullInt64
	jobID    int64
	class    string
	queue    string
	activeID sql.NullString
	args     sql.NullString // NULL when over the cap
	argsLen  sql.NullInt64
}

func scanJobRow(rows *sql.Rows) (jobRow, error) {
	var r jobRow
	err := rows.Scan(&r.id, &r.at, &r.errText, &r.errLen, &r.jobID, &r.class, &r.queue, &r.activeID, &r.args, &r.argsLen)
	return r, err
}

// badData is a row that cannot become an event.
type badData struct {
	reason string
	detail string
}

func (b *badData) Error() string { return b.detail }

// event turns r into an event, or reports why it cannot. what names the
// row for the skip detail ("failed execution 7"); arguments never appear.
func (r jobRow) event(status jobs.Status, what string, maxArgs int) (jobs.Event, *badData) {
	where := fmt.Sprintf("%s (job %d)", what, r.jobID)
	ev := jobs.Event{Backend: jobs.SolidQueue, Class: r.class, Queue: r.queue, Status: status, At: r.at.T}
	if !r.activeID.Valid || r.activeID.String == "" {
		return ev, &badData{"missing_field", where + ": no active_job_id"}
	}
	ev.JobID = r.activeID.String
	args, bad := decodeArguments(r.args, r.argsLen, maxArgs)
	if bad != nil {
		bad.detail = where + ": arguments: " + bad.detail
		return ev, bad
	}
	ev.Args = args
	return ev, nil
}

// decodeArguments reads the ActiveJob serialization Solid Queue keeps in
// solid_queue_jobs.arguments ({"job_class", "job_id", "arguments": […],
// …}) and returns its arguments array, numbers as json.Number.
func decodeArguments(raw sql.NullString, size sql.NullInt64, limit int) ([]any, *badData) {
	if !raw.Valid {
		if size.Valid {
			return nil, &badData{"too_large", fmt.Sprintf("%d bytes, over the %d byte cap", size.Int64, limit)}
		}
		return nil, &badData{"missing_field", "NULL"}
	}
	var job struct {
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(raw.String), &job); err != nil {
		return nil, &badData{"malformed_json", jsonError(err)}
	}
	if len(job.Arguments) == 0 || bytes.Equal(job.Arguments, []byte("null")) {
		return nil, &badData{"missing_field", `no "arguments" array`}
	}
	dec := json.NewDecoder(bytes.NewReader(job.Arguments))
	dec.UseNumber()
	var args []any
	if err := dec.Decode(&args); err != nil {
		return nil, &badData{"malformed_json", `"arguments" is not an array`}
	}
	return args, nil
}

// decodeError reads solid_queue_failed_executions.error:
// {"exception_class": …, "message": …, "backtrace": […]}.
func decodeError(raw sql.NullString, size sql.NullInt64, limit int) (class, message string, bad *badData) {
	if !raw.Valid {
		if size.Valid {
			return "", "", &badData{"too_large", fmt.Sprintf("%d bytes, over the %d byte cap", size.Int64, limit)}
		}
		return "", "", &badData{"missing_field", "NULL"}
	}
	var e struct {
		Class   *string `json:"exception_class"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal([]byte(raw.String), &e); err != nil {
		return "", "", &badData{"malformed_json", jsonError(err)}
	}
	if e.Class == nil || *e.Class == "" {
		return "", "", &badData{"missing_field", "no exception_class"}
	}
	if e.Message != nil {
		message = *e.Message
	}
	return *e.Class, message, nil
}

// jsonError describes a decoding error by kind and offset only: the
// decoder's own text can quote the data, which may be personal.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("JSON %s where an object was expected", typ.Value)
	}
	return "invalid JSON"
}
