package logbuf

import (
	"fmt"
	"sync"
	"testing"
)

func TestConcurrentWriters(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "w%d\n", i)
			}
		})
	}
	wg.Wait()
	if n := b.Count("\n"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
	if n := b.Count("w3\n"); n != 100 {
		t.Errorf("%d lines from writer 3, want 100", n)
	}
}
