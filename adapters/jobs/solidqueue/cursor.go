package solidqueue

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// cursorVersion changes when the cursor's meaning does; a cursor of
// another version is refused rather than misread.
const cursorVersion = 1

// cursor is the watcher's whole memory, stored by the runner with the
// events. Times are UTC with Solid Queue's microsecond precision.
type cursor struct {
	V        int          `json:"v"`
	Failed   idCursor     `json:"failed"`
	Claimed  idCursor     `json:"claimed"`
	Finished finishCursor `json:"finished"`
	// Lost are the claimed execution ids already reported lost and still
	// claimed. A job claimed again after a release gets a new claim id, so
	// a second loss is reported again.
	Lost []int64 `json:"lost,omitempty"`
}

// idCursor follows a table by primary key.
type idCursor struct {
	// Last is the highest id read.
	Last int64 `json:"last"`
	// Holes are ids below Last not seen yet: a transaction still open
	// when the higher id was read, or a row already deleted. Each is
	// looked up again until its deadline passes.
	Holes []hole `json:"holes,omitempty"`
}

// hole is one missing id and the Unix millisecond after which it is given
// up, as a two-element JSON array to keep the cursor small.
type hole struct {
	ID    int64
	Until int64
}

func (h hole) MarshalJSON() ([]byte, error) { return json.Marshal([2]int64{h.ID, h.Until}) }

func (h *hole) UnmarshalJSON(b []byte) error {
	var a [2]int64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	h.ID, h.Until = a[0], a[1]
	return nil
}

// finishCursor follows solid_queue_jobs.finished_at.
type finishCursor struct {
	// Mark is the low end of the window read again each poll: the newest
	// finished_at seen, less the settle window.
	Mark time.Time `json:"mark"`
	// Seen are the job ids with finished_at >= Mark already reported.
	Seen []int64 `json:"seen,omitempty"`
}

func decodeCursor(b []byte) (cursor, error) {
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return cursor{}, fmt.Errorf("solid queue cursor: %w", err)
	}
	if c.V != cursorVersion {
		return cursor{}, fmt.Errorf("solid queue cursor: version %d, want %d", c.V, cursorVersion)
	}
	return c, nil
}

func (c cursor) encode() []byte {
	c.V = cursorVersion
	b, err := json.Marshal(c)
	if err != nil { // only numbers and times: cannot happen
		panic(fmt.Sprintf("solid queue cursor: %v", err))
	}
	return b
}

// addHoles records the ids strictly between prev and next as holes due at
// until, keeping the highest max of all holes: a late commit is usually
// close below the ids that did commit.
func addHoles(holes []hole, prev, next int64, until int64, limit int) []hole {
	from := max(prev+1, next-int64(limit))
	for id := from; id < next; id++ {
		holes = append(holes, hole{ID: id, Until: until})
	}
	if len(holes) > limit {
		slices.SortFunc(holes, func(a, b hole) int { return cmpInt(a.ID, b.ID) })
		holes = slices.Clone(holes[len(holes)-limit:])
	}
	return holes
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// capIDs keeps the highest limit ids of a sorted-or-not set.
func capIDs(ids []int64, limit int) []int64 {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > limit {
		ids = slices.Clone(ids[len(ids)-limit:])
	}
	return ids
}
