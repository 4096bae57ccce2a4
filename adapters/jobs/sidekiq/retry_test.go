package sidekiq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// memberCounter counts the sorted set members Redis sends the watcher:
// what a poll costs, whatever the set's size.
type memberCounter struct{ n int }

func (*memberCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (m *memberCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		m.count(cmd)
		return err
	}
}

func (m *memberCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			m.count(c)
		}
		return err
	}
}

func (m *memberCounter) count(cmd goredis.Cmder) {
	switch c := cmd.(type) {
	case *goredis.ZSliceCmd:
		m.n += len(c.Val())
	case *goredis.ScanCmd:
		keys, _ := c.Val()
		m.n += len(keys) / 2
	}
}

// TestCostIndependentOfSize fills the retry set with 100,000 entries that
// failed before the watcher started, spread over the next month of retry
// times as a busy Sidekiq's would be, then checks that each poll reads a
// bounded number of members (the sweep's pace plus the few old entries in
// the current windows), far below the set's size, and still finds the
// new failures among them.
func TestCostIndependentOfSize(t *testing.T) {
	const size = 100_000
	h := newHarness(t, Config{SweepCount: 200})
	b0, base := h.start()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 5000 {
		zs := make([]goredis.Z, 0, 5000)
		for j := i; j < i+5000; j++ {
			c := rng.IntN(25)
			f := base - 3600 - rng.Float64()*86400*7 // failed hours to days ago
			score := base + rng.Float64()*86400*30
			zs = append(zs, goredis.Z{Score: score, Member: fmt.Sprintf(
				`{"retry":true,"queue":"default","class":"OldJob","args":[%d],"jid":"old%020d","error_class":"E","failed_at":%f,"retry_count":%d}`,
				j, j, f, c)})
		}
		if err := h.rdb.ZAdd(h.ctx, "retry", zs...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	counter := &memberCounter{}
	h.w.rdb.AddHook(counter)

	cur := b0.Cursor
	var want, got []string
	for i := range 5 {
		f := msAligned(h.now())
		jid := fmt.Sprintf("new%021d", i)
		want = append(want, jid)
		// retry_again.json has retry_count 2: 2⁴ + 15 + jitter.
		h.zadd("retry", f+31+3, render(t, "sidekiq7", "retry_again", fx{JID: jid, Created: f - 100, Failed: f}))
		h.waitCovered(f)
		counter.n = 0
		b := h.poll(cur)
		cur = b.Cursor
		t.Logf("poll %d: %d members read", i, counter.n)
		if counter.n > 1000 {
			t.Errorf("poll %d read %d members of a %d-member set; want at most 1000", i, counter.n, size)
		}
		for _, e := range b.Events {
			got = append(got, e.JobID)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reported %v, want exactly the new failures %v", got, want)
	}
}

// TestSweep: retries outside the default backoff's windows (a custom
// sidekiq_retry_in of 3 s, a retry_count above MaxRetryCount) are found by
// the sweep alone, once each; with the sweep off they are not found, which
// is the documented limit.
func TestSweep(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sweep int
		want  []string
	}{
		{"sweep", 2, []string{"custom0000000000000000000", "highcount000000000000000"}},
		{"off", -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{SweepCount: tc.sweep, MaxRetryCount: 25})
			b0, base := h.start()
			f1, f2 := msAligned(base+0.05), msAligned(base+0.06)
			h.zadd("retry", f1+3, fmt.Sprintf(`{"class":"C","jid":"custom0000000000000000000","args":[],"failed_at":%v,"retry_count":0,"error_class":"E"}`, f1))
			h.zadd("retry", f2+26*26*26*26+15+1, fmt.Sprintf(`{"class":"C","jid":"highcount000000000000000","args":[],"failed_at":1,"retried_at":%v,"retry_count":26,"error_class":"E"}`, f2))
			// Old entries for the sweep to walk past.
			for i := range 20 {
				h.zadd("retry", base+float64(i), fmt.Sprintf(`{"class":"C","jid":"old%d","args":[],"failed_at":%v,"retry_count":0,"error_class":"E"}`, i, base-100))
			}
			h.waitCovered(f2)
			cur := b0.Cursor
			var got []string
			for range 30 { // several full passes of a 22-entry set
				b := h.poll(cur)
				cur = b.Cursor
				for _, e := range b.Events {
					got = append(got, e.JobID)
				}
			}
			slices.Sort(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reported %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCatchUp: after a long gap (a handover after an outage), a poll
// covers at most a minute of failures and reports its lag; the following
// polls catch up, and every failure is reported exactly once, in order.
func TestCatchUp(t *testing.T) {
	h := newHarness(t, Config{SweepCount: -1})
	b0, base := h.start()
	c, err := parseCursor(b0.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	c.Failed = base - 640 // the last poll was over ten minutes ago
	var want []string
	for i := range 16 {
		f := msAligned(base - 630 + float64(i)*40)
		jid := fmt.Sprintf("burst%019d", i)
		want = append(want, jid)
		h.zadd("retry", f+15+float64(i%10), render(t, "sidekiq6", "retry", fx{JID: jid, Failed: f}))
	}
	cur := c.encode()
	var got []string
	lagged := false
	for range 14 {
		b := h.poll(cur)
		cur = b.Cursor
		lagged = lagged || b.Lag > 0
		for _, e := range b.Events {
			got = append(got, e.JobID)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reported %v, want each of %v once, in order", got, want)
	}
	if !lagged {
		t.Error("no batch reported a lag while catching up")
	}
}

// TestOverflow: a burst beyond ReadBudget is read up to the budget (whole
// pages), the rest passed over and reported as an "overflow" skip, and
// the watcher goes on. While the burst sits in the windows (the jitter
// span), later polls overflow too; a failure that sorts before the
// budget's end is still reported.
func TestOverflow(t *testing.T) {
	h := newHarness(t, Config{ReadBudget: 10, SweepCount: -1})
	b0, base := h.start()
	zs := make([]goredis.Z, 0, 600)
	for i := range 600 {
		f := msAligned(base + 0.05)
		zs = append(zs, goredis.Z{Score: f + 15 + float64(i)/100, Member: fmt.Sprintf(
			`{"class":"C","jid":"burst%d","args":[],"failed_at":%v,"retry_count":0,"error_class":"E"}`, i, f)})
	}
	if err := h.rdb.ZAdd(h.ctx, "retry", zs...).Err(); err != nil {
		t.Fatal(err)
	}
	h.waitCovered(base + 0.05)
	b := h.poll(b0.Cursor)
	if len(b.Events) != retryPage || len(b.Skipped) != 1 || b.Skipped[0].Reason != "overflow" {
		t.Fatalf("%d events, skips %+v; want %d events and one overflow", len(b.Events), b.Skipped, retryPage)
	}
	f := msAligned(h.now())
	h.zadd("retry", f+16, fmt.Sprintf(`{"class":"C","jid":"later","args":[],"failed_at":%v,"retry_count":0,"error_class":"E"}`, f))
	h.waitCovered(f)
	b = h.poll(b.Cursor)
	if len(b.Events) != 1 || b.Events[0].JobID != "later" {
		t.Errorf("after the overflow: %+v, want the one later failure", b.Events)
	}
	for _, s := range b.Skipped {
		if s.Reason != "overflow" {
			t.Errorf("after the overflow: skip %+v", s)
		}
	}
}
