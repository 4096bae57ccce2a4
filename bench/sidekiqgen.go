package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Sidekiq retry set entries as Sidekiq 6 (6.1 and later) writes them when a
// job raises: the job hash with error_message, error_class, failed_at and
// retry_count added (retried_at from the second failure on), ZADDed to
// "retry" with score failure time + backoff. Times are float Unix seconds.
// The shape is that of adapters/jobs/sidekiq/testdata/sidekiq6/retry.json.

// Job classes the generator writes. JobsStreamRule maps the good one to
// JobsStream; the unknown one has no rule, so the server counts its events
// as unmapped.
const (
	BenchJobClass   = "BenchJob"
	UnknownJobClass = "BenchUnknownJob"
	// JobsStream is the stream the server's rule sends BenchJob's events to.
	JobsStream = "bench-jobs"
	// JobsStreamRule is the CABLECAR_JOB_STREAMS the server needs.
	JobsStreamRule = BenchJobClass + "=" + JobsStream
)

// sidekiqMaxRetries is Sidekiq's default retry count: entries in the retry
// set have retry_count 0 to 24; the 25th failure goes to the dead set.
const sidekiqMaxRetries = 25

// Bad entry kinds, written in turn every BadEvery-th entry.
const (
	badMalformed = iota // truncated JSON: skipped as malformed_json
	badUnknown          // valid, but a class without a stream rule: unmapped
	badHuge             // arguments over the watcher's 64 KiB limit: too_large
	badKinds
)

// sidekiqBackoff is Sidekiq 6.1+'s default delay before retry count c's
// retry: c⁴ + 15 + rand(10)·(c+1) seconds.
func sidekiqBackoff(c int, rng *rand.Rand) float64 {
	return math.Pow(float64(c), 4) + 15 + float64(rng.IntN(10)*(c+1))
}

// sidekiqMeanBackoff is the mean of sidekiqBackoff(c).
func sidekiqMeanBackoff(c int) float64 {
	return math.Pow(float64(c), 4) + 15 + 4.5*float64(c+1)
}

// jid is a Sidekiq job id (24 hex digits, as SecureRandom.hex(12)) that
// carries the run and the entry's number, so that delivered events can be
// matched to what was written.
func jid(run uint32, seq uint64) string {
	return fmt.Sprintf("%08x%016x", run, seq)
}

// parseJID is jid's inverse; ok is false for a jid of another run.
func parseJID(run uint32, s string) (uint64, bool) {
	if len(s) != 24 || s[:8] != fmt.Sprintf("%08x", run) {
		return 0, false
	}
	n, err := strconv.ParseUint(s[8:], 16, 64)
	return n, err == nil
}

// seedBit marks the sequence numbers of seeded entries.
const seedBit = uint64(1) << 60

// retryEntry is one retry set member and its score.
type retryEntry struct {
	member string
	score  float64
}

// sidekiqEntry renders a retry set member. count > 0 adds retried_at (the
// latest failure) and keeps failed_at at the first one, as Sidekiq does.
func sidekiqEntry(jobID, class, args string, first, latest float64, count int) string {
	sec := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	var b strings.Builder
	b.Grow(320 + len(args))
	b.WriteString(`{"retry":true,"queue":"default","class":`)
	b.WriteString(strconv.Quote(class))
	b.WriteString(`,"args":`)
	b.WriteString(args)
	b.WriteString(`,"jid":"`)
	b.WriteString(jobID)
	b.WriteString(`","created_at":`)
	b.WriteString(sec(first - 0.25))
	b.WriteString(`,"enqueued_at":`)
	b.WriteString(sec(first - 0.125))
	b.WriteString(`,"error_message":"failed on purpose","error_class":"BenchError","failed_at":`)
	b.WriteString(sec(first))
	b.WriteString(`,"retry_count":`)
	b.WriteString(strconv.Itoa(count))
	if count > 0 {
		b.WriteString(`,"retried_at":`)
		b.WriteString(sec(latest))
	}
	b.WriteByte('}')
	return b.String()
}

// seedEntry is the i-th entry of a retry set in the steady state of jobs
// that keep failing: each retry count is entered at the same rate and
// stays for its backoff, so count c is picked with weight proportional to
// its mean backoff, and its score lies anywhere in the backoff ahead of
// the last failure. Every failure is at least minAge before now, so that
// a watcher started before the seeding reports none of them.
func seedEntry(run uint32, i int, now, minAge float64, rng *rand.Rand) retryEntry {
	c := pickCount(rng)
	delay := sidekiqBackoff(c, rng)
	latest := now - minAge - rng.Float64()*delay
	first := latest - float64(c)*30 // earlier failures: not read by anyone
	args := fmt.Sprintf(`[%d,"seed"]`, i)
	m := sidekiqEntry(jid(run, seedBit|uint64(i)), BenchJobClass, args, first, latest, c)
	return retryEntry{member: m, score: latest + delay}
}

// pickCount draws a retry count with weight proportional to its mean
// backoff.
func pickCount(rng *rand.Rand) int {
	var total float64
	for c := range sidekiqMaxRetries {
		total += sidekiqMeanBackoff(c)
	}
	x := rng.Float64() * total
	for c := range sidekiqMaxRetries {
		if x -= sidekiqMeanBackoff(c); x < 0 {
			return c
		}
	}
	return sidekiqMaxRetries - 1
}

// liveEntry is the entry a job's first failure (retry_count 0) writes at
// now. kind is -1 for a good entry, else a bad kind.
func liveEntry(run uint32, seq uint64, now float64, kind, hugeBytes int, rng *rand.Rand) retryEntry {
	class := BenchJobClass
	args := fmt.Sprintf(`[%d,"live"]`, seq)
	switch kind {
	case badUnknown:
		class = UnknownJobClass
	case badHuge:
		pad, _ := json.Marshal(strings.Repeat("x", hugeBytes))
		args = `[` + strconv.FormatUint(seq, 10) + `,` + string(pad) + `]`
	}
	m := sidekiqEntry(jid(run, seq), class, args, now, now, 0)
	if kind == badMalformed {
		m = m[:len(m)/2]
	}
	return retryEntry{member: m, score: now + sidekiqBackoff(0, rng)}
}

// badKind is the kind of entry seq (counting from 0): every every-th entry
// is bad, the kinds in turn; -1 for a good one.
func badKind(seq uint64, every int) int {
	if every <= 0 || (seq+1)%uint64(every) != 0 {
		return -1
	}
	return int((seq+1)/uint64(every)-1) % badKinds
}
