// Package pgtest runs a real PostgreSQL for tests: initdb in a temporary
// directory, a postgres server on a free loopback port, stopped by PID when
// the test ends.
//
// A missing PostgreSQL fails the test rather than skipping it (install
// Debian's postgresql). When the tests run as root, as CI does, the server
// runs as the postgres user, since PostgreSQL refuses to run as root.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for the server to accept
// connections.
const startTimeout = 30 * time.Second

// Server is one PostgreSQL server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:N".
	Addr string
	// URL is a libpq/pgx URL for the database "cablecar" as the superuser
	// "cablecar" (no password: trust on loopback).
	URL string

	bin  string // directory of initdb and postgres
	dir  string // data directory
	cred *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs initdb and a server on a free 127.0.0.1 port, and creates the
// database "cablecar". It stops the server when tb's test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		tb.Fatalf("pgtest: %v (install PostgreSQL, e.g. apt-get install postgresql)", err)
	}
	s := &Server{bin: bin}
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	s.dir = filepath.Join(root, "data")
	if s.cred, err = runAs(root); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dir, "-U", "cablecar", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale", "C")
	initdb.SysProcAttr = s.sysProcAttr()
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("pgtest: free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("pgtest: postgres did not start: %v\n%s", lastErr, s.logTail())
	}
	tb.Cleanup(s.Stop)
	s.URL = fmt.Sprintf("postgres://cablecar@%s/cablecar?sslmode=disable", s.Addr)
	if err := s.psql("postgres", "CREATE DATABASE cablecar"); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return s
}

// Exec runs sql in the database "cablecar" with psql, failing tb on error.
func (s *Server) Exec(tb testing.TB, sql string) {
	tb.Helper()
	if err := s.psql("cablecar", sql); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Kill ends the server with SIGKILL, as a crash of its machine would: the
// postmaster and every backend at once. (SIGKILL to the postmaster alone
// leaves backends serving their open connections for a while.)
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		killGroup(s.cmd.Process.Pid)
	}
	s.stopLocked(syscall.SIGKILL)
}

// Stop shuts the server down fast (SIGINT) and waits; safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGINT)
}

// Restart starts the server again on the same port and data directory
// after Kill or Stop (stopping a running one first).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	s.stopLocked(syscall.SIGINT)
	s.mu.Unlock()
	var err error
	for range 10 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("pgtest: restart on %s: %v\n%s", s.Addr, err, s.logTail())
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dir, "-p", port, "-h", "127.0.0.1",
		"-k", filepath.Dir(s.dir), "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = s.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("postgres exited (port taken?)")
		default:
		}
		if s.psql("postgres", "SELECT 1") == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("no answer on %s after %s", s.Addr, startTimeout)
}

func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// psql runs one statement as the superuser.
func (s *Server) psql(db, sql string) error {
	host, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", host, "-p", port, "-U", "cablecar", "-d", db, "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %v: %s", sql, err, out)
	}
	return nil
}

func (s *Server) logPath() string { return filepath.Join(filepath.Dir(s.dir), "postgres.log") }

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) sysProcAttr() *syscall.SysProcAttr {
	a := sysProcAttr()
	a.Credential = s.cred
	return a
}

// binDir finds Debian's newest /usr/lib/postgresql/N/bin, else initdb on
// PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("no /usr/lib/postgresql/*/bin and no initdb on PATH")
	}
	return filepath.Dir(p), nil
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// runAs picks the postgres user when running as root, and gives it dir.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
