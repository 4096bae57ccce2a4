package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies are kept in a log-linear histogram of microseconds: exact below
// 128 µs, then 64 buckets per power of two, so every reported percentile is
// within 1.6% of the true value. Recording is one atomic add and needs no
// lock, so thousands of reader goroutines can share one histogram.
const (
	histLinear  = 128 // values below this have a bucket each
	histSubBits = 6   // 2^6 = 64 buckets per power of two above that
	histBuckets = histLinear + (64-7)*(1<<histSubBits)
)

// histogram counts durations. The zero value is ready to use and safe for
// concurrent use.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // microseconds
}

func histIndex(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1 // us>>shift is in [64, 127]
	return histLinear + (shift-1)<<histSubBits + int(us>>shift) - 1<<histSubBits
}

// histUpper is the largest value that falls into bucket i.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	i -= histLinear
	shift := i>>histSubBits + 1
	sub := uint64(i&(1<<histSubBits-1) + 1<<histSubBits)
	return (sub+1)<<shift - 1
}

// record adds one duration; negative ones count as zero.
func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[histIndex(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// count is how many durations were recorded.
func (h *histogram) count() uint64 { return h.n.Load() }

// quantile returns the q-quantile (0 < q ≤ 1), or 0 when empty. It reads
// the counters without stopping writers, so call it once recording is done
// for an exact answer.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			us := int64(histUpper(i))
			if m := h.max.Load(); us > m {
				us = m // the bucket's top is past anything seen
			}
			return time.Duration(us) * time.Microsecond
		}
	}
	return h.maximum()
}

func (h *histogram) maximum() time.Duration {
	return time.Duration(h.max.Load()) * time.Microsecond
}

// summary is the histogram's usual percentiles in milliseconds.
func (h *histogram) summary() *Latency {
	if h.count() == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &Latency{
		Count: h.count(),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(h.maximum()),
	}
}

// add adds o's counts to h.
func (h *histogram) add(o *histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.n.Add(o.n.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}
