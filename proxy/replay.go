package proxy

import (
	"context"
	"time"
)

// Replayer gives a subscription, right after its confirm_subscription, the
// messages that describe where its streams stand now: the last job event
// kept for each (adapters/jobs), so a page opened after a job died still
// learns its fate. Replay runs on a goroutine of its own and may do IO; it
// returns the payloads to send, in order, as message frames exactly like a
// live broadcast's.
type Replayer interface {
	// Replays reports whether channel's subscriptions get a replay at all;
	// it runs on the subscribe path, so it must be fast.
	Replays(channel string) bool
	// Replay returns the payloads for a subscription to streams.
	Replay(ctx context.Context, channel string, streams []string) [][]byte
}

// replayTimeout bounds one Replay call: a late state is worth less than a
// subscription that does not wait on a slow store.
const replayTimeout = 2 * time.Second

// SetReplayer installs r. Call it before Serve.
func (s *Server) SetReplayer(r Replayer) { s.replayer = r }

// replay sends sub what the replayer has for it, if sub is still live by
// then. A live broadcast may race it and arrive first: the replayed state
// is then that same event or a newer one, never an older one, because the
// store keeps the last state before the broadcast is published.
func (c *conn) replay(sub *subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
	defer cancel()
	payloads := c.srv.replayer.Replay(ctx, sub.channel, sub.streams)
	if len(payloads) == 0 {
		return
	}
	c.mu.Lock()
	live := c.subs[sub.identifier] == sub && c.state == stateOpen
	c.mu.Unlock()
	if !live {
		return
	}
	for _, p := range payloads {
		c.send(messageFrame(sub.quoted, p))
	}
}
