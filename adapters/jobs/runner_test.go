package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// ledger is a job backend reduced to its essence for the runner's tests: an
// append-only list of events that several watchers read by index, as
// BullMQ's event stream is read by id. The real backends have their own
// tests against the real software.
type ledger struct {
	mu     sync.Mutex
	events []Event
	skips  map[int]Skip // index → bad data at that position
	fail   error        // returned by Poll while set
}

func (l *ledger) add(ev Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

// ledgerWatcher reads a ledger; its cursor is the next index.
type ledgerWatcher struct{ l *ledger }

func (w ledgerWatcher) Backend() string                         { return BullMQ }
func (w ledgerWatcher) Check(context.Context) ([]string, error) { return nil, nil }
func (w ledgerWatcher) Close() error                            { return nil }
func (w ledgerWatcher) Poll(ctx context.Context, cursor []byte) (Batch, error) {
	from, _ := strconv.Atoi(string(cursor))
	w.l.mu.Lock()
	fail, n := w.l.fail, len(w.l.events)
	w.l.mu.Unlock()
	if fail != nil {
		return Batch{}, fail
	}
	if from >= n {
		sleep(ctx, 10*time.Millisecond)
		return Batch{Cursor: cursor}, nil
	}
	to := min(from+3, n)
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	b := Batch{Events: append([]Event(nil), w.l.events[from:to]...), Cursor: []byte(strconv.Itoa(to))}
	for i := from; i < to; i++ {
		if s, ok := w.l.skips[i]; ok {
			b.Skipped = append(b.Skipped, s)
		}
	}
	return b, nil
}

// node is one cablecar's runner with its own Redis connection.
type node struct {
	r      *Runner
	client *goredis.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, addr string, l *ledger, mapping *Mapping, name string) *node {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	store := NewRedisStore(client, RedisStoreOptions{ChannelPrefix: "app"})
	r := NewRunner(ledgerWatcher{l}, store, mapping, RunnerOptions{Holder: name, LeaseTTL: 500 * time.Millisecond, Backoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{r: r, client: client, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(n.done); _ = r.Run(ctx) }()
	t.Cleanup(func() { n.cancel(); <-n.done; client.Close() })
	return n
}

// kill stops a node as a crash would: its connection goes first, so it
// cannot release its lease, and the others must wait for it to expire.
func (n *node) kill() {
	n.client.Close()
	n.cancel()
	<-n.done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunnersPublishExactlyOnce: three nodes watch one backend; the lease
// holder dies twice mid-stream; every event still arrives exactly once and
// in order.
func TestRunnersPublishExactlyOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	sub := goredis.NewClient(&goredis.Options{Addr: srv.Addr}).Subscribe(ctx, "app:all")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	mapping, _ := ParseMapping("*=all", "", "")
	l := &ledger{}
	nodes := []*node{startNode(t, srv.Addr, l, mapping, "n1"), startNode(t, srv.Addr, l, mapping, "n2"), startNode(t, srv.Addr, l, mapping, "n3")}
	holder := func() *node {
		for _, n := range nodes {
			if n.r.Stats().Snapshot().Watching {
				return n
			}
		}
		return nil
	}
	const total = 300
	received := make(chan string, total*2)
	go func() {
		for m := range sub.Channel() {
			received <- m.Payload
		}
	}()
	killed := map[*node]bool{}
	for i := range total {
		l.add(Event{Backend: BullMQ, JobID: strconv.Itoa(i), Class: "Job", Status: Completed, At: time.Unix(1, 0)})
		if i == 100 || i == 200 {
			var h *node
			waitFor(t, "a lease holder", func() bool { h = holder(); return h != nil && !killed[h] })
			killed[h] = true
			h.kill()
		}
		time.Sleep(time.Millisecond)
	}
	seen := map[string]int{}
	next := 0
	timeout := time.After(15 * time.Second)
	for next < total {
		select {
		case p := <-received:
			id := between(p, `"job_id":"`, `"`)
			seen[id]++
			if id != strconv.Itoa(next) {
				t.Fatalf("got job %s, want %d next (out of order or doubled)", id, next)
			}
			next++
		case <-timeout:
			t.Fatalf("only %d of %d events arrived", next, total)
		}
	}
	select {
	case p := <-received:
		t.Fatalf("an extra message after all %d: %s", total, p)
	case <-time.After(700 * time.Millisecond):
	}
	if len(killed) != 2 {
		t.Fatalf("killed %d holders, want 2", len(killed))
	}
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestRunnerCountsAndRecovers: unmapped classes and bad data are counted
// and named without stopping; a failing backend is retried from the same
// cursor, losing nothing.
func TestRunnerCountsAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	sub := goredis.NewClient(&goredis.Options{Addr: srv.Addr}).Subscribe(ctx, "app:doc:1")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	mapping, _ := ParseMapping("DocJob=doc:{args.0}", "", "")
	l := &ledger{skips: map[int]Skip{1: {Reason: "malformed_json", Detail: "entry 1: unexpected end of JSON input"}}}
	l.add(Event{Backend: BullMQ, JobID: "a", Class: "DocJob", Status: Running, Args: []any{"1"}})
	l.add(Event{Backend: BullMQ, JobID: "b", Class: "Mystery", Status: Failed})
	l.add(Event{Backend: BullMQ, JobID: "c", Class: "DocJob", Status: Failed, Args: []any{1.5}})
	n := startNode(t, srv.Addr, l, mapping, "n1")
	expect := func(want string) {
		t.Helper()
		m, err := sub.ReceiveMessage(ctx)
		if err != nil || between(m.Payload, `"job_id":"`, `"`) != want {
			t.Fatalf("got %v %v, want job %s", m, err, want)
		}
	}
	expect("a")
	waitFor(t, "the unmapped and unmappable events to be counted", func() bool {
		snap := n.r.Stats().Snapshot()
		return snap.Unmapped == 1 && snap.Skipped["unmappable"] == 1 && snap.Events[Running] == 1
	})
	snap := n.r.Stats().Snapshot()
	if fmt.Sprint(snap.UnmappedClasses) != "[Mystery]" || snap.Skipped["malformed_json"] != 1 || snap.Events[Running] != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	l.mu.Lock()
	l.fail = errors.New("connection refused")
	l.mu.Unlock()
	waitFor(t, "the failure to show", func() bool { return strings.Contains(n.r.Stats().Snapshot().LastError, "connection refused") })
	l.add(Event{Backend: BullMQ, JobID: "d", Class: "DocJob", Status: Completed, Args: []any{"1"}})
	l.mu.Lock()
	l.fail = nil
	l.mu.Unlock()
	expect("d")
	waitFor(t, "the error to clear", func() bool { return n.r.Stats().Snapshot().LastError == "" })
}
