package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, us := range []uint64{0, 1, 127, 128, 129, 130, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1} {
		i := histIndex(us)
		if i < 0 || i >= histBuckets {
			t.Fatalf("index(%d) = %d, outside 0…%d", us, i, histBuckets)
		}
		if i < prev {
			t.Errorf("index(%d) = %d went backwards from %d", us, i, prev)
		}
		prev = i
		if up := histUpper(i); up < us {
			t.Errorf("upper(index(%d)) = %d, below the value", us, up)
		}
		if i > 0 && histUpper(i-1) >= us {
			t.Errorf("%d also fits bucket %d (upper %d)", us, i-1, histUpper(i-1))
		}
	}
}

func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100_000 {
		d := time.Duration(rng.ExpFloat64()*3000) * time.Microsecond // mean 3 ms, long tail
		vals = append(vals, d)
		h.record(d)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff < -0.02 || diff > 0.02 {
			t.Errorf("p%g = %v, want %v within 2%%", q*100, got, want)
		}
	}
	if h.maximum().Microseconds() != vals[len(vals)-1].Microseconds() {
		t.Errorf("max %v, want %v", h.maximum(), vals[len(vals)-1])
	}
	if h.count() != uint64(len(vals)) {
		t.Errorf("count %d", h.count())
	}
}
