package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/logbuf"
)

// Helpers for the interop tests: the examples in ../examples run with the
// real Ruby, Sidekiq, Python, Node and shell tools that
// scripts/install-test-deps installs. A missing tool fails the test (it is
// not skipped), as a missing redis-server does.

// debianPython is Debian's python3, where python3-redis installs redis-py
// (a python3 earlier in PATH, from pyenv say, does not see it).
const debianPython = "/usr/bin/python3"

const installHint = "run scripts/install-test-deps (or make deps)"

// requireCommand returns the path of an installed command or fails t.
func requireCommand(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: %v; %s", name, err, installHint)
	}
	return path
}

// repoDir returns the absolute path of a directory of the repository,
// given relative to its root ("examples/python").
func repoDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runIn runs a command to completion in dir, with the test process's
// environment plus env, and returns its stdout. It fails t when the command
// fails or takes more than 30 s.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = interopSysProcAttr()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q in %s: %v\nstdout:\n%s\nstderr:\n%s", name, args, dir, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// background is a long-running helper process (Sidekiq) whose output is
// kept for the test's log.
type background struct {
	name string
	cmd  *exec.Cmd
	out  logbuf.Buffer
	done chan struct{} // closed once cmd has been waited for
	err  error         // set before done is closed
}

// startBackground starts cmd and stops it when the test ends: SIGTERM, then
// SIGKILL if it has not exited after grace. Its output is logged when the
// test failed.
func startBackground(t *testing.T, name string, cmd *exec.Cmd, grace time.Duration) *background {
	t.Helper()
	b := &background{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	cmd.SysProcAttr = interopSysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		if err := b.stop(grace); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, b.out.String())
		}
	})
	return b
}

// exited reports whether the process has ended.
func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM and up to grace for a clean exit, then
// SIGKILL. It reports a process that needed SIGKILL or exited with an
// error.
func (b *background) stop(grace time.Duration) error {
	if b.exited() {
		return b.err
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		return b.err
	case <-time.After(grace):
		_ = b.cmd.Process.Kill()
		<-b.done
		return fmt.Errorf("did not exit within %v of SIGTERM; killed", grace)
	}
}

// waitConnected waits until n subscriptions of c are confirmed.
func waitConnected(t *testing.T, c *jsclient.Client, n int) {
	t.Helper()
	seen := 0
	_, ok := c.WaitForFunc(func(e jsclient.Event) bool {
		if e.Event == jsclient.KindConnected {
			seen++
		}
		return seen == n
	}, 10*time.Second)
	if !ok {
		t.Fatalf("%d of %d subscriptions confirmed; events: %v", seen, n, c.Snapshot())
	}
}

// receivedBy returns the messages subscription index received, in order,
// as the JSON text the client's received() callback got.
func receivedBy(events []jsclient.Event, index int) []string {
	var out []string
	for _, e := range jsclient.Filter(events, jsclient.KindReceived) {
		if e.Index == index {
			out = append(out, string(e.Data))
		}
	}
	return out
}

// sameJSON reports whether a and b are the same JSON value (whatever their
// escaping and spacing).
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// railsBroadcastings asks the real Action Cable and GlobalID (through the
// example app in examples/rails-sidekiq) for
// DocumentChannel.broadcasting_for(Document.find(id)) of each id.
func railsBroadcastings(t *testing.T, ids ...string) []string {
	t.Helper()
	ruby := requireCommand(t, "ruby")
	args := append([]string{"-e", `require "./worker"; ARGV.each { |id| puts DocumentChannel.broadcasting_for(Document.find(id)) }`, "--"}, ids...)
	out := strings.Fields(runIn(t, repoDir(t, "examples/rails-sidekiq"), nil, ruby, args...))
	if len(out) != len(ids) {
		t.Fatalf("ruby printed %q for %d ids", out, len(ids))
	}
	return out
}
