package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/adapters/jobs/bullmq"
	"github.com/cablecar/cablecar/adapters/jobs/sidekiq"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestGeneratedEntriesAreWhatTheWatcherReads seeds a real Redis with the
// generator's retry set and live failures (good and bad) and polls the
// real Sidekiq watcher: every good failure is one retrying event with its
// jid, count and next retry time; the seeded entries, older than the
// watcher, give none; the bad ones are skipped by reason or, for the
// unknown class, reported under a class the benchmark's rule leaves
// unmapped.
func TestGeneratedEntriesAreWhatTheWatcherReads(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const run = 0xabcdef01

	now := float64(time.Now().UnixMicro()) / 1e6
	for i := range 2000 {
		e := seedEntry(run, i, now, seedMinAge, rng)
		rdb.ZAdd(ctx, "retry", goredis.Z{Score: e.score, Member: e.member})
	}
	w, err := sidekiq.New(sidekiq.Config{URL: srv.URL, Settle: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Poll(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // live failures after the watcher's start

	const live, every = 40, 4
	scores := map[string]float64{}
	var wr written
	for seq := range uint64(live) {
		kind := badKind(seq, every)
		e := liveEntry(run, seq, float64(time.Now().UnixMicro())/1e6, kind, 70<<10, rng)
		if err := rdb.ZAdd(ctx, "retry", goredis.Z{Score: e.score, Member: e.member}).Err(); err != nil {
			t.Fatal(err)
		}
		wr.count(kind)
		if kind < 0 || kind == badUnknown {
			scores[jid(run, seq)] = e.score
		}
	}
	if wr != (written{Total: 40, Good: 30, Malformed: 4, Unknown: 3, Huge: 3}) {
		t.Fatalf("written %+v", wr)
	}

	// A bad entry is reported by the poll whose span holds its score
	// minus 15 s: up to 9 s after it failed.
	var evs []jobs.Event
	skips := map[string]int{}
	cur := first.Cursor
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		b, err := w.Poll(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		evs, cur = append(evs, b.Events...), b.Cursor
		for _, s := range b.Skipped {
			skips[s.Reason]++
		}
		if len(evs) >= 33 && skips["malformed_json"] >= 4 && skips["too_large"] >= 3 {
			break
		}
	}
	if want := map[string]int{"malformed_json": 4, "too_large": 3}; !mapsEqual(skips, want) {
		t.Errorf("skips %v, want %v", skips, want)
	}
	mapping, err := jobs.ParseMapping(JobsStreamRule, "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range evs {
		if got[e.JobID] {
			t.Errorf("job %s reported twice", e.JobID)
		}
		got[e.JobID] = true
		score, ok := scores[e.JobID]
		if !ok {
			t.Errorf("event for a job not written live: %+v", e)
			continue
		}
		if e.Status != jobs.Retrying || e.RetryCount != 0 || !e.HasRetryCount || e.ErrorClass != "BenchError" || e.Queue != "default" {
			t.Errorf("event %+v", e)
		}
		if d := e.NextRetryAt.Sub(jobs.UnixSeconds(score)); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: next retry %v, want the score %f", e.JobID, e.NextRetryAt, score)
		}
		streams, err := mapping.Streams(&e)
		switch e.Class {
		case BenchJobClass:
			if err != nil || !slices.Equal(streams, []string{JobsStream}) {
				t.Errorf("%s: streams %v, %v", e.JobID, streams, err)
			}
		case UnknownJobClass:
			if !errors.Is(err, jobs.ErrUnmapped) {
				t.Errorf("%s: unknown class mapped to %v, %v", e.JobID, streams, err)
			}
		default:
			t.Errorf("class %q", e.Class)
		}
	}
	if len(got) != len(scores) {
		t.Errorf("%d jobs reported, want %d", len(got), len(scores))
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBadKind(t *testing.T) {
	for _, tc := range []struct {
		every int
		want  []int
	}{
		{0, []int{-1, -1, -1, -1, -1, -1}},
		{1, []int{badMalformed, badUnknown, badHuge, badMalformed, badUnknown, badHuge}},
		{2, []int{-1, badMalformed, -1, badUnknown, -1, badHuge}},
	} {
		var got []int
		for seq := range uint64(6) {
			got = append(got, badKind(seq, tc.every))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("every %d: %v, want %v", tc.every, got, tc.want)
		}
	}
}

func TestJID(t *testing.T) {
	for _, tc := range []struct {
		run uint32
		seq uint64
	}{{0, 0}, {0xdeadbeef, 12345}, {1, seedBit | 99_999}} {
		s := jid(tc.run, tc.seq)
		if len(s) != 24 {
			t.Errorf("jid %q: %d characters, want 24 as Sidekiq's", s, len(s))
		}
		if seq, ok := parseJID(tc.run, s); !ok || seq != tc.seq {
			t.Errorf("parseJID(%q) = %d, %v", s, seq, ok)
		}
		if _, ok := parseJID(tc.run+1, s); ok {
			t.Errorf("parseJID accepted %q for another run", s)
		}
	}
}

func TestParseJobMetrics(t *testing.T) {
	f, err := os.Open("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := parseJobMetrics(f, "sidekiq")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		seriesLag:                          1.5,
		seriesUnmapped:                     7,
		seriesRetrying:                     30000,
		seriesSkipped + `malformed_json"}`: 3,
		seriesSkipped + `too_large"}`:      2,
	}
	if len(m) != len(want) {
		t.Errorf("got %d series %v, want %d", len(m), m, len(want))
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestParseRedisInfo(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n" +
		"# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n" +
		"# Commandstats\r\ncmdstat_zadd:calls=10,usec=40,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_zrangebyscore:calls=3,usec=900,usec_per_call=300.00\r\n"
	cpu, mem, cmds := parseRedisInfo(info)
	if cpu != 3.75 || mem != 1<<20 {
		t.Errorf("cpu %v mem %v", cpu, mem)
	}
	want := map[string]CommandStat{"zadd": {10, 40}, "zrangebyscore": {3, 900}}
	if len(cmds) != 2 || cmds["zadd"] != want["zadd"] || cmds["zrangebyscore"] != want["zrangebyscore"] {
		t.Errorf("commands %v, want %v", cmds, want)
	}
}

// TestBullMQWritesAreWhatTheWatcherReads writes the generator's BullMQ
// backlog and failures to a real Redis and polls the real BullMQ watcher:
// every good failure is one retrying event with its id, retry count 0 and
// next retry time; the backlog writes no events; the bad ones are skipped
// by reason or reported under a class the rule leaves unmapped.
func TestBullMQWritesAreWhatTheWatcherReads(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	const run = 0x01020304
	cfg := JobsConfig{Backend: BackendBullMQ, RedisURL: srv.URL}.withDefaults()
	wr := newJobWriter(cfg, run, rand.New(rand.NewPCG(3, 4)))

	w, err := bullmq.New(bullmq.Config{URL: srv.URL, Queues: []string{cfg.Queue}, Block: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Poll(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := float64(time.Now().UnixMicro()) / 1e6
	p := rdb.Pipeline()
	for i := range 500 {
		wr.seed(ctx, p, i, now)
	}
	const live, every = 40, 4
	var counts written
	for seq := range uint64(live) {
		kind := badKind(seq, every)
		wr.fail(ctx, p, seq, now, kind)
		counts.count(kind)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := wr.size(ctx, rdb); err != nil || n != 500+live {
		t.Fatalf("delayed set holds %d (%v), want %d", n, err, 500+live)
	}

	var evs []jobs.Event
	skips := map[string]int{}
	cur := first.Cursor
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(evs)+len(skips) < 40; {
		b, err := w.Poll(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		evs, cur = append(evs, b.Events...), b.Cursor
		for _, s := range b.Skipped {
			skips[s.Reason]++
		}
	}
	if want := map[string]int{"malformed_json": int(counts.Malformed), "too_large": int(counts.Huge)}; !mapsEqual(skips, want) {
		t.Errorf("skips %v, want %v", skips, want)
	}
	retryAt := jobs.UnixSeconds(float64(int64(now*1000)+bullmqRetryDelay) / 1000)
	classes := map[string]int{}
	got := map[string]bool{}
	for _, e := range evs {
		seq, ok := parseJID(run, e.JobID)
		if !ok || seq&seedBit != 0 || got[e.JobID] {
			t.Errorf("event for job %s (ours %v, seeded %v, again %v)", e.JobID, ok, seq&seedBit != 0, got[e.JobID])
		}
		got[e.JobID] = true
		classes[e.Class]++
		if e.Status != jobs.Retrying || !e.HasRetryCount || e.RetryCount != 0 || e.ErrorMessage != "failed on purpose" || e.Queue != cfg.Queue {
			t.Errorf("event %+v", e)
		}
		if d := e.NextRetryAt.Sub(retryAt); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: next retry %v, want %v", e.JobID, e.NextRetryAt, retryAt)
		}
	}
	if want := map[string]int{BenchJobClass: int(counts.Good), UnknownJobClass: int(counts.Unknown)}; !mapsEqual(classes, want) {
		t.Errorf("events by class %v, want %v", classes, want)
	}
}
