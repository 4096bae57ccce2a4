package bench

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchScheduling puts every thread of this process under SCHED_BATCH;
// threads started later inherit it from the thread that starts them.
//
// The load tool usually shares the machine with the server it measures.
// Under the default policy, each reader the server's write wakes preempts
// the server's writer (wakeup preemption): thousands of context switches
// per broadcast, paid by both. A batch thread runs as long as it would
// otherwise, but never preempts on wakeup, so the tool stops interrupting
// the server, as remote clients would not.
func batchScheduling() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	attr := unix.SchedAttr{Size: uint32(unsafe.Sizeof(unix.SchedAttr{})), Policy: unix.SCHED_BATCH}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setattr SCHED_BATCH on thread %d: %w", tid, err)
		}
	}
	return nil
}
