// Package outage holds what the brokers share about a lost connection to
// their server: how long to wait before the next attempt, and how an
// outage is logged (once when it starts, at debug level per retry).
package outage

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Doubling returns lo doubled once per failure, capped at hi (and never
// below lo).
func Doubling(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	return max(min(d, hi), lo)
}

// Backoff returns the wait before attempt failures+1: Doubling, then
// jittered down by up to half, so nodes that lost the same server do not
// all come back at the same instant.
func Backoff(lo, hi time.Duration, failures int) time.Duration {
	d := min(Doubling(lo, hi, failures), hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Messages are one broker's log texts for a failed connection attempt.
type Messages struct {
	// Lost is logged at error level when a working connection fails.
	Lost string
	// CannotConnect is logged at error level when the first connection
	// of a run cannot be made.
	CannotConnect string
	// Retry is logged at debug level for every further failed attempt.
	Retry string
}

// Attempt is one failed connection attempt.
type Attempt struct {
	Reason   error         // why it failed, in the operator's words
	WasUp    bool          // a working connection was lost
	First    bool          // the first attempt of a run that was never up
	Failures int           // failed attempts in a row, this one included
	RetryIn  time.Duration // the wait before the next attempt
	Streams  int           // streams wanted, which miss messages meanwhile
}

// Log logs a once at error level when an outage starts (a working
// connection lost, or the first one not made), else at debug level, so a
// long outage is one line, not one per retry.
func (m Messages) Log(log *slog.Logger, a Attempt) {
	switch {
	case a.WasUp:
		log.Error(m.Lost, "err", a.Reason, "streams", a.Streams, "retry_in", a.RetryIn)
	case a.First:
		log.Error(m.CannotConnect, "err", a.Reason, "retry_in", a.RetryIn)
	default:
		log.Debug(m.Retry, "err", a.Reason, "attempt", a.Failures, "retry_in", a.RetryIn)
	}
}

// Retry runs session until ctx is done, again after each failure, waiting
// Backoff(lo, hi, failures) between attempts; a session that was up resets
// the count. note hears of every failure before the wait. Retry returns
// once ctx is done, never on a failure: a broker keeps trying.
func Retry(ctx context.Context, lo, hi time.Duration, session func(context.Context) (wasUp bool, err error),
	note func(err error, wasUp bool, failures int, retryIn time.Duration)) {
	failures := 0
	for {
		wasUp, err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			failures = 0
		}
		delay := Backoff(lo, hi, failures)
		failures++
		note(err, wasUp, failures, delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
