package bench

import "sync/atomic"

// tally counts the deliveries readers see. Goroutine readers share the
// runner's; each read loop has its own, so readers on different cores do
// not fight over the same cache lines for every message (that contention
// was a visible share of the load tool's CPU, which shares the cores with
// the server it measures).
type tally struct {
	lat       histogram
	delivered atomic.Int64

	// owned: one goroutine uses the tally, so countRound may hold
	// deliveries of one round back until flushRounds, adding them to the
	// shared per-round counter together.
	owned   bool
	heldSeq int64
	held    int64
}

// countRound counts one delivery of round seq.
func (t *tally) countRound(r *runner, seq int64) {
	if !t.owned {
		r.addRound(seq, 1)
		return
	}
	if t.held > 0 && seq != t.heldSeq {
		t.flushRounds(r)
	}
	t.heldSeq = seq
	t.held++
}

// flushRounds adds the deliveries held back to the shared counter.
func (t *tally) flushRounds(r *runner) {
	if t.held > 0 {
		r.addRound(t.heldSeq, t.held)
		t.held = 0
	}
}

// addRound counts n deliveries of round seq and wakes the closed loop
// when they complete it.
func (r *runner) addRound(seq, n int64) {
	per := r.perRound.Load()
	if after := r.rounds[seq].Add(n); after >= per && after-n < per {
		select {
		case r.roundDone <- struct{}{}:
		default:
		}
	}
}

// deliveredCount is every tally's deliveries.
func (r *runner) deliveredCount() int64 {
	n := r.tally.delivered.Load()
	for _, t := range r.loops.tallies() {
		n += t.delivered.Load()
	}
	return n
}

// latency is every tally's delivery latencies in one histogram.
func (r *runner) latency() *histogram {
	ts := r.loops.tallies()
	if len(ts) == 0 {
		return &r.tally.lat
	}
	h := new(histogram)
	h.add(&r.tally.lat)
	for _, t := range ts {
		h.add(&t.lat)
	}
	return h
}
