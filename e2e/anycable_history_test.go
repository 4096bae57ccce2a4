package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// historyStream is Document 123's stream, as DocumentChannel's route names
// it ({channel}:{gid:Document:params.id}).
const historyStream = "document:Z2lkOi8vbXlhcHAvRG9jdW1lbnQvMTIz"

// The Done-when of issue #14: two nodes on one Redis record Document 123's
// history (CABLECAR_HISTORY); the real @anycable/web client on node A, with
// the extended protocol, loses its network for 5 s while 100 messages are
// published with plain PUBLISH, as Rails does. It reconnects by itself
// (its session is restored: welcome with restored_ids), asks for what it
// missed with the history command, and ends up with every message exactly once, in
// order, with consecutive offsets of one epoch; Redis recorded each message
// once.
func TestAnyCableHistoryAcrossDisconnect(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_HISTORY"] = "document:*:1000:5m"
	nodeA := startSidecar(t, env, "serve")
	startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")
	g := startGate(t, nodeA.addr)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	waitRecorder(t, rdb)

	const before, gap, after = 5, 100, 5
	d := startDriver(t, "ws://"+g.addr()+"/cable?token="+tok, before+gap+after)
	d.waitFor(t, "subscribed", 1)
	n := 0
	publishN := func(count int) {
		for i := 0; i < count; i++ {
			n++
			if err := rdb.Publish(context.Background(), "myapp_production:"+historyStream, fmt.Sprintf(`{"n":%d}`, n)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishN(before)
	d.waitFor(t, "message", before)

	g.cut()
	cutAt := time.Now()
	d.waitFor(t, "disconnect", 1)
	publishN(gap)
	time.Sleep(time.Until(cutAt.Add(5 * time.Second)))
	g.open()
	publishN(after) // racing the reconnect: live or from the history, never both
	events := d.wait(t)

	var got []int
	var epoch string
	for _, ev := range events {
		if ev.Event != "message" {
			continue
		}
		var m struct {
			Data struct{ N int } `json:"data"`
			Meta *struct {
				Stream string `json:"stream"`
				Epoch  string `json:"epoch"`
				Offset int    `json:"offset"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(ev.Raw, &m); err != nil {
			t.Fatalf("driver line %s: %v", ev.Raw, err)
		}
		if m.Meta == nil || m.Meta.Stream != historyStream || m.Meta.Offset != m.Data.N || (epoch != "" && m.Meta.Epoch != epoch) {
			t.Errorf("message %s: want stream %s, one epoch, offset = n", ev.Raw, historyStream)
		}
		if m.Meta != nil {
			epoch = m.Meta.Epoch
		}
		got = append(got, m.Data.N)
	}
	if len(got) != before+gap+after {
		t.Fatalf("received %d messages, want %d: %v", len(got), before+gap+after, got)
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("message %d is n=%d; all: %v", i+1, v, got)
		}
	}
	// What was published during the gap came after the client was back
	// (its session restored, or subscribed again): from the history, not
	// from a connection that stayed up.
	resubscribed, firstMissed := -1, -1
	for i, ev := range events {
		if ev.Event == "subscribed" && strings.Contains(string(ev.Raw), `"reconnect":true`) && resubscribed < 0 {
			resubscribed = i
		}
		if ev.Event == "message" && strings.Contains(string(ev.Raw), fmt.Sprintf(`"data":{"n":%d}`, before+1)) {
			firstMissed = i
		}
	}
	if resubscribed < 0 || firstMissed < resubscribed {
		t.Errorf("message %d (line %d) did not come after the client subscribed again (line %d)", before+1, firstMissed, resubscribed)
	}
	// Recorded once each, whichever node records.
	last, err := rdb.HGet(context.Background(), "cablecar:history:myapp_production:m:"+historyStream, "last").Int()
	if err != nil || last != before+gap+after {
		t.Errorf("recorded offsets up to %d (%v), want %d", last, err, before+gap+after)
	}
	if l := rdb.XLen(context.Background(), "cablecar:history:myapp_production:s:"+historyStream).Val(); l != before+gap+after {
		t.Errorf("XLEN = %d, want %d", l, before+gap+after)
	}
}

// A client away longer than the history reaches (size 10; 300 messages
// meanwhile) is told so: reject_history, which the client reports as
// history_not_found, and no partial backlog; live messages go on.
func TestAnyCableHistoryPastRetention(t *testing.T) {
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	env["CABLECAR_HISTORY"] = "document:*:10:5m"
	node := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")
	g := startGate(t, node.addr)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	waitRecorder(t, rdb)

	d := startDriver(t, "ws://"+g.addr()+"/cable?token="+tok, 3)
	d.waitFor(t, "subscribed", 1)
	publish := func(s string) {
		if err := rdb.Publish(context.Background(), "myapp_production:"+historyStream, s).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"n":1}`)
	publish(`{"n":2}`)
	d.waitFor(t, "message", 2)
	g.cut()
	d.waitFor(t, "disconnect", 1)
	for i := 0; i < 300; i++ {
		publish(`{"missed":true}`)
	}
	g.open()
	d.waitForType(t, "info", "history_not_found")
	publish(`{"n":"live"}`)
	events := d.wait(t)
	if countEvents(events, "info", "history_not_found") != 1 {
		t.Errorf("want one history_not_found; events: %s", eventLines(events))
	}
	var got []string
	for _, ev := range events {
		if ev.Event == "message" {
			var m struct{ Data json.RawMessage }
			_ = json.Unmarshal(ev.Raw, &m)
			got = append(got, string(m.Data))
		}
	}
	if strings.Join(got, " ") != `{"n":1} {"n":2} {"n":"live"}` {
		t.Errorf("messages %v, want n=1, n=2, then the live one", got)
	}
}

// waitRecorder waits until a node records (has PSUBSCRIBEd the rules).
func waitRecorder(t *testing.T, rdb *goredis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := rdb.Do(context.Background(), "PUBSUB", "NUMPAT").Int()
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node records the history (PUBSUB NUMPAT = %d)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// driverEvent is one line of e2e/anycable/driver.mjs.
type driverEvent struct {
	Event string `json:"event"`
	Type  string `json:"type"`
	Raw   json.RawMessage
}

// driver is the real AnyCable client running under Node.
type driver struct {
	mu     sync.Mutex
	events []driverEvent
	done   chan struct{}
	stderr strings.Builder
}

func startDriver(t *testing.T, url string, exitAfter int) *driver {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (scripts/install-test-deps installs it): %v", err)
	}
	cmd := exec.Command(node, "anycable/driver.mjs")
	cmd.Env = append(cmd.Environ(), "CABLE_URL="+url, "CHANNEL=DocumentChannel", `PARAMS={"id":123}`,
		fmt.Sprintf("EXIT_AFTER=%d", exitAfter), "DURATION_MS=60000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &d.mu, w: &d.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev driverEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			ev.Raw = append(json.RawMessage(nil), sc.Bytes()...)
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("driver output:\n%s\nstderr:\n%s", eventLines(d.snapshot()), d.stderr.String())
		}
	})
	return d
}

func (d *driver) snapshot() []driverEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]driverEvent(nil), d.events...)
}

// waitFor waits until the driver printed count events of kind.
func (d *driver) waitFor(t *testing.T, kind string, count int) {
	t.Helper()
	d.waitUntil(t, kind, "", count)
}

// waitForType waits for an event of kind and type typ.
func (d *driver) waitForType(t *testing.T, kind, typ string) {
	t.Helper()
	d.waitUntil(t, kind, typ, 1)
}

func (d *driver) waitUntil(t *testing.T, kind, typ string, count int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for countEvents(d.snapshot(), kind, typ) < count {
		select {
		case <-d.done:
			t.Fatalf("driver ended before %d %s events", count, kind)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d %s events", count, kind)
		}
	}
}

// wait waits for the driver to finish and returns its events.
func (d *driver) wait(t *testing.T) []driverEvent {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(70 * time.Second):
		t.Fatal("driver did not finish")
	}
	return d.snapshot()
}

func countEvents(events []driverEvent, kind, typ string) int {
	n := 0
	for _, ev := range events {
		if ev.Event == kind && (typ == "" || ev.Type == typ) {
			n++
		}
	}
	return n
}

func eventLines(events []driverEvent) string {
	var b strings.Builder
	for _, ev := range events {
		b.Write(ev.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// gate is a TCP relay in front of a node that can cut the network: cut
// drops every relayed connection and turns new ones away (accepted, then
// closed) until open.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	shut   bool
	conns  []net.Conn
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); g.cut() })
	go g.serve()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, u)
		g.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *gate) open() {
	g.mu.Lock()
	g.shut = false
	g.mu.Unlock()
}
