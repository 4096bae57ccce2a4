package redistest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first reply line.
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	var lines []string
	for range 5 { // enough for CONFIG GET's two-element array
		line, err := rd.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimSpace(line))
		if !strings.HasPrefix(lines[0], "*") {
			break
		}
	}
	return strings.Join(lines, " "), nil
}

func TestLifecycle(t *testing.T) {
	s := Start(t, "--maxmemory", "1mb")
	if !strings.HasPrefix(s.URL, "redis://127.0.0.1:") || !strings.HasSuffix(s.URL, "/0") || !strings.Contains(s.URL, s.Addr) {
		t.Errorf("URL = %q, Addr = %q", s.URL, s.Addr)
	}
	if got, err := do(t, s.Addr, "CONFIG GET maxmemory"); err != nil || !strings.HasSuffix(got, "1048576") {
		t.Errorf("CONFIG GET maxmemory = %q, %v; extra args not applied", got, err)
	}
	if got, _ := do(t, s.Addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}

	s.Kill()
	if _, err := do(t, s.Addr, "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Kill() // no-op when not running

	s.Restart(t)
	if got, _ := do(t, s.Addr, "GET k"); got != "$-1" {
		t.Errorf("GET after restart = %q, want nil: restarted server must be empty", got)
	}
	if got, _ := do(t, s.Addr, "CONFIG GET maxmemory"); !strings.HasSuffix(got, "1048576") {
		t.Errorf("extra args lost on restart: %q", got)
	}
	s.Stop()
	s.Stop()
	if _, err := do(t, s.Addr, "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
}

func TestUniquePrefix(t *testing.T) {
	a, b := UniquePrefix(t), UniquePrefix(t)
	if a == b {
		t.Errorf("two prefixes alike: %q", a)
	}
	if strings.ContainsAny(a, " /:*?[]") || !strings.Contains(a, "TestUniquePrefix") {
		t.Errorf("prefix %q", a)
	}
}

// fatalTB records Fatalf and stops the caller, as testing.T would.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalStop struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalStop{})
}

func TestMissingRedisServerFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (fatalStop{}) {
				panic(r)
			}
		}()
		Start(f)
	}()
	if !strings.Contains(f.msg, "install redis-server") {
		t.Errorf("Fatalf message = %q, want it to say to install redis-server", f.msg)
	}
}

func TestReplicaAndSentinel(t *testing.T) {
	m := Start(t)
	r := StartReplica(t, m)
	info, err := Info(r.Addr, "replication")
	if err != nil || !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+m.Addr[strings.LastIndexByte(m.Addr, ':')+1:]) {
		t.Fatalf("replica INFO replication (err %v):\n%s", err, info)
	}
	s := StartSentinel(t, "mymaster", m)
	info, err = Info(s.Addr, "sentinel")
	if err != nil || !strings.Contains(info, "name=mymaster,status=ok,address="+m.Addr) {
		t.Fatalf("sentinel INFO sentinel (err %v):\n%s", err, info)
	}
}

func TestStartCluster(t *testing.T) {
	nodes := StartCluster(t, 3)
	for _, n := range nodes {
		info, err := Info(n.Addr, "cluster")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("%s CLUSTER INFO (err %v):\n%s", n.Addr, err, info)
		}
	}
}
