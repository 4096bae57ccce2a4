// Package redistest runs a real redis-server for tests: on a free loopback
// port, in a temporary directory, without persistence, stopped when the test
// ends.
//
// A missing redis-server fails the test (it is not skipped): the Redis tests
// are the ones that prove delivery works, so a machine without Redis must not
// pass them silently.
package redistest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// startTimeout bounds how long Start waits for a new redis-server to answer
// PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is the listening address, "127.0.0.1:N".
	Addr string
	// URL is the go-redis / Rails style URL, "redis://127.0.0.1:N/0".
	URL string

	bin  string   // path of redis-server; immutable
	dir  string   // working directory and log location; immutable
	args []string // extra redis-server arguments; immutable
	conf string   // config file passed first (sentinel), or ""; immutable
	// cluster makes each start pick a free cluster bus port, since the
	// default (port + 10000) may be taken or out of range.
	cluster bool

	mu   sync.Mutex    // guards following
	cmd  *exec.Cmd     // running process, or nil once stopped or killed
	done chan struct{} // closed when cmd has been waited for
}

// Start runs redis-server on a free 127.0.0.1 port and waits until it answers
// PING. args are appended to the command line (e.g. "--maxmemory", "1mb").
// The server is stopped when tb's test ends. Start fails tb if redis-server
// is not installed or does not come up.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (install redis-server, e.g. apt-get install redis-server): %v", err)
	}
	return startServer(tb, &Server{bin: bin, dir: tb.TempDir(), args: args})
}

// startServer starts s, prepared by the caller, on a free port, retrying
// with another port a few times.
func startServer(tb testing.TB, s *Server) *Server {
	tb.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr + "/0"
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.Stop)
			return s
		}
		// Most likely someone took the port between our probe and
		// redis-server's bind: try another.
	}
	tb.Fatalf("redistest: redis-server did not start: %v", lastErr)
	return nil
}

// Kill ends redis-server with SIGKILL and waits for it to exit, as a crash
// would. Clients see their connections reset. It does nothing if the server
// is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

// Restart starts redis-server again on the same port, empty, after Kill or
// Stop (it stops a running one first). It fails tb if the server does not
// come up.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	s.stopLocked(syscall.SIGKILL)
	s.mu.Unlock()
	var err error
	// The old process's port is usually free at once (redis-server sets
	// SO_REUSEADDR); retry briefly in case the kernel is slow to release it.
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("redistest: restart redis-server on %s: %v", s.Addr, err)
}

// Stop shuts redis-server down (SIGTERM, then SIGKILL after 5 s) and waits
// for it. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
}

// start launches redis-server on s.Addr and waits for PING.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	logPath := filepath.Join(s.dir, "redis-"+port+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy of the descriptor
	var args []string
	if s.conf != "" {
		args = append(args, s.conf) // redis-server wants the file first
	}
	args = append(args,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "",
	)
	if s.cluster {
		bus, err := freePort()
		if err != nil {
			return err
		}
		args = append(args, "--cluster-port", strconv.Itoa(bus))
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile // an *os.File: no copying goroutines in this process
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at startup; log %s:\n%s", logPath, tail(logPath))
		default:
		}
		if ping(s.Addr, cmd.Process.Pid) == nil {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s did not answer PING within %v; log %s:\n%s", s.Addr, startTimeout, logPath, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopLocked signals the process and waits for it, escalating to SIGKILL.
func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// UniquePrefix returns a channel prefix of its own for tb's test, so tests
// sharing one redis-server never see each other's messages.
func UniquePrefix(tb testing.TB) string {
	tb.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, tb.Name())
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "test_" + name + "_" + hex.EncodeToString(b[:])
}

// freePort asks the kernel for a free loopback port. It can be taken again
// before redis-server binds it; Start retries then.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// ping sends an inline PING and expects +PONG, then checks with INFO that
// the server answering is process pid (and not some other program that
// holds the port).
func ping(addr string, pid int) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return err
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	// INFO's reply is a bulk string: "$<len>\r\n<text>\r\n".
	line, err = rd.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if err != nil {
		return fmt.Errorf("INFO answered %q", strings.TrimSpace(line))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(rd, info); err != nil {
		return err
	}
	if !strings.Contains(string(info), "\nprocess_id:"+strconv.Itoa(pid)+"\r") {
		return fmt.Errorf("%s is answered by another process, not redis-server pid %d", addr, pid)
	}
	return nil
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Client returns a go-redis client of the server, closed when tb ends.
func (s *Server) Client(tb testing.TB) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
