package history

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkMemoryStore fills the in-memory store: 100 streams of 100
// messages of 95 bytes (a small Turbo Stream), and reports the heap each
// kept message costs (B/msg).
func BenchmarkMemoryStore(b *testing.B) {
	payload := []byte(`{"html":"` + strings.Repeat("x", 84) + `"}`)
	const streams, size = 100, 100
	names := make([]string, streams)
	for i := range names {
		names[i] = "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQv" + strconv.Itoa(i)
	}
	var perMsg float64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := NewMemory(Rules{{Pattern: "document:*", Size: size, TTL: time.Hour}})
		for i := 0; i < streams*size; i++ {
			m.Append(names[i%streams], payload)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if _, n := m.Len(); n != streams*size {
			b.Fatalf("%d messages kept, want %d", n, streams*size)
		}
		perMsg = float64(after.HeapAlloc-before.HeapAlloc) / (streams * size)
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perMsg, "B/msg")
}
