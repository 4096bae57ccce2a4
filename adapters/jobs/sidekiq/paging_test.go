package sidekiq

import (
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestRetryPagingUnderInserts: failures keep landing in the retry window
// while a poll reads it page by page. Each entry is still reported exactly
// once. With offset paging, an entry pushed onto the next page by an insert
// was read twice (about 1% of events at 1,000 failures/s, found by `cablecar
// bench jobs`).
func TestRetryPagingUnderInserts(t *testing.T) {
	h := newHarness(t, Config{})
	_, from := h.start()
	const total = 3000 // six pages of the c=0 window
	for i := range total {
		f := from + 0.05 + float64(i)*0.0001
		m := fmt.Sprintf(`{"retry":true,"queue":"default","class":"X","args":[],"jid":"j%05d","failed_at":%f,"retry_count":0}`, i, f)
		h.zadd("retry", f+15, m)
	}
	h.waitCovered(from + 0.5)
	cur := []byte(fmt.Sprintf(`{"v":1,"f":%f,"d":%f,"sw":{"p":0,"from":%f,"to":%f}}`, from, from, from, from))
	for round := range 3 {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// Failures from before the span, scored at the window's low
				// end: never reported, they only shift what follows them.
				m := fmt.Sprintf(`{"class":"X","jid":"old%d-%d","failed_at":%f,"retry_count":0}`, round, n, from-5)
				h.rdb.ZAdd(h.ctx, "retry", goredis.Z{Score: from + 14.6, Member: m})
			}
		})
		b := h.poll(cur)
		close(stop)
		wg.Wait()
		seen := map[string]int{}
		for _, e := range b.Events {
			seen[e.JobID]++
		}
		if len(seen) != total || len(b.Events) != total {
			t.Fatalf("round %d: %d events for %d distinct jobs, want each of %d exactly once", round, len(b.Events), len(seen), total)
		}
	}
}
