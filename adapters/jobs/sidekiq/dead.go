package sidekiq

import (
	"context"
	"fmt"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// deadPage is how many dead set entries one poll reads at most; the rest
// wait for the next poll (the batch reports the lag).
const deadPage = 500

// readDead reads the dead set from the cursor's score up to upTo. A dead
// entry's score is the time Sidekiq moved it there, so scores only grow
// with insertion (up to clock skew, which Settle absorbs) and a score
// cursor reads each entry once. Entries at exactly the cursor's score are
// told apart by the hashes the cursor keeps.
func (w *Watcher) readDead(ctx context.Context, p *poll, upTo float64) error {
	c := p.cur
	p.deadCovered = c.Dead
	if upTo < c.Dead {
		return nil
	}
	zs, err := w.rdb.ZRangeByScoreWithScores(ctx, w.cfg.key("dead"), &goredis.ZRangeBy{
		Min: formatScore(c.Dead), Max: formatScore(upTo), Count: int64(w.deadPage + len(c.DeadSeen)),
	}).Result()
	if err != nil {
		return fmt.Errorf("sidekiq: read dead set: %w", err)
	}
	last, seen := c.Dead, c.DeadSeen
	for _, z := range zs {
		m, _ := z.Member.(string)
		h := memberHash(m)
		if z.Score == c.Dead && slices.Contains(c.DeadSeen, h) {
			continue
		}
		if z.Score != last {
			last, seen = z.Score, nil
		}
		seen = append(seen, h)
		w.seeDead(p, m, z.Score)
	}
	full := len(zs) == w.deadPage+len(c.DeadSeen)
	switch {
	case full:
		c.Dead, c.DeadSeen = last, seen
		p.deadCovered = last
	case last < upTo:
		c.Dead, c.DeadSeen = upTo, nil
		p.deadCovered = upTo
	default:
		c.Dead, c.DeadSeen = last, seen
		p.deadCovered = upTo
	}
	return nil
}

// seeDead reports one dead entry.
func (w *Watcher) seeDead(p *poll, m string, score float64) {
	where := fmt.Sprintf("dead set entry at score %s", formatScore(score))
	if len(m) > w.cfg.MaxJobBytes {
		p.skip("too_large", "%s: %d bytes, over the %d byte limit", where, len(m), w.cfg.MaxJobBytes)
		return
	}
	j, err := parseJob([]byte(m))
	if err != nil {
		p.skip(skipReason(err), "%s: %v", where, err)
		return
	}
	p.markFailed(j.jid, score)
	p.events = append(p.events, j.failure(jobs.Dead, seconds(score)))
}
