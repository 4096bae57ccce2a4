// Package logbuf holds Buffer, which captures what a logger or a child
// process writes while a test or tool reads it.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent writers and readers. The
// zero value is an empty buffer without a limit, ready to use.
type Buffer struct {
	// Limit is the most bytes kept; writes past it are dropped (and
	// reported as written), so a long run measures the process, not its
	// log. 0 means no limit.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p, or drops it past Limit; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len()+len(p) > b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times s occurs in what was written.
func (b *Buffer) Count(s string) int { return strings.Count(b.String(), s) }
