// Package e2e runs the real cablecar binary against a real redis-server and
// the official @rails/actioncable client under Node.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the cablecar built once for the package, the way the
// Dockerfile builds it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cablecar-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cablecar")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "../cmd/cablecar")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cablecar:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sidecar is a running cablecar process.
type sidecar struct {
	addr  string
	admin string // admin listener address
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   strings.Builder
	done  chan error
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSidecar runs `cablecar <args>` with env (CABLECAR_ADDR is set here)
// and waits until /health answers 200. A free port can be taken by another
// process between freePort and the bind; then it starts again on new ports.
func startSidecar(t *testing.T, env map[string]string, args ...string) *sidecar {
	t.Helper()
	const attempts = 3
	for i := 1; ; i++ {
		s, err := trySidecar(t, env, args...)
		if err == nil {
			return s
		}
		if i == attempts || !strings.Contains(s.logs(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; retrying on other ports", i, err)
	}
}

// trySidecar starts the binary once; the error says why it is not healthy.
func trySidecar(t *testing.T, env map[string]string, args ...string) (*sidecar, error) {
	t.Helper()
	s := &sidecar{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), done: make(chan error, 1)}
	s.cmd = exec.Command(binary, args...)
	s.cmd.Env = []string{"CABLECAR_ADDR=" + s.addr, "CABLECAR_ADMIN_ADDR=" + s.admin, "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.collect(stderr)
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("cablecar log:\n%s", s.logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.done <- err // for stop
			return s, fmt.Errorf("cablecar exited early (%v):\n%s", err, s.logs())
		default:
		}
		resp, err := http.Get("http://" + s.addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("cablecar not healthy after 15s:\n%s", s.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sidecar) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		s.mu.Lock()
		s.log.WriteString(sc.Text() + "\n")
		s.mu.Unlock()
	}
	s.done <- s.cmd.Wait()
}

func (s *sidecar) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (s *sidecar) stop(t *testing.T) error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.done:
		s.done <- err // keep it for a second caller
		return err
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("cablecar did not exit within 20s of SIGINT")
	}
}

func (s *sidecar) wsURL(query string) string {
	return "ws://" + s.addr + "/cable?" + query
}

// run runs the cablecar binary to completion (publish, token, …).
func run(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
