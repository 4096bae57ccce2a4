package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel timings: fast enough for a test to see a failover in a few
// seconds.
const (
	sentinelDownAfter       = 1000 // ms without an answer before the master is down
	sentinelFailoverTimeout = 3000 // ms
)

// StartReplica runs a redis-server that replicates master (--replicaof) and
// waits until the replication link is up. args are appended as for Start.
func StartReplica(tb testing.TB, master *Server, args ...string) *Server {
	tb.Helper()
	// The master would wait 5 s (repl-diskless-sync-delay) for more
	// replicas before the first sync.
	if err := ok(master.Addr, "CONFIG SET repl-diskless-sync-delay 0"); err != nil {
		tb.Fatalf("redistest: %s: %v", master.Addr, err)
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	r := Start(tb, append([]string{"--replicaof", host, port}, args...)...)
	waitInfo(tb, r.Addr, "replication", "master_link_status:up", startTimeout)
	return r
}

// StartSentinel runs redis-server in sentinel mode monitoring master under
// name, with quorum 1, down-after-milliseconds 1000 and failover-timeout
// 3000, so that one sentinel alone promotes a replica about a second after
// the master dies. The sentinel's configuration file lives in its own
// temporary directory (sentinel rewrites it).
func StartSentinel(tb testing.TB, name string, master *Server) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (install redis-server, e.g. apt-get install redis-server): %v", err)
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n",
		name, host, port, sentinelDownAfter, sentinelFailoverTimeout)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatalf("redistest: write %s: %v", conf, err)
	}
	return startServer(tb, &Server{bin: bin, dir: dir, conf: conf, args: []string{"--sentinel"}})
}

// StartCluster runs n redis-server masters (n >= 3) with cluster mode on,
// joins them with redis-cli --cluster create (no replicas), and waits until
// every node reports cluster_state:ok.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	return StartClusterReplicas(tb, n, 0)
}

// StartClusterReplicas is StartCluster with replicas replicas per master:
// it returns masters*(1+replicas) nodes, and redis-cli decides which are
// masters (ask CLUSTER SLOTS or ROLE). A replica takes over its master
// about two seconds (cluster-node-timeout) after the master dies.
func StartClusterReplicas(tb testing.TB, masters, replicas int) []*Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (install redis-server, e.g. apt-get install redis-server): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redistest: redis-cli not found in PATH (install redis-tools): %v", err)
	}
	nodes := make([]*Server, masters*(1+replicas))
	create := []string{"--cluster", "create"}
	for i := range nodes {
		nodes[i] = startServer(tb, &Server{
			bin:     bin,
			dir:     tb.TempDir(),
			cluster: true,
			// No 5 s wait before a replica's first sync: a replica that
			// never synced cannot take over.
			args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
				"--repl-diskless-sync-delay", "0"},
		})
		create = append(create, nodes[i].Addr)
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command(cli, create...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	for _, s := range nodes {
		waitInfo(tb, s.Addr, "cluster", "cluster_state:ok", startTimeout)
	}
	for _, s := range nodes {
		if info, err := Info(s.Addr, "replication"); err == nil && strings.Contains(info, "role:slave") {
			waitInfo(tb, s.Addr, "replication", "master_link_status:up", startTimeout)
		}
	}
	return nodes
}

// Info returns the text of INFO section (or CLUSTER INFO when section is
// "cluster" on a cluster node, which has more detail) from addr.
func Info(addr, section string) (string, error) {
	cmd := "INFO " + section
	if section == "cluster" {
		cmd = "CLUSTER INFO"
	}
	return bulk(addr, cmd)
}

// waitInfo waits until Info(addr, section) contains want.
func waitInfo(tb testing.TB, addr, section, want string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := Info(addr, section)
		if err == nil && strings.Contains(info, want) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: %s: %q not in %s after %v (err %v):\n%s", addr, want, section, timeout, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ok sends one inline command and expects +OK.
func ok(addr, cmd string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+OK" {
		return fmt.Errorf("%s answered %q", cmd, line)
	}
	return nil
}

// bulk sends one inline command and returns its bulk string reply.
func bulk(addr, cmd string) (string, error) {
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
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "$") {
		return "", fmt.Errorf("%s answered %q", cmd, line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return "", fmt.Errorf("%s answered %q", cmd, line)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return "", err
	}
	return string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))), nil
}
