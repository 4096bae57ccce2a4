package jobs

import (
	"context"
	"log/slog"
)

// Replayer sends a new subscription the last job event of its streams,
// when its channel's route opts in; it satisfies proxy.Replayer.
type Replayer struct {
	Store Store
	// OptsIn reports whether channel's route opts in (auth's "replay:").
	OptsIn func(channel string) bool
	Log    *slog.Logger
}

// Replays reports whether channel's route opts in.
func (r *Replayer) Replays(channel string) bool { return r.OptsIn != nil && r.OptsIn(channel) }

// Replay returns the kept last states of streams, or nothing when the
// channel does not opt in or the store cannot be read (the subscription
// then sees only live events, as without replay).
func (r *Replayer) Replay(ctx context.Context, channel string, streams []string) [][]byte {
	if !r.Replays(channel) {
		return nil
	}
	out, err := r.Store.Last(ctx, streams)
	if err != nil && r.Log != nil {
		r.Log.Warn("last job state not replayed", "channel", channel, "err", err)
	}
	return out
}
