package sidekiq

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// TestCheck: the doctor's findings on a Redis with a Sidekiq 6 and a
// Sidekiq 7 process, two retries and no dead set; and the warning on a
// Redis where no Sidekiq ever ran.
func TestCheck(t *testing.T) {
	h := newHarness(t, Config{})
	info, err := h.rdb.Info(h.ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	version := infoField(info, "redis_version")

	lines, err := h.w.Check(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sidekiq: redis " + version + " reachable",
		`sidekiq: key "processes" does not exist (yet): wrong URL, database or namespace, or no Sidekiq has used it`,
		`sidekiq: key "retry" does not exist (yet): wrong URL, database or namespace, or no Sidekiq has used it`,
		`sidekiq: key "dead" does not exist (yet): wrong URL, database or namespace, or no Sidekiq has used it`,
		"sidekiq: WARNING: no Sidekiq process has a live heartbeat (0 listed): running, completed and lost cannot be seen until one runs",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("empty Redis:\n got  %q\n want %q", lines, want)
	}

	h.addProcess("sidekiq6", "web-1:1:aaa", "workers", nil, fx{})
	h.addProcess("sidekiq7", "web-2:2:bbb", "work", nil, fx{})
	h.zadd("retry", 1, "a")
	h.zadd("retry", 2, "b")
	lines, err = h.w.Check(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"sidekiq: redis " + version + " reachable",
		`sidekiq: set "processes" has 2 entries`,
		`sidekiq: zset "retry" has 2 entries`,
		`sidekiq: key "dead" does not exist (yet): wrong URL, database or namespace, or no Sidekiq has used it`,
		"sidekiq: 2 live process(es), newest heartbeat 0s ago",
		"sidekiq: version(s) seen in process info: 6.x or older (no version in its info), 7.3.10",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("with processes:\n got  %q\n want %q", lines, want)
	}

	h.srv.Kill()
	if _, err := h.w.Check(h.ctx); err == nil || !strings.Contains(err.Error(), "redis unreachable") {
		t.Errorf("Check with Redis down: %v, want an unreachable error", err)
	}
	if _, err := h.w.Poll(h.ctx, nil); err == nil {
		t.Error("Poll with Redis down: no error")
	}
}

// TestNamespace: with Namespace set, every key is read under it.
func TestNamespace(t *testing.T) {
	h := newHarness(t, Config{Namespace: "myapp", SweepCount: -1})
	b0, base := h.start()
	f := msAligned(base + 0.05)
	h.zadd("myapp:retry", f+20, render(t, "sidekiq6", "retry", fx{JID: "ns0000000000000000000001", Failed: f}))
	h.zadd("retry", f+20, render(t, "sidekiq6", "retry", fx{JID: "plain0000000000000000001", Failed: f}))
	h.waitCovered(f)
	b := h.poll(b0.Cursor)
	var got []string
	for _, e := range b.Events {
		got = append(got, fmt.Sprint(e.JobID, " ", e.Status))
	}
	if want := []string{"ns0000000000000000000001 " + string(jobs.Retrying)}; !reflect.DeepEqual(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestDeadTies: entries at one score that span pages are each reported
// once, and the batch reports a lag until the pages are read.
func TestDeadTies(t *testing.T) {
	h := newHarness(t, Config{})
	h.w.deadPage = 2
	b0, base := h.start()
	s := msAligned(base + 0.05)
	for _, jid := range []string{"tie000000000000000000001", "tie000000000000000000002", "tie000000000000000000003"} {
		h.zadd("dead", s, render(t, "sidekiq8", "dead", fx{JID: jid, JobID: jid, Failed: s}))
	}
	h.zadd("dead", s+0.01, render(t, "sidekiq8", "dead", fx{JID: "after0000000000000000001", JobID: "after0000000000000000001", Failed: s}))
	h.waitCovered(s + 0.01)
	cur := b0.Cursor
	var got []string
	var lags []bool
	for range 4 {
		b := h.poll(cur)
		cur = b.Cursor
		lags = append(lags, b.Lag > 0)
		for _, e := range b.Events {
			got = append(got, e.JobID)
		}
	}
	want := []string{"tie000000000000000000001", "tie000000000000000000002", "tie000000000000000000003", "after0000000000000000001"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dead events %v, want %v", got, want)
	}
	if want := []bool{true, true, false, false}; !reflect.DeepEqual(lags, want) {
		t.Errorf("lag reported per poll %v, want %v", lags, want)
	}
}

// TestStartFromNow: a nil cursor replays no history (old retries and
// deaths stay unreported) but reports the jobs running now; a cursor that
// cannot be read starts from now the same way.
func TestStartFromNow(t *testing.T) {
	h := newHarness(t, Config{})
	now := h.now()
	old := msAligned(now - 30)
	h.zadd("retry", old+20, render(t, "sidekiq7", "retry", fx{JID: "old000000000000000000001", Failed: old}))
	h.zadd("dead", old, render(t, "sidekiq7", "dead", fx{JID: "old000000000000000000002", JobID: "x", Failed: old}))
	w := fx{JID: "run000000000000000000001", JobID: "aj-run-1", RunAt: int64(now) - 5}
	h.addProcess("sidekiq7", "web-1:1:abc", "work", map[string]string{"t1": render(t, "sidekiq7", "work", w)}, w)
	for name, cur := range map[string][]byte{"nil": nil, "unreadable": []byte(`{"v":99}`)} {
		b := h.poll(cur)
		var got []string
		for _, e := range b.Events {
			got = append(got, fmt.Sprint(e.JobID, " ", e.Status))
		}
		if want := []string{"aj-run-1 running"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s cursor: events %v, want %v", name, got, want)
		}
		if len(b.Cursor) > 1024 {
			t.Errorf("%s cursor: %d bytes for one running job", name, len(b.Cursor))
		}
	}
}
