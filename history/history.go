// Package history keeps the recent messages of chosen streams, so a client
// of the AnyCable extended protocol (actioncable-v1-ext-json) that was away
// for a moment can ask for what it missed. Each kept message has a
// position: the stream's epoch (a random id, new whenever the stream's
// history was lost) and an offset (1, 2, 3… within the epoch).
//
// The package holds what both stores share: the CABLECAR_HISTORY rules,
// the annotated copy of a recorded message that every node fans out to
// extended clients, the in-memory store, and Select, which turns what a
// store keeps into the answer to a client's request, or ErrCannotRestore.
// The Redis store is adapters/redis/history.go.
package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// InternalPrefix starts the broker stream that carries a recorded
// message's annotated copy: a message published to stream S is recorded
// once, then published again as InternalPrefix+S with its position, and
// nodes fan that copy out to extended clients. Plain clients keep
// receiving the original on S.
const InternalPrefix = "cablecar:history:"

// ErrCannotRestore says the history kept for a stream does not reach back
// to what a client asked for (trimmed, expired, or a new epoch): the
// protocol answers reject_history, never a silent gap.
var ErrCannotRestore = errors.New("history does not reach back that far")

// Entry is one kept message.
type Entry struct {
	Offset uint64
	Time   int64 // Unix milliseconds when it was recorded
	Data   []byte
}

// Snapshot is what a store keeps of one stream now.
type Snapshot struct {
	// Epoch is the stream's epoch; "" when nothing was ever recorded (or
	// all of it was lost).
	Epoch string
	// Last is the offset of the newest message ever recorded in Epoch,
	// kept or not.
	Last uint64
	// Entries are the messages still kept, oldest first, consecutive
	// offsets ending at Last.
	Entries []Entry
	// DroppedAt is the latest time (Unix milliseconds) a message no longer
	// kept may have been recorded at; 0 when none was dropped.
	DroppedAt int64
}

// Position is where a client stands in a stream.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Request is a client's history request: for the streams it has a
// position in, everything after it; for the others, everything recorded
// at or after Since (Unix seconds; 0: nothing).
type Request struct {
	Since   int64               `json:"since"`
	Streams map[string]Position `json:"streams"`
}

// Reader reads what is kept of a stream.
type Reader interface {
	Snapshot(ctx context.Context, stream string) (Snapshot, error)
}

// Select returns the entries of snap the request asks for on stream, or
// ErrCannotRestore when some of them are no longer kept. now and ttl bound
// a request by time: what was recorded before now-ttl may be gone
// without a trace (a whole stream expires after ttl without messages).
func Select(snap Snapshot, stream string, req Request, now time.Time, ttl time.Duration) ([]Entry, error) {
	if pos, ok := req.Streams[stream]; ok {
		return selectFrom(snap, pos)
	}
	if req.Since <= 0 {
		return nil, nil
	}
	since := req.Since * 1000
	if since < now.Add(-ttl).UnixMilli() {
		return nil, fmt.Errorf("%w: since %d is older than the history's ttl %s", ErrCannotRestore, req.Since, ttl)
	}
	if snap.DroppedAt >= since {
		return nil, fmt.Errorf("%w: messages after %d were trimmed", ErrCannotRestore, req.Since)
	}
	i := 0
	for i < len(snap.Entries) && snap.Entries[i].Time < since {
		i++
	}
	return snap.Entries[i:], nil
}

func selectFrom(snap Snapshot, pos Position) ([]Entry, error) {
	if snap.Epoch == "" || pos.Epoch != snap.Epoch {
		return nil, fmt.Errorf("%w: epoch %q is not the stream's (%q)", ErrCannotRestore, pos.Epoch, snap.Epoch)
	}
	if pos.Offset > snap.Last {
		return nil, fmt.Errorf("%w: offset %d is past the stream's last (%d)", ErrCannotRestore, pos.Offset, snap.Last)
	}
	first := snap.Last + 1 // the oldest kept offset
	if len(snap.Entries) > 0 {
		first = snap.Entries[0].Offset
	}
	if pos.Offset+1 < first {
		return nil, fmt.Errorf("%w: offset %d was trimmed (oldest kept %d)", ErrCannotRestore, pos.Offset, first)
	}
	i := 0
	for i < len(snap.Entries) && snap.Entries[i].Offset <= pos.Offset {
		i++
	}
	return snap.Entries[i:], nil
}

// Annotate builds the payload of a recorded message's annotated copy:
// "<offset> <epoch>\n" then the message as published.
func Annotate(epoch string, offset uint64, data []byte) []byte {
	b := make([]byte, 0, 24+len(epoch)+len(data))
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, ' ')
	b = append(b, epoch...)
	b = append(b, '\n')
	return append(b, data...)
}

// ParseAnnotated splits an annotated copy; data aliases payload.
func ParseAnnotated(payload []byte) (epoch string, offset uint64, data []byte, err error) {
	head, data, ok := bytes.Cut(payload, []byte{'\n'})
	if !ok {
		return "", 0, nil, errors.New("annotated message has no header line")
	}
	off, ep, ok := strings.Cut(string(head), " ")
	if !ok || ep == "" {
		return "", 0, nil, fmt.Errorf("annotated message header %q is not \"<offset> <epoch>\"", head)
	}
	offset, err = strconv.ParseUint(off, 10, 64)
	if err != nil || offset == 0 {
		return "", 0, nil, fmt.Errorf("annotated message header %q: bad offset", head)
	}
	return ep, offset, data, nil
}
