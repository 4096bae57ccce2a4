package jobstest

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// celeryStartTimeout bounds how long StartCelery waits for the worker.
const celeryStartTimeout = 60 * time.Second

// python is Debian's interpreter, which has python3-celery; a pyenv
// python3 earlier on PATH does not.
const python = "/usr/bin/python3"

// execWithParent replaces the Python process with the given module, after
// asking Linux to kill it when its parent dies, so no worker outlives a
// test binary that crashed. Elsewhere prctl is absent and skipped.
const execWithParent = `import ctypes, os, sys
try:
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except Exception:
    pass
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
`

// Celery is a running Celery worker (Debian's python3-celery) for the tasks
// of testdata/celery_tasks.py, with a sender process for Send. Its methods
// are safe for concurrent use.
type Celery struct {
	tb      testing.TB
	logPath string

	mu     sync.Mutex // guards following; serialises Send
	stdin  io.WriteCloser
	out    *bufio.Reader
	procs  []*exec.Cmd
	dones  []chan struct{}
	closed bool
}

// StartCelery runs a real Celery worker whose broker and result backend are
// both the Redis at redisURL (result_extended and task_track_started on,
// the solo pool), and waits until it is ready. The tasks are tasks.add(x,
// y), tasks.explode(message) (raises ValueError(message)), tasks.flaky
// (message) (retries once with RuntimeError(message), then fails with it)
// and tasks.steps(n) (reports state PROGRESS with {"done": i, "of": n} for
// i in 1..n, returns n). The worker stops when tb's test ends. StartCelery
// fails tb when python3-celery is missing.
func StartCelery(tb testing.TB, redisURL string) *Celery {
	tb.Helper()
	if out, err := exec.Command(python, "-c", "import celery").CombinedOutput(); err != nil {
		tb.Fatalf("jobstest: %s cannot import celery (install python3-celery: scripts/install-test-deps): %v\n%s", python, err, out)
	}
	dir, err := testdataDir()
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	c := &Celery{tb: tb, logPath: filepath.Join(tb.TempDir(), "celery-worker.log")}
	tb.Cleanup(c.stop)
	env := append(os.Environ(), "CELERY_REDIS_URL="+redisURL, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")

	logFile, err := os.Create(c.logPath)
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	defer logFile.Close() // the child has its own copy
	worker := exec.Command(python, "-c", execWithParent, "-m", "celery", "-A", "celery_tasks", "worker",
		"--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
		"--hostname=cablecar-test@%h")
	worker.Dir, worker.Env, worker.Stdout, worker.Stderr = dir, env, logFile, logFile
	if err := worker.Start(); err != nil {
		tb.Fatalf("jobstest: start the Celery worker: %v", err)
	}
	c.track(worker)

	sender := exec.Command(python, "-c", execWithParent, "celery_send.py")
	sender.Dir, sender.Env, sender.Stderr = dir, env, logFile
	if c.stdin, err = sender.StdinPipe(); err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	stdout, err := sender.StdoutPipe()
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	if err := sender.Start(); err != nil {
		tb.Fatalf("jobstest: start the Celery sender: %v", err)
	}
	c.out = bufio.NewReader(stdout)
	c.track(sender)

	deadline := time.Now().Add(celeryStartTimeout)
	for !strings.Contains(readLog(c.logPath), " ready.") {
		select {
		case <-c.dones[0]:
			tb.Fatalf("jobstest: Celery worker exited at start; log:\n%s", readLog(c.logPath))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("jobstest: Celery worker not ready within %v; log:\n%s", celeryStartTimeout, readLog(c.logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if line, err := c.out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		tb.Fatalf("jobstest: Celery sender did not start (%q, %v); log:\n%s", line, err, readLog(c.logPath))
	}
	return c
}

// track waits for cmd in the background.
func (c *Celery) track(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.procs, c.dones = append(c.procs, cmd), append(c.dones, done)
}

// Send sends task with args (JSON-encodable) to the worker's queue and
// returns the task id.
func (c *Celery) Send(task string, args ...any) string {
	c.tb.Helper()
	if args == nil {
		args = []any{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return exchange(c.tb, c.stdin, c.out, c.logPath, "the Celery sender", map[string]any{"task": task, "args": args})
}

// Log returns what the worker and the sender logged so far.
func (c *Celery) Log() string { return readLog(c.logPath) }

// stop ends the sender (stdin closed) and the worker (SIGTERM, Celery's
// warm shutdown), killing what does not exit in time.
func (c *Celery) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.stdin != nil {
		_ = c.stdin.Close()
	}
	for _, p := range c.procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for i, done := range c.dones {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.procs[i].Process.Kill()
			<-done
		}
	}
}

// testdataDir finds this package's testdata from this source file.
func testdataDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the module's source")
	}
	return filepath.Join(filepath.Dir(file), "testdata"), nil
}
