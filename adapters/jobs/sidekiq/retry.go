package sidekiq

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// Sidekiq's default backoff (job_retry.rb, 6.1 to 8.x): an entry with
// retry_count c is scored failure time + c⁴ + 15 + jitter, with jitter
// rand(10)*(c+1) (6.x, 7.x) or rand(10*(c+1)) (8.x): 0 to 10(c+1)
// seconds. The score is taken a moment after the failure time, hence the
// slack above; the slack below absorbs float rounding.
const (
	backoffBase = 15
	slackBelow  = 0.5
	slackAbove  = 5.0
)

// retryPage is the page size of one ZRANGEBYSCORE on the retry set.
const retryPage = 500

// maxSpan bounds the failure times one poll covers, so that after a long
// gap (an outage, a late handover) the windows stay narrow and the
// watcher catches up over several polls, reporting its lag.
const maxSpan = 60.0

// backoffRange is the delay, score minus failure time, that Sidekiq's
// default backoff gives an entry with retry count c.
func backoffRange(c int) (lo, hi float64) {
	base := math.Pow(float64(c), 4) + backoffBase
	return base - slackBelow, base + 10*float64(c+1) + slackAbove
}

// standard reports whether an entry with retry count c, failure time f and
// score s lies where the default backoff puts it, i.e. whether the windows
// find it (else the sweep reports it).
func (w *Watcher) standard(c int, f, s float64) bool {
	if c < 0 || c > w.cfg.MaxRetryCount {
		return false
	}
	lo, hi := backoffRange(c)
	return s-f >= lo && s-f <= hi
}

// window is a span of retry set scores.
type window struct{ lo, hi float64 }

// windows are the score spans where the default backoff puts entries that
// failed in (from, to], one per retry count, merged where they overlap.
func (w *Watcher) windows(from, to float64) []window {
	ws := make([]window, 0, w.cfg.MaxRetryCount+1)
	for c := 0; c <= w.cfg.MaxRetryCount; c++ {
		lo, hi := backoffRange(c)
		ws = append(ws, window{from + lo, to + hi})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].lo < ws[j].lo })
	merged := ws[:1]
	for _, x := range ws[1:] {
		last := &merged[len(merged)-1]
		if x.lo <= last.hi {
			last.hi = math.Max(last.hi, x.hi)
			continue
		}
		merged = append(merged, x)
	}
	return merged
}

// readRetry reports the retry set entries that failed after the cursor's
// failure time and up to upTo (at most maxSpan later). The retry set is
// ordered by the next retry time, not by insertion, so it reads only the
// score windows where the default backoff puts those failures: a poll's
// cost follows the failure rate, never the set's size. ReadBudget caps the
// entries one poll reads; beyond it the rest of the windows is passed over
// and reported as an "overflow" skip.
func (w *Watcher) readRetry(ctx context.Context, p *poll, upTo float64) error {
	from := p.cur.Failed
	if upTo <= from {
		return nil
	}
	to := min(upTo, from+maxSpan)
	ws := w.windows(from, to)
	first, err := w.firstPages(ctx, ws)
	if err != nil {
		return err
	}
	// Failures keep arriving while a window is read page by page. Paging
	// by offset would then read an entry twice (an insert before it pushes
	// it onto the next page) or never (a removal pulls it back), so each
	// page starts at the last page's highest score, and seen drops the
	// entries read again at that score.
	seen := map[string]bool{}
	read := 0
	for i, win := range ws {
		zs := first[i]
		for off := int64(0); ; {
			for _, z := range zs {
				m, _ := z.Member.(string)
				if !seen[m] {
					seen[m] = true
					w.seeRetry(p, m, z.Score, from, to)
				}
			}
			read += len(zs)
			if len(zs) < retryPage {
				break
			}
			if read >= w.cfg.ReadBudget {
				p.skip("overflow", "retry set: more than %d entries in the windows of failures up to %s; the rest were passed over",
					w.cfg.ReadBudget, formatScore(to))
				p.cur.Failed = to
				return nil
			}
			win, off = nextPage(win, off, zs)
			if zs, err = w.retryPage(ctx, win, off).Result(); err != nil {
				return fmt.Errorf("sidekiq: read retry set: %w", err)
			}
		}
	}
	p.cur.Failed = to
	return nil
}

// nextPage is where the page after zs starts: at its highest score, or, in
// the unlikely page whose entries all share one score, one page further
// along that score.
func nextPage(win window, off int64, zs []goredis.Z) (window, int64) {
	last := zs[len(zs)-1].Score
	if zs[0].Score == last {
		return win, off + retryPage
	}
	win.lo = last
	return win, 0
}

// firstPages reads the first page of every window in one round trip.
func (w *Watcher) firstPages(ctx context.Context, ws []window) ([][]goredis.Z, error) {
	cmds := make([]*goredis.ZSliceCmd, len(ws))
	_, err := w.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, win := range ws {
			cmds[i] = w.retryPageOn(ctx, pipe, win, 0)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sidekiq: read retry set: %w", err)
	}
	out := make([][]goredis.Z, len(ws))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

func (w *Watcher) retryPage(ctx context.Context, win window, off int64) *goredis.ZSliceCmd {
	return w.retryPageOn(ctx, w.rdb, win, off)
}

func (w *Watcher) retryPageOn(ctx context.Context, c goredis.Cmdable, win window, off int64) *goredis.ZSliceCmd {
	return c.ZRangeByScoreWithScores(ctx, w.cfg.key("retry"), &goredis.ZRangeBy{
		Min: formatScore(win.lo), Max: formatScore(win.hi), Offset: off, Count: retryPage,
	})
}

// seeRetry reports one retry entry found by the windows if it failed in
// (from, to] with the default backoff. An entry that cannot be read is
// reported by the one poll whose span holds its score minus the smallest
// backoff, so it is reported once however many windows it sits in.
func (w *Watcher) seeRetry(p *poll, m string, score, from, to float64) {
	badOnce := func() bool { s := score - backoffBase; return s > from && s <= to }
	where := fmt.Sprintf("retry set entry at score %s", formatScore(score))
	if len(m) > w.cfg.MaxJobBytes {
		if badOnce() {
			p.skip("too_large", "%s: %d bytes, over the %d byte limit", where, len(m), w.cfg.MaxJobBytes)
		}
		return
	}
	j, f, err := retryJob(m)
	if err != nil {
		if badOnce() {
			p.skip(skipReason(err), "%s: %v", where, err)
		}
		return
	}
	if f <= from || f > to || !w.standard(j.retryCount(), f, score) {
		return // another poll's, or the sweep's
	}
	p.retrying(j, f, score)
}

// retryJob decodes a retry entry and its failure time.
func retryJob(m string) (*job, float64, error) {
	j, err := parseJob([]byte(m))
	if err != nil {
		return nil, 0, err
	}
	f, ok := j.failedAt()
	if !ok {
		return nil, 0, fmt.Errorf("%w: no failed_at", errMissing)
	}
	if j.retryCount() < 0 {
		return nil, 0, fmt.Errorf("%w: no retry_count", errMissing)
	}
	return j, f, nil
}

// retrying adds the retrying event of j, which failed at f and runs again
// at score.
func (p *poll) retrying(j *job, f, score float64) {
	p.markFailed(j.jid, f)
	e := j.failure(jobs.Retrying, seconds(f))
	e.NextRetryAt = seconds(score)
	p.events = append(p.events, e)
}

// sweepRetry takes the next SweepCount steps of a ZSCAN over the retry set
// and reports the entries the windows cannot find (a custom
// sidekiq_retry_in, a retry count above MaxRetryCount) that failed within
// the current pass's span. Each pass reports the failures between the
// previous pass's start and its own, so an entry that waits in the set
// for a whole pass is reported once.
func (w *Watcher) sweepRetry(ctx context.Context, p *poll) error {
	if w.cfg.SweepCount < 0 {
		return nil
	}
	s := &p.cur.Sweep
	if s.Pos == 0 {
		s.From, s.To = s.To, p.cur.Failed
	}
	keys, next, err := w.rdb.ZScan(ctx, w.cfg.key("retry"), s.Pos, "", int64(w.cfg.SweepCount)).Result()
	if err != nil {
		return fmt.Errorf("sidekiq: sweep retry set: %w", err)
	}
	seen := make(map[string]bool, len(keys)/2)
	for i := 0; i+1 < len(keys); i += 2 {
		m := keys[i]
		score, ok := parseScore(keys[i+1])
		if !ok || len(m) > w.cfg.MaxJobBytes || seen[m] {
			continue
		}
		seen[m] = true
		j, f, err := retryJob(m)
		if err != nil || f <= s.From || f > s.To || w.standard(j.retryCount(), f, score) {
			continue // bad entries are the windows' to report
		}
		p.retrying(j, f, score)
	}
	s.Pos = next
	return nil
}

// parseScore reads a score as Redis writes it.
func parseScore(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}
