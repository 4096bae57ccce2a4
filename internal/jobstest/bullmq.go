package jobstest

import (
	"bufio"
	"fmt"
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

// bullmqStartTimeout bounds how long StartBullMQ waits for the worker to
// connect.
const bullmqStartTimeout = 30 * time.Second

// BullMQ is a running BullMQ worker (e2e/bullmq/worker.mjs under Node) that
// processes one queue and adds jobs to it. Its methods are safe for
// concurrent use.
type BullMQ struct {
	// Queue is the queue the worker processes.
	Queue string
	// Prefix is BullMQ's key prefix, "bull".
	Prefix string

	tb      testing.TB
	logPath string

	mu    sync.Mutex // guards following; serialises requests
	stdin io.WriteCloser
	out   *bufio.Reader
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartBullMQ runs a real BullMQ worker for queue on the Redis at redisURL,
// with BullMQ's default key prefix "bull", and waits until it is connected.
// The worker's processor follows each job's data (see worker.mjs):
// "progress" values are reported in turn, "fail" makes every attempt throw
// new Error(fail), "failOnce" only the first, "result" is returned. The
// worker stops when tb's test ends. StartBullMQ fails tb when node or the
// npm packages (scripts/install-test-deps) are missing.
func StartBullMQ(tb testing.TB, redisURL, queue string) *BullMQ {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("jobstest: node not found in PATH (run scripts/install-test-deps): %v", err)
	}
	dir, err := bullmqDir()
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "bullmq", "package.json")); err != nil {
		tb.Fatalf("jobstest: npm package bullmq is not installed in %s (run scripts/install-test-deps): %v", dir, err)
	}
	b := &BullMQ{Queue: queue, Prefix: "bull", tb: tb, logPath: filepath.Join(tb.TempDir(), "bullmq-worker.log")}
	logFile, err := os.Create(b.logPath)
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	defer logFile.Close() // the child has its own copy

	cmd := exec.Command(node, filepath.Join(dir, "worker.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL, "QUEUE="+queue, "PREFIX="+b.Prefix)
	cmd.Stderr = logFile
	// The worker exits when its stdin closes, which also happens when
	// the test binary dies: no worker outlives the test.
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("jobstest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("jobstest: start the BullMQ worker: %v", err)
	}
	b.cmd, b.out, b.done = cmd, bufio.NewReader(stdout), make(chan struct{})
	// Waiting closes the pipes once the worker has exited, which turns a
	// worker that died into a read error rather than a hang.
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()
	tb.Cleanup(b.stop)

	ready := make(chan error, 1)
	go func() {
		line, err := b.out.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			tb.Fatalf("jobstest: BullMQ worker did not start: %v; log:\n%s", err, readLog(b.logPath))
		}
	case <-time.After(bullmqStartTimeout):
		tb.Fatalf("jobstest: BullMQ worker not ready within %v; log:\n%s", bullmqStartTimeout, readLog(b.logPath))
	}
	return b
}

// Add adds a job named name with data and the given attempts (BullMQ's
// opts.attempts; 0 leaves BullMQ's default of one) and returns its id.
// A failed attempt is retried at once (no backoff).
func (b *BullMQ) Add(name string, data any, attempts int) string {
	opts := map[string]any{}
	if attempts > 0 {
		opts["attempts"] = attempts
	}
	return b.AddOpts(name, data, opts)
}

// AddOpts adds a job with BullMQ's job options as given (attempts, backoff,
// removeOnComplete, jobId, …) and returns its id.
func (b *BullMQ) AddOpts(name string, data any, opts map[string]any) string {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	return exchange(b.tb, b.stdin, b.out, b.logPath, "the BullMQ worker", map[string]any{"name": name, "data": data, "opts": opts})
}

// stop closes the worker's stdin, which ends it, and kills it if it does
// not exit in time.
func (b *BullMQ) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.stdin.Close()
	if b.done == nil {
		return
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// bullmqDir finds e2e/bullmq from this source file's place in the module.
func bullmqDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the module's source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "e2e", "bullmq"), nil
}

// readLog returns a worker's log for a failure message.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
