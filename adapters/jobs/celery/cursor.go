package celery

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"time"
)

// state is what the cursor carries: the sweep's place and the finished
// results already reported.
type state struct {
	// scan is the SCAN cursor of the sweep; 0 starts a cycle.
	scan uint64
	// cycle is when the current sweep cycle began.
	cycle time.Time
	// floor: results finished before it need no sweep, because a whole
	// cycle passed over their keys (or they predate the first start).
	floor time.Time
	// seen are the finished results reported, oldest first.
	seen []seenEntry
	// seq counts Polls. It makes every cursor differ from the one it
	// followed, so that a Poll repeating the last cursor always means the
	// runner could not commit the batch: when only running or progress
	// events came, nothing else in the cursor moves.
	seq uint64
}

// seenEntry is one reported finished result: a hash of (task_id, status,
// date_done) and date_done in Unix seconds, by which it is dropped.
type seenEntry struct {
	key  uint64
	done uint32
}

// seenSize is one packed seenEntry.
const seenSize = 12

type wireCursor struct {
	Scan  string `json:"scan"`
	Cycle int64  `json:"cycle"` // Unix ms
	Floor int64  `json:"floor"` // Unix ms
	Seen  string `json:"seen"`  // base64 of packed entries
	Seq   uint64 `json:"seq"`
}

func (s state) encode() []byte {
	buf := make([]byte, 0, len(s.seen)*seenSize)
	for _, e := range s.seen {
		buf = binary.BigEndian.AppendUint64(buf, e.key)
		buf = binary.BigEndian.AppendUint32(buf, e.done)
	}
	b, _ := json.Marshal(wireCursor{Scan: strconv.FormatUint(s.scan, 10), Cycle: s.cycle.UnixMilli(),
		Floor: s.floor.UnixMilli(), Seen: base64.RawStdEncoding.EncodeToString(buf), Seq: s.seq}) // cannot fail
	return b
}

func decodeState(b []byte) (state, error) {
	var w wireCursor
	if err := json.Unmarshal(b, &w); err != nil {
		return state{}, err
	}
	scan, err := strconv.ParseUint(w.Scan, 10, 64)
	if err != nil {
		return state{}, errors.New("bad scan position")
	}
	raw, err := base64.RawStdEncoding.DecodeString(w.Seen)
	if err != nil || len(raw)%seenSize != 0 {
		return state{}, errors.New("bad seen list")
	}
	if w.Cycle <= 0 || w.Floor <= 0 {
		return state{}, errors.New("no cycle or floor time")
	}
	s := state{scan: scan, cycle: time.UnixMilli(w.Cycle).UTC(), floor: time.UnixMilli(w.Floor).UTC(), seq: w.Seq}
	for i := 0; i < len(raw); i += seenSize {
		s.seen = append(s.seen, seenEntry{key: binary.BigEndian.Uint64(raw[i:]), done: binary.BigEndian.Uint32(raw[i+8:])})
	}
	return s, nil
}

// seenKey identifies a finished result: its task, state and date_done.
func seenKey(taskID, status, dateDone string) uint64 {
	h := fnv.New64a()
	for _, s := range []string{taskID, status, dateDone} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// index returns the seen keys as a set.
func (s *state) index() map[uint64]bool {
	m := make(map[uint64]bool, len(s.seen))
	for _, e := range s.seen {
		m[e.key] = true
	}
	return m
}

func (s *state) add(key uint64, done time.Time) {
	s.seen = append(s.seen, seenEntry{key: key, done: uint32(done.Unix())})
}

// prune drops what the sweep no longer reports (finished before floor),
// then the oldest beyond max.
func (s *state) prune(max int) {
	// done is in whole seconds, rounded down: keep the floor's second.
	limit := s.floor.Unix()
	kept := s.seen[:0]
	for _, e := range s.seen {
		if int64(e.done) >= limit {
			kept = append(kept, e)
		}
	}
	if len(kept) > max {
		kept = kept[len(kept)-max:]
	}
	s.seen = kept
}
