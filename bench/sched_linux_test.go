package bench_test

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/bench"
)

// A run puts the load tool's threads under SCHED_BATCH, and says so.
func TestRunIsBatchScheduled(t *testing.T) {
	addr := startServer(t, auth.Config{AllowAnonymous: true, Routes: bench.ServerRoute})
	res := run(t, bench.Config{Scenario: bench.ScenarioConnect, URL: "ws://" + addr + "/cable",
		Connections: 10, Hold: time.Millisecond})
	if !res.SchedBatch {
		t.Errorf("result says sched_batch false; warnings %q", res.Warnings)
	}
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if attr.Policy != unix.SCHED_BATCH {
		t.Errorf("this thread's policy is %d after the run, want SCHED_BATCH (%d)", attr.Policy, unix.SCHED_BATCH)
	}
}
