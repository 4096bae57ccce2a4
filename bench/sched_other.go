//go:build !linux

package bench

import "errors"

// batchScheduling is Linux-only (SCHED_BATCH).
func batchScheduling() error { return errors.New("SCHED_BATCH is Linux-only") }
