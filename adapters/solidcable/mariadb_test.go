package solidcable

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Debian's mariadb-server binaries.
const (
	mariadbd         = "/usr/sbin/mariadbd"
	mariadbInstallDB = "/usr/bin/mariadb-install-db"
)

// startMySQL runs a real MariaDB (Debian's mariadb-server) on a free
// loopback port with a fresh data directory, creates the database "cable"
// with Solid Cable's table, and stops the server when the test ends. Grant
// tables are skipped: root connects without a password.
func startMySQL(t *testing.T) *fixture {
	t.Helper()
	for _, bin := range []string{mariadbd, mariadbInstallDB} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s missing: install Debian's mariadb-server (scripts/install-test-deps)", bin)
		}
	}
	// Short: the server's Unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"} // mariadbd refuses root unless told
	}
	install := exec.Command(mariadbInstallDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, user...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(mariadbd, append([]string{"--no-defaults", "--datadir=" + data,
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket=" + filepath.Join(dir, "sock"),
		"--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + filepath.Join(dir, "err.log"),
		"--skip-grant-tables", "--skip-log-bin", "--skip-name-resolve", "--innodb-buffer-pool-size=16M"}, user...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("mariadbd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	admin := openRaw(t, "mysql", "root@tcp("+addr+")/")
	deadline := time.Now().Add(30 * time.Second)
	for admin.Ping() != nil {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("mariadbd exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadbd did not answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := admin.Exec("CREATE DATABASE cable"); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, "mysql", "root@tcp("+addr+")/cable")
	if _, err := raw.Exec(strings.TrimRight(readSchema(t, "schema_mysql.sql"), ";\n ")); err != nil {
		t.Fatalf("load MySQL schema: %v", err)
	}
	return &fixture{url: fmt.Sprintf("mysql://root@%s/cable", addr), kind: kindMySQL, raw: raw}
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
