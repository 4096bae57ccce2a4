package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// jobWriter imitates one job backend's writes: the seeded backlog and the
// failures written during the measurement, queued on a pipeline.
type jobWriter interface {
	// source says what the writes are, for the result.
	source() string
	// keys are what --reset deletes.
	keys() []string
	// seed queues the i-th backlog entry, its failure before now.
	seed(ctx context.Context, p goredis.Pipeliner, i int, now float64)
	// fail queues the failure of job seq at now; kind is -1 or a bad kind.
	fail(ctx context.Context, p goredis.Pipeliner, seq uint64, now float64, kind int)
	// size is the backlog's size.
	size(ctx context.Context, rdb *goredis.Client) (int64, error)
}

func newJobWriter(cfg JobsConfig, run uint32, rng *rand.Rand) jobWriter {
	if cfg.Backend == BackendBullMQ {
		return &bullmqWriter{prefix: cfg.BullMQPrefix + ":" + cfg.Queue + ":", run: run, huge: cfg.HugeBytes}
	}
	return &sidekiqWriter{key: cfg.key("retry"), run: run, huge: cfg.HugeBytes, rng: rng}
}

// sidekiqWriter ZADDs retry set entries (sidekiqgen.go).
type sidekiqWriter struct {
	key  string
	run  uint32
	huge int
	rng  *rand.Rand
}

func (w *sidekiqWriter) source() string {
	return "ZADD retry (Sidekiq 6 job failures, retry_count 0)"
}

func (w *sidekiqWriter) keys() []string { return []string{w.key} }

func (w *sidekiqWriter) seed(ctx context.Context, p goredis.Pipeliner, i int, now float64) {
	e := seedEntry(w.run, i, now, seedMinAge, w.rng)
	p.ZAdd(ctx, w.key, goredis.Z{Score: e.score, Member: e.member})
}

func (w *sidekiqWriter) fail(ctx context.Context, p goredis.Pipeliner, seq uint64, now float64, kind int) {
	e := liveEntry(w.run, seq, now, kind, w.huge, w.rng)
	p.ZAdd(ctx, w.key, goredis.Z{Score: e.score, Member: e.member})
}

func (w *sidekiqWriter) size(ctx context.Context, rdb *goredis.Client) (int64, error) {
	return rdb.ZCard(ctx, w.key).Result()
}

// bullmqWriter writes what BullMQ 6.7.6 writes when a job with attempts
// left fails and is moved to delayed for its backoff (moveToDelayed-11.lua
// with the job's failedReason and stacktrace as fields to update): the job
// hash's fields, atm incremented, the job id in the delayed set at
// (retry time in ms)·0x1000, and a "delayed" entry on the events stream,
// trimmed to about 10,000 entries as BullMQ's default maxLenEvents.
type bullmqWriter struct {
	prefix string // "<prefix>:<queue>:"
	run    uint32
	huge   int
}

// bullmqRetryDelay is the backoff of the benchmark's jobs, in ms.
const bullmqRetryDelay = 1000

func (w *bullmqWriter) source() string {
	return "job hash + ZADD delayed + XADD events \"delayed\" (BullMQ 6.7.6 moveToDelayed after a failure)"
}

func (w *bullmqWriter) keys() []string { return []string{w.prefix + "delayed", w.prefix + "events"} }

// job queues the job hash of a job that failed attempts times, the last
// time at ms, and its place in the delayed set.
func (w *bullmqWriter) job(ctx context.Context, p goredis.Pipeliner, id, name, data string, ms int64, attempts int, retryAt int64) {
	p.HSet(ctx, w.prefix+id,
		"name", name, "data", data,
		"opts", `{"attempts":25,"backoff":{"type":"fixed","delay":1000}}`,
		"timestamp", strconv.FormatInt(ms-50, 10), "processedOn", strconv.FormatInt(ms-10, 10),
		"failedReason", "failed on purpose",
		"stacktrace", `["Error: failed on purpose\n    at BenchJob (/app/bench.js:1:1)"]`,
		"delay", strconv.FormatInt(retryAt-ms, 10))
	p.HIncrBy(ctx, w.prefix+id, "atm", int64(attempts))
	p.ZAdd(ctx, w.prefix+"delayed", goredis.Z{Score: float64(retryAt * 0x1000), Member: id})
}

func (w *bullmqWriter) seed(ctx context.Context, p goredis.Pipeliner, i int, now float64) {
	// The watcher reads no set, only the events stream: the backlog is
	// delayed jobs with their hashes, due over the next day, and no events.
	ms := int64(now*1000) - int64(seedMinAge*1000)
	retryAt := ms + int64(i%86_400)*1000
	id := jid(w.run, seedBit|uint64(i))
	w.job(ctx, p, id, BenchJobClass, fmt.Sprintf(`{"n":%d,"seed":true}`, i), ms, 1+i%24, retryAt)
}

func (w *bullmqWriter) fail(ctx context.Context, p goredis.Pipeliner, seq uint64, now float64, kind int) {
	ms := int64(now * 1000)
	retryAt := ms + bullmqRetryDelay
	name, data := BenchJobClass, fmt.Sprintf(`{"n":%d}`, seq)
	switch kind {
	case badUnknown:
		name = UnknownJobClass
	case badHuge:
		pad, _ := json.Marshal(strings.Repeat("x", w.huge))
		data = fmt.Sprintf(`{"n":%d,"pad":%s}`, seq, pad)
	case badMalformed:
		data = data[:len(data)/2]
	}
	id := jid(w.run, seq)
	w.job(ctx, p, id, name, data, ms, 1, retryAt)
	p.XAdd(ctx, &goredis.XAddArgs{Stream: w.prefix + "events", MaxLen: 10_000, Approx: true,
		Values: []any{"event", "delayed", "jobId", id, "delay", strconv.FormatInt(retryAt, 10)}})
}

func (w *bullmqWriter) size(ctx context.Context, rdb *goredis.Client) (int64, error) {
	return rdb.ZCard(ctx, w.prefix+"delayed").Result()
}
