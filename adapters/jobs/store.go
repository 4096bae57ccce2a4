package jobs

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost means another node holds the backend's lease: the commit
// was refused and nothing of it happened.
var ErrLeaseLost = errors.New("lease held by another node")

// Message is one event on its way to one stream.
type Message struct {
	Stream  string // as subscribers see it, without the channel prefix
	Payload []byte // the encoded event
}

// Store keeps what must be shared by every node watching the same
// backends: the lease that says which node watches, the cursor it has
// reached, and the last job state of each stream. Commit makes publishing
// and advancing the cursor one step, so an event is published once however
// the lease moves.
type Store interface {
	// Acquire takes the lease named backend for holder, or renews it when
	// holder has it, for ttl. It reports whether holder holds it now.
	Acquire(ctx context.Context, backend, holder string, ttl time.Duration) (bool, error)
	// Release gives up the lease if holder holds it, so another node takes
	// over without waiting for it to expire.
	Release(ctx context.Context, backend, holder string) error
	// Cursor returns the backend's stored cursor, nil when there is none.
	Cursor(ctx context.Context, backend string) ([]byte, error)
	// Commit, as one step and only while holder holds the lease (else
	// ErrLeaseLost): publishes each message to its stream, keeps it as the
	// stream's last job state, stores cursor and renews the lease for ttl.
	Commit(ctx context.Context, backend, holder string, ttl time.Duration, msgs []Message, cursor []byte) error
	// Last returns the kept last job state of each of streams that has one.
	Last(ctx context.Context, streams []string) ([][]byte, error)
}
