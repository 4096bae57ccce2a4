package jobstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Paths of Debian's Ruby and ruby-sidekiq, used explicitly so that another
// Ruby on PATH cannot stand in.
const (
	rubyPath    = "/usr/bin/ruby"
	sidekiqPath = "/usr/bin/sidekiq"
)

// sidekiqBootTimeout bounds how long StartSidekiq waits for the first
// heartbeat.
const sidekiqBootTimeout = 30 * time.Second

// Sidekiq is one real Sidekiq process (Debian's ruby-sidekiq) running the
// jobs of testdata/sidekiq_worker.rb against one Redis:
//
//   - FailJob raises CablecarTestError every time, with retry: 1 (one
//     retry, then the dead set);
//   - SleepJob sleeps its first argument's seconds (retry: false);
//   - SleepActiveJob (ActiveJob, when ruby-activejob is installed) takes a
//     Document, sent as a GlobalID (pass {"document": N} to
//     EnqueueActiveJob), and sleeps its second argument's seconds.
//
// Sidekiq moves due retries to their queues about every second.
type Sidekiq struct {
	// RedisURL is the Redis the process and Enqueue use.
	RedisURL string
	// Identity is the process's identity in Sidekiq's "processes" set
	// (hostname:pid:nonce); its heartbeat hash has this key.
	Identity string

	tb   testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	mu   sync.Mutex
}

// testdata is the absolute path of this package's testdata directory.
func testdata(tb testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("jobstest: cannot locate the package source")
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}

// StartSidekiq runs /usr/bin/sidekiq with testdata/sidekiq_worker.rb on
// redisURL (concurrency 5, queue "default", 1 s shutdown timeout) and waits
// for its first heartbeat. The process is stopped when tb's test ends; its
// log is added to the test output when the test failed. A missing ruby or
// sidekiq fails tb.
func StartSidekiq(tb testing.TB, redisURL string) *Sidekiq {
	tb.Helper()
	for _, p := range []string{rubyPath, sidekiqPath} {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("jobstest: %s is missing (install ruby-sidekiq: scripts/install-test-deps): %v", p, err)
		}
	}
	s := &Sidekiq{RedisURL: redisURL, tb: tb, done: make(chan struct{}), log: &bytes.Buffer{}}
	s.cmd = exec.Command(rubyPath, sidekiqPath, "-r", filepath.Join(testdata(tb), "sidekiq_worker.rb"),
		"-c", "5", "-q", "default", "-t", "1")
	s.cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL, "RAILS_ENV=test", "APP_ENV=test")
	s.cmd.Stdout, s.cmd.Stderr = (*lockedWriter)(s), (*lockedWriter)(s)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("jobstest: start sidekiq: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	tb.Cleanup(s.stop)
	s.Identity = s.waitHeartbeat()
	return s
}

// lockedWriter appends the process's output to its log buffer.
type lockedWriter Sidekiq

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(p)
}

// Log is what the process printed so far.
func (s *Sidekiq) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Pid is the Sidekiq process's pid.
func (s *Sidekiq) Pid() int { return s.cmd.Process.Pid }

// waitHeartbeat waits until the process's identity is in "processes" and
// its heartbeat hash exists, and returns the identity.
func (s *Sidekiq) waitHeartbeat() string {
	opts, err := goredis.ParseURL(s.RedisURL)
	if err != nil {
		s.tb.Fatalf("jobstest: redis URL: %v", err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	marker := ":" + strconv.Itoa(s.Pid()) + ":"
	deadline := time.Now().Add(sidekiqBootTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.tb.Fatalf("jobstest: sidekiq exited during boot:\n%s", s.Log())
		case <-time.After(100 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		procs, _ := rdb.SMembers(ctx, "processes").Result()
		for _, p := range procs {
			if strings.Contains(p, marker) && rdb.Exists(ctx, p).Val() == 1 {
				cancel()
				return p
			}
		}
		cancel()
	}
	s.tb.Fatalf("jobstest: no sidekiq heartbeat within %v:\n%s", sidekiqBootTimeout, s.Log())
	return ""
}

// Enqueue pushes a job of class with args through Sidekiq's own client
// (Sidekiq::Client.push) and returns its jid.
func (s *Sidekiq) Enqueue(class string, args ...any) string {
	s.tb.Helper()
	return s.enqueue("sidekiq", class, args)
}

// EnqueueActiveJob enqueues an ActiveJob job with perform_later through
// ActiveJob's Sidekiq adapter and returns ActiveJob's job_id. An argument
// {"document": N} becomes a Document record, sent as a GlobalID. It fails
// the test when ruby-activejob is not installed.
func (s *Sidekiq) EnqueueActiveJob(class string, args ...any) string {
	s.tb.Helper()
	return s.enqueue("activejob", class, args)
}

func (s *Sidekiq) enqueue(kind, class string, args []any) string {
	s.tb.Helper()
	if args == nil {
		args = []any{}
	}
	js, err := json.Marshal(args)
	if err != nil {
		s.tb.Fatalf("jobstest: enqueue %s: args: %v", class, err)
	}
	cmd := exec.Command(rubyPath, filepath.Join(testdata(s.tb), "sidekiq_enqueue.rb"), kind, class, string(js))
	cmd.Env = append(os.Environ(), "REDIS_URL="+s.RedisURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.tb.Fatalf("jobstest: enqueue %s %s: %v\n%s", kind, class, err, stderr.String())
	}
	id := strings.TrimSpace(string(out))
	if id == "" {
		s.tb.Fatalf("jobstest: enqueue %s %s: no id printed\n%s", kind, class, stderr.String())
	}
	return id
}

// Kill ends the process with SIGKILL, as the kernel's out-of-memory killer
// would: no shutdown, no requeue, its heartbeat hash left to expire (60 s
// after its last beat). It waits for the process to exit.
func (s *Sidekiq) Kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop shuts the process down (SIGTERM, then SIGKILL after 10 s) and adds
// its log to a failed test's output.
func (s *Sidekiq) stop() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.done
		}
	}
	if s.tb.Failed() {
		s.tb.Logf("sidekiq log:\n%s", s.Log())
	}
}

// String names the process for messages.
func (s *Sidekiq) String() string { return fmt.Sprintf("sidekiq pid %d (%s)", s.Pid(), s.Identity) }
