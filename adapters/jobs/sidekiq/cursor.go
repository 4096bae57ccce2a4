package sidekiq

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
)

// cursorVersion is bumped when the cursor's meaning changes; a cursor of
// another version is refused rather than misread.
const cursorVersion = 1

// cursor is everything the watcher knows between polls. Times are Unix
// seconds: Sidekiq's clock for failure times and set scores, Redis's clock
// (TIME) for when the watcher saw something, which on a healthy deployment
// agree to well within Settle.
type cursor struct {
	V int `json:"v"`
	// Failed is the failure time up to which the retry set has been read:
	// retries whose failed_at/retried_at is at or before it were reported.
	Failed float64 `json:"f"`
	// Dead is the score up to which the dead set has been read, and
	// DeadSeen the hashes of the members at exactly that score already
	// reported (ties).
	Dead     float64  `json:"d"`
	DeadSeen []string `json:"ds,omitempty"`
	// Sweep is the background ZSCAN of the retry set.
	Sweep sweepState `json:"sw"`
	// Run is every job seen in a worker's work list and not yet finished.
	Run []*runRec `json:"run,omitempty"`
	// BadWork are hashes of malformed work entries already reported, so
	// that one that stays listed is reported once.
	BadWork []string `json:"bw,omitempty"`
}

// sweepState is where the sweep stands: the ZSCAN position, and the
// failure times its current pass reports, (From, To].
type sweepState struct {
	Pos  uint64  `json:"p"`
	From float64 `json:"from"`
	To   float64 `json:"to"`
}

// runRec is one job running on one worker thread, as its work entry said.
type runRec struct {
	Proc  string          `json:"p"`   // the process identity
	TID   string          `json:"tid"` // the thread id, the work hash field
	JID   string          `json:"jid"`
	RunAt int64           `json:"r"` // run_at, Unix seconds
	ID    string          `json:"id,omitempty"`
	Class string          `json:"c"`
	Queue string          `json:"q,omitempty"`
	Args  json.RawMessage `json:"a,omitempty"`
	// Failed: the job showed up in the retry or dead set during this run,
	// so leaving the work list does not make it completed.
	Failed bool `json:"x,omitempty"`
	// Gone is when (Redis's clock) the job was first missing from its
	// process's work list; it is completed once the failure reads have
	// covered that moment without finding it.
	Gone float64 `json:"g,omitempty"`
}

// same reports whether r and o are one run of one job.
func (r *runRec) same(o *runRec) bool {
	return r.Proc == o.Proc && r.TID == o.TID && r.JID == o.JID && r.RunAt == o.RunAt
}

// parseCursor decodes a cursor; nil means none.
func parseCursor(b []byte) (*cursor, error) {
	if b == nil {
		return nil, nil
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("sidekiq cursor: %w", err)
	}
	if c.V != cursorVersion {
		return nil, fmt.Errorf("sidekiq cursor: version %d, want %d", c.V, cursorVersion)
	}
	return &c, nil
}

func (c *cursor) encode() []byte {
	b, err := json.Marshal(c)
	if err != nil { // plain fields and valid raw JSON: cannot happen
		panic(fmt.Sprintf("sidekiq cursor: %v", err))
	}
	return b
}

// memberHash names a set member in the cursor without storing it.
func memberHash(m string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(m))
	return strconv.FormatUint(h.Sum64(), 36)
}
