package sidekiq

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// versions are the Sidekiq versions of the fixtures and the suffix of the
// work hash each writes.
var versions = []struct {
	dir, workKey string
}{
	{"sidekiq6", "workers"}, // 6.4.1, Debian's
	{"sidekiq7", "work"},
	{"sidekiq8", "work"},
}

// eventsEqual fails t unless got and want are the same events.
func eventsEqual(t *testing.T, what string, got, want []jobs.Event) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	t.Errorf("%s: got %d events, want %d", what, len(got), len(want))
	for i := range max(len(got), len(want)) {
		var g, w any = "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		t.Errorf("  [%d]\n    got  %+v\n    want %+v", i, g, w)
	}
}

// TestVersions writes what each Sidekiq version writes into the work
// hash, the retry set and the dead set, and checks the exact events: a
// listed ActiveJob job is running, entries that failed after the cursor
// are retrying (next retry at their score) or dead, a job that leaves the
// work list is completed, and one whose process's heartbeat key expires
// is lost.
func TestVersions(t *testing.T) {
	for _, v := range versions {
		t.Run(v.dir, func(t *testing.T) {
			t.Parallel()
			// No sweep: the retry windows alone must find these.
			h := newHarness(t, Config{SweepCount: -1})
			b0, base := h.start()
			if len(b0.Events) != 0 || len(b0.Skipped) != 0 {
				t.Fatalf("first poll on an empty Redis: %+v", b0)
			}
			created := msAligned(base - 100)
			runAt := int64(base)
			work := fx{JID: "a1b2c3d4e5f6a1b2c3d4e5f6", JobID: "0b7c2f5e-8a57-4f0e-9a2e-3f1c1d2e3f40",
				Created: created, Enqueued: created + 0.5, RunAt: runAt}
			h.addProcess(v.dir, "web-1:4242:0b0c5dc13639", v.workKey, map[string]string{"giu": render(t, v.dir, "work", work)}, work)

			f2 := msAligned(base + 0.05)
			r2 := fx{JID: "1111aaaa2222bbbb3333cccc", Created: created, Enqueued: created, Failed: f2}
			h.zadd("retry", f2+15+7, render(t, v.dir, "retry", r2))
			f3 := msAligned(base + 0.06)
			r3 := fx{JID: "4444dddd5555eeee6666ffff", Created: created, Enqueued: created, Failed: f3}
			h.zadd("retry", f3+31+6, render(t, v.dir, "retry_again", r3))
			d4 := msAligned(base + 0.07)
			dead := fx{JID: "7777aaaa8888bbbb9999cccc", JobID: "5d6e7f80-1a2b-4c3d-8e9f-a0b1c2d3e4f5",
				Created: created, Enqueued: created, Failed: d4 - 0.001}
			h.zadd("dead", d4, render(t, v.dir, "dead", dead))

			h.waitCovered(d4)
			b1 := h.poll(b0.Cursor)
			want := []jobs.Event{
				{Backend: "sidekiq", JobID: work.JobID, Class: "SleepActiveJob", Queue: "default", Status: jobs.Running,
					At: seconds(float64(runAt)), Args: []any{map[string]any{"_aj_globalid": "gid://cablecar-test/Document/7"}, num("30"), num("3.25")}},
				{Backend: "sidekiq", JobID: r2.JID, Class: "HardJob", Queue: "default", Status: jobs.Retrying,
					ErrorClass: "CablecarTestError", ErrorMessage: "failed on purpose", HasRetryCount: true,
					NextRetryAt: seconds(f2 + 15 + 7), At: seconds(f2),
					Args: []any{num("1"), "two", map[string]any{"k": num("1.5")}, num("12345678901234567890")}},
				{Backend: "sidekiq", JobID: r3.JID, Class: "HardJob", Queue: "low", Status: jobs.Retrying,
					ErrorClass: "NoMethodError", ErrorMessage: errorMessage3[v.dir], RetryCount: 2, HasRetryCount: true,
					NextRetryAt: seconds(f3 + 31 + 6), At: seconds(f3), Args: []any{num("7")}},
				{Backend: "sidekiq", JobID: dead.JobID, Class: "ReportJob", Queue: "default", Status: jobs.Dead,
					ErrorClass: "CablecarTestError", ErrorMessage: "failed on purpose", RetryCount: 1, HasRetryCount: true,
					At: seconds(d4), Args: []any{map[string]any{"_aj_globalid": "gid://app/Document/1"}, num("2")}},
			}
			eventsEqual(t, "first poll", b1.Events, want)
			if len(b1.Skipped) != 0 || b1.Lag != 0 {
				t.Errorf("first poll: skipped %+v, lag %v; want none", b1.Skipped, b1.Lag)
			}

			// The job leaves the work list (the next heartbeat would
			// rewrite it without the job): completed after Settle.
			before := h.now()
			if err := h.rdb.HDel(h.ctx, "web-1:4242:0b0c5dc13639:"+v.workKey, "giu").Err(); err != nil {
				t.Fatal(err)
			}
			evs, skips, cur := h.pollUntil(b1.Cursor, 1)
			after := h.now()
			completed := want[0]
			completed.Status = jobs.Completed
			if len(evs) == 1 {
				if at := float64(evs[0].At.UnixMicro()) / 1e6; at < before || at > after {
					t.Errorf("completed at %v, want between %v and %v", evs[0].At, seconds(before), seconds(after))
				}
				completed.At = evs[0].At
			}
			eventsEqual(t, "after the job left the work list", evs, []jobs.Event{completed})
			if len(skips) != 0 {
				t.Errorf("skipped %+v", skips)
			}

			// A second process runs a job, then its heartbeat key expires
			// (as 60 s after a SIGKILL): lost.
			w5 := fx{JID: "5555eeee6666ffff7777aaaa", JobID: "9e8d7c6b-5a49-4838-a726-151413121110",
				Created: created, Enqueued: created, RunAt: runAt + 1}
			h.addProcess(v.dir, "worker-2:99:aabbccddeeff", v.workKey, map[string]string{"t9": render(t, v.dir, "work", w5)}, w5)
			evs, _, cur = h.pollUntil(cur, 1)
			running := want[0]
			running.JobID, running.At = w5.JobID, seconds(float64(runAt+1))
			eventsEqual(t, "second process", evs, []jobs.Event{running})
			for _, k := range []string{"worker-2:99:aabbccddeeff", "worker-2:99:aabbccddeeff:" + v.workKey} {
				if err := h.rdb.PExpire(h.ctx, k, 50*time.Millisecond).Err(); err != nil {
					t.Fatal(err)
				}
			}
			evs, _, cur = h.pollUntil(cur, 1)
			lost := running
			lost.Status = jobs.Lost
			if len(evs) == 1 {
				lost.At = evs[0].At
			}
			eventsEqual(t, "after the heartbeat expired", evs, []jobs.Event{lost})
			c, err := parseCursor(cur)
			if err != nil || len(c.Run) != 0 {
				t.Errorf("cursor after every run ended: %+v, %v; want no runs", c, err)
			}
		})
	}
}

// errorMessage3 is retry_again.json's message per version (Ruby 3.4, which
// Sidekiq 8 runs on, words NoMethodError differently).
var errorMessage3 = map[string]string{
	"sidekiq6": "undefined method `x' for nil:NilClass",
	"sidekiq7": "undefined method `x' for nil",
	"sidekiq8": "undefined method 'x' for nil",
}

// TestResume checks the cursor's promise: polling again from the same
// cursor (a failed commit, or another node after a lease handover) gives
// the same events, and polling on from the returned cursor gives no
// duplicates and passes nothing over.
func TestResume(t *testing.T) {
	h := newHarness(t, Config{})
	b0, base := h.start()
	created := msAligned(base - 50)
	write := func(jid string, f float64) {
		h.zadd("retry", f+15+3, render(t, "sidekiq7", "retry", fx{JID: jid, Created: created, Enqueued: created, Failed: f}))
	}
	write("aaaaaaaaaaaaaaaaaaaaaaa1", msAligned(base+0.05))
	dead := fx{JID: "dddddddddddddddddddddddd", JobID: "11111111-2222-4333-8444-555555555555", Created: created, Failed: base}
	h.zadd("dead", msAligned(base+0.06), render(t, "sidekiq7", "dead", dead))
	w := fx{JID: "wwwwwwwwwwwwwwwwwwwwwwww", JobID: "66666666-7777-4888-9999-000000000000", Created: created, RunAt: int64(base)}
	h.addProcess("sidekiq7", "web-1:1:abc", "work", map[string]string{"t1": render(t, "sidekiq7", "work", w)}, w)
	h.waitCovered(base + 0.06)

	b1 := h.poll(b0.Cursor)
	if len(b1.Events) != 3 {
		t.Fatalf("first poll: %d events, want 3: %+v", len(b1.Events), b1.Events)
	}
	again := h.poll(b0.Cursor)
	eventsEqual(t, "same cursor again", again.Events, b1.Events)

	other := newHarnessOn(t, h.srv, Config{}) // another node's watcher
	handover := pollWith(t, other.w, b0.Cursor)
	eventsEqual(t, "same cursor on another node", handover.Events, b1.Events)

	// Something new after b1, then both nodes' cursors go on: each
	// reports exactly the new entry, nothing twice.
	f := msAligned(h.now() + 0.01)
	write("aaaaaaaaaaaaaaaaaaaaaaa2", f)
	h.waitCovered(f)
	for name, cur := range map[string][]byte{"b1": b1.Cursor, "again": again.Cursor, "handover": handover.Cursor} {
		evs, _, _ := h.pollUntil(cur, 1)
		if len(evs) != 1 || evs[0].JobID != "aaaaaaaaaaaaaaaaaaaaaaa2" || evs[0].Status != jobs.Retrying {
			t.Errorf("from cursor %s: %+v, want the one new retrying job", name, evs)
		}
	}
	// And with nothing new, nothing.
	b2 := pollWith(t, other.w, handover.Cursor)
	b3 := pollWith(t, other.w, b2.Cursor)
	for _, e := range append(b2.Events, b3.Events...) {
		if e.JobID != "aaaaaaaaaaaaaaaaaaaaaaa2" {
			t.Errorf("repeated event %+v", e)
		}
	}
}

// TestBadData writes broken entries next to good ones: each broken one is
// skipped and reported once, with a reason and without its arguments, and
// the good ones still come through.
func TestBadData(t *testing.T) {
	h := newHarness(t, Config{MaxJobBytes: 4096})
	b0, base := h.start()
	s := base + 15 // a bad retry entry is reported by the poll covering score - 15
	h.zadd("retry", s+0.01, `{"class":"HardJob","args":["SECRET"`)
	h.zadd("retry", s+0.02, `{"class":"HardJob","args":["SECRET"],"failed_at":1,"retry_count":0}`)
	h.zadd("retry", s+0.03, `{"class":"HardJob","jid":"x","args":["SECRET`+strings.Repeat("x", 5000)+`"]}`)
	h.zadd("retry", s+0.04, `{"class":"HardJob","jid":"nofail","args":["SECRET"],"retry_count":0}`)
	h.zadd("dead", base+0.05, `["SECRET"]`)
	good := fx{JID: "900000000000000000000009", Created: base - 10, Failed: msAligned(base + 0.06)}
	h.zadd("retry", good.Failed+20, render(t, "sidekiq6", "retry", good))
	h.addProcess("sidekiq7", "web-1:1:abc", "work", map[string]string{
		"t1": `{"queue":"default","payload":"{\"class\":\"X\",\"args\":[\"SECRET\"]}","run_at":1}`,
		"t2": `{"queue":"default","payload":"not json SECRET","run_at":1}`,
		"t3": `{"queue":"default","payload":{"class":"OldJob","jid":"old0","args":["SECRET"]}}`,
	}, fx{})
	h.waitCovered(base + 0.1)
	b1 := h.poll(b0.Cursor)
	b2 := h.poll(b1.Cursor) // nothing reported twice
	var reasons []string
	for _, b := range []struct {
		name  string
		skips []jobs.Skip
	}{{"first", b1.Skipped}, {"second", b2.Skipped}} {
		for _, sk := range b.skips {
			reasons = append(reasons, sk.Reason)
			if strings.Contains(sk.Detail, "SECRET") {
				t.Errorf("%s poll: skip detail shows the job's arguments: %q", b.name, sk.Detail)
			}
		}
	}
	wantSorted := map[string]int{"malformed_json": 3, "missing_field": 4, "too_large": 1}
	got := map[string]int{}
	for _, r := range reasons {
		got[r]++
	}
	if !reflect.DeepEqual(got, wantSorted) {
		t.Errorf("skip reasons %v, want %v; skips %+v %+v", got, wantSorted, b1.Skipped, b2.Skipped)
	}
	if len(b1.Events) != 1 || b1.Events[0].JobID != good.JID || b1.Events[0].Status != jobs.Retrying {
		t.Errorf("events %+v, want the good retry entry only", b1.Events)
	}
	if len(b2.Events) != 0 || len(b2.Skipped) != 0 {
		t.Errorf("second poll: %+v, want nothing", b2)
	}
}

// TestRunningBounds: past MaxRunning a listed job is skipped (once, while
// listed), and a job whose arguments exceed what the cursor keeps is
// completed without them (its running event has them).
func TestRunningBounds(t *testing.T) {
	h := newHarness(t, Config{MaxRunning: 2})
	b0, _ := h.start()
	big := strings.Repeat("x", 2000)
	entry := func(jid string, arg string) string {
		return fmt.Sprintf(`{"queue":"default","payload":%q,"run_at":1796395778}`,
			fmt.Sprintf(`{"class":"K","jid":"%s","args":["%s"],"queue":"default"}`, jid, arg))
	}
	h.addProcess("sidekiq7", "web-1:1:abc", "work", map[string]string{
		"t1": entry("j1", big), "t2": entry("j2", "small"), "t3": entry("j3", "small"),
	}, fx{})
	b1 := h.poll(b0.Cursor)
	b2 := h.poll(b1.Cursor)
	if len(b1.Events) != 2 || len(b1.Skipped) != 1 || b1.Skipped[0].Reason != "too_many_running" ||
		len(b2.Events) != 0 || len(b2.Skipped) != 0 {
		t.Fatalf("polls: %+v %+v / %+v %+v; want 2 running and one too_many_running skip, then nothing",
			b1.Events, b1.Skipped, b2.Events, b2.Skipped)
	}
	if !reflect.DeepEqual(b1.Events[0].Args, []any{big}) {
		t.Errorf("running event of j1 lacks its arguments")
	}
	if err := h.rdb.HDel(h.ctx, "web-1:1:abc:work", "t1", "t2").Err(); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := h.pollUntil(b2.Cursor, 3)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s %v", e.JobID, e.Status, e.Args))
	}
	// j3 is seen running once j1 and j2 are gone (room again).
	want := []string{"j3 running [small]", "j1 completed []", "j2 completed [small]"}
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// TestFailedRunNotCompleted: a running job that raises leaves the work
// list with a retry or dead entry behind; it is reported retrying or dead,
// never completed, whichever of the two the watcher sees first.
func TestFailedRunNotCompleted(t *testing.T) {
	for _, tc := range []struct {
		name       string
		set        string
		leaveFirst bool
	}{
		{"retry, gone in the same poll", "retry", false},
		{"retry, gone a poll earlier", "retry", true},
		{"dead, gone in the same poll", "dead", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{Settle: time.Second})
			b0, base := h.start()
			jid := "f00000000000000000000001"
			entry := fmt.Sprintf(`{"queue":"default","payload":%q,"run_at":%d}`,
				fmt.Sprintf(`{"class":"K","jid":"%s","args":[1],"queue":"default"}`, jid), int64(base)-1)
			h.addProcess("sidekiq7", "web-1:1:abc", "work", map[string]string{"t1": entry}, fx{})
			b1 := h.poll(b0.Cursor)
			cur := b1.Cursor
			// It raised just before it left; Sidekiq writes the retry or
			// dead entry before the heartbeat drops the job from the work
			// list, but the write may land after the watcher's read of
			// the list (Settle covers that).
			f := msAligned(h.now())
			if tc.leaveFirst {
				if err := h.rdb.HDel(h.ctx, "web-1:1:abc:work", "t1").Err(); err != nil {
					t.Fatal(err)
				}
				cur = h.poll(cur).Cursor
			}
			job := fmt.Sprintf(`{"class":"K","jid":"%s","args":[1],"queue":"default","error_class":"E","failed_at":%v,"retry_count":0}`, jid, f)
			if tc.set == "retry" {
				h.zadd("retry", f+20, job)
			} else {
				h.zadd("dead", f, job)
			}
			if !tc.leaveFirst {
				if err := h.rdb.HDel(h.ctx, "web-1:1:abc:work", "t1").Err(); err != nil {
					t.Fatal(err)
				}
			}
			h.waitCovered(h.now() + 0.1)
			evs, _, cur := h.pollUntil(cur, 1)
			// Past the grace, a completion would have come by now.
			h.waitCovered(h.now() + 0.1)
			b := h.poll(cur)
			evs = append(evs, b.Events...)
			evs = append(evs, h.poll(b.Cursor).Events...)
			var got []jobs.Status
			for _, e := range append(b1.Events, evs...) {
				got = append(got, e.Status)
			}
			want := []jobs.Status{jobs.Running, jobs.Retrying}
			if tc.set == "dead" {
				want[1] = jobs.Dead
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("statuses %v, want %v", got, want)
			}
		})
	}
}
