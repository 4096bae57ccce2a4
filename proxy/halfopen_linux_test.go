package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

// testHost is a network namespace of this test's own, joined to the host by
// a veth pair: a client there can vanish without a FIN when its link drops.
type testHost struct {
	ns, hostIP, nsIP, nsIf string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	id := os.Getpid() % 10000
	h := &testHost{ns: fmt.Sprintf("cc-ho-%d", id), hostIP: "10.213.7.1", nsIP: "10.213.7.2", nsIf: "cc-c"}
	hostIf := fmt.Sprintf("cc-h%d", id)
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", h.ns).Run()
	})
	ipCmd(t, "link", "add", hostIf, "type", "veth", "peer", "name", h.nsIf, "netns", h.ns)
	ipCmd(t, "addr", "add", h.hostIP+"/30", "dev", hostIf)
	ipCmd(t, "link", "set", hostIf, "up")
	ipCmd(t, "-n", h.ns, "addr", "add", h.nsIP+"/30", "dev", h.nsIf)
	ipCmd(t, "-n", h.ns, "link", "set", h.nsIf, "up")
	return h
}

// dialFrom opens a TCP connection from inside the namespace: the socket is
// created on a thread that has joined it, and stays there.
func (h *testHost) dialFrom(t *testing.T, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // the thread is discarded with its namespace
		f, err := os.Open("/run/netns/" + h.ns)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.ns, r.err)
	}
	return r.c
}

// A peer that vanishes without a FIN (its link dropped) is found and reaped
// by TCP_USER_TIMEOUT on the pings it never acknowledges; the connection is
// released, and a client on loopback is not disturbed.
func TestHalfOpenPeerIsReaped(t *testing.T) {
	h := newTestHost(t)
	cfg := proxy.Config{Addr: h.hostIP + ":0", PingInterval: 200 * time.Millisecond, WriteTimeout: time.Second}
	a, _ := auth.New(anonymous())
	srv, err := proxy.New(cfg, memory.New(), a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxy.Listen(context.Background(), srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })

	nc := h.dialFrom(t, ln.Addr().String())
	defer nc.Close()
	c := handshake(t, nc, "ws://"+ln.Addr().String()+"/cable")
	if got := c.nextText(); got != `{"type":"welcome"}` {
		t.Fatalf("got %s", got)
	}
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("got %s", got)
	}
	waitFor(t, "one connection", func() bool { return srv.Stats().ConnsOpen.Load() == 1 })
	ipCmd(t, "-n", h.ns, "link", "set", h.nsIf, "down") // gone: no FIN, no RST, no ACKs
	start := time.Now()
	waitFor(t, "the half-open connection reaped", func() bool { return srv.Stats().ConnsOpen.Load() == 0 })
	if d := time.Since(start); d > 4*cfg.WriteTimeout+3*time.Second {
		t.Errorf("reaped after %v, want about the user timeout (%v)", d, 4*cfg.WriteTimeout)
	}
	if srv.StreamCount() != 0 {
		t.Errorf("%d streams still held by the dead connection", srv.StreamCount())
	}
}
