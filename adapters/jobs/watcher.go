package jobs

import (
	"context"
	"time"
)

// Watcher reads one job backend. A Runner calls it from one goroutine, and
// only while this node holds the backend's lease, so a watcher keeps no
// state that the cursor does not carry: another node resumes from the same
// cursor after a handover.
type Watcher interface {
	// Backend names the backend (Sidekiq, BullMQ, Celery, SolidQueue).
	Backend() string
	// Poll returns what happened after cursor, and the cursor that follows
	// it. A nil cursor means "start from now": a first start does not
	// replay history. Poll may wait up to about a second for news, and
	// returns early when ctx is done. It is deterministic in the cursor as
	// far as the backend allows: after a failed commit it is called again
	// with the same cursor and must not skip what it returned before.
	//
	// An error means the backend could not be read (connection refused, a
	// table missing); the runner logs it, backs off and calls again with
	// the same cursor. Bad job data is not an error: the watcher skips the
	// job and reports it in Batch.Skipped.
	Poll(ctx context.Context, cursor []byte) (Batch, error)
	// Check inspects the backend for `cablecar doctor`: reachable, and the
	// keys or tables where the watcher expects them. Each finding is one
	// line a person can act on, naming the backend; a line holding
	// "WARNING: " is shown as a warning. An error means the backend could
	// not be inspected at all.
	Check(ctx context.Context) ([]string, error)
	// Close releases the watcher's connections.
	Close() error
}

// Batch is one Poll's result.
type Batch struct {
	// Events in the order they happened.
	Events []Event
	// Cursor is where the next Poll starts. Opaque to the runner, stored
	// with the events atomically; keep it small (well under a megabyte).
	Cursor []byte
	// Lag is how far behind the backend's newest data this batch is (0
	// when caught up), for cablecar_job_watch_lag_seconds.
	Lag time.Duration
	// Skipped is the bad job data passed over, one entry per job.
	Skipped []Skip
}

// Skip is one job a watcher could not read.
type Skip struct {
	// Reason is a short code for the metric and for logging once per
	// cause: "malformed_json", "missing_field", "too_large", …
	Reason string
	// Detail says what and where, without job arguments (which can hold
	// personal data): `retry set entry 3: unexpected end of JSON input`.
	Detail string
}
