package solidqueue

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// testActiveJobFormat stores arguments serialized by the real ActiveJob
// (Debian's ruby-activejob) and checks the event's Args: GlobalIDs kept as
// {"_aj_globalid": …}, symbol-key markers kept, numbers as json.Number.
func testActiveJobFormat(t *testing.T, f *fixture) {
	out, err := exec.Command("/usr/bin/ruby", "testdata/serialize_job.rb", "aj-real").Output()
	if err != nil {
		t.Fatalf("ruby testdata/serialize_job.rb (install ruby-activejob and ruby-globalid): %v", err)
	}
	f.schema(t)
	worker := f.register(t, "worker-1", time.Now())
	w := f.watcher(t, nil)
	cur := poll(t, w, nil).Cursor
	id := f.enqueueRaw(t, "ExportJob", "exports", "aj-real", strings.TrimSpace(string(out)))
	f.claim(t, f.db, id, worker, time.Second)
	f.fail(t, f.db, id, errorJSON("ActiveRecord::RecordNotFound", "Couldn't find User with 'id'=42"), 2*time.Second)
	b := poll(t, w, cur)
	expectNoSkips(t, b)
	want := f.ev(jobs.Failed, "aj-real", "ExportJob", "exports", 2*time.Second,
		map[string]any{"_aj_globalid": "gid://shop/User/42"}, json.Number("7"), "csv",
		map[string]any{"id": json.Number("3"), "format": "wide", "_aj_symbol_keys": []any{"id"}},
		json.Number("1.5"), nil, []any{true})
	want.ErrorClass, want.ErrorMessage = "ActiveRecord::RecordNotFound", "Couldn't find User with 'id'=42"
	expectEvents(t, b.Events, want)
}

// testTablePrefix: with TablePrefix the watcher reads tables named so.
func testTablePrefix(t *testing.T, f *fixture) {
	f.schemaPrefixed(t, "app_sq_")
	w := f.watcher(t, func(c *Config) { c.TablePrefix = "app_sq_" })
	cur := poll(t, w, nil).Cursor
	now := f.at(time.Second)
	job := f.insert(t, f.db, "INSERT INTO app_sq_jobs (queue_name, class_name, arguments, active_job_id, created_at, updated_at) VALUES ('default', 'PrefixJob', ?, 'aj-prefix', ?, ?)",
		f.serialize("PrefixJob", "default", "aj-prefix", `[]`), now, now)
	f.insert(t, f.db, "INSERT INTO app_sq_failed_executions (job_id, error, created_at) VALUES (?, ?, ?)", job, errorJSON("RuntimeError", "x"), now)
	b := poll(t, w, cur)
	want := f.ev(jobs.Failed, "aj-prefix", "PrefixJob", "default", time.Second)
	want.ErrorClass, want.ErrorMessage = "RuntimeError", "x"
	expectEvents(t, b.Events, want)
	lines, err := w.Check(t.Context())
	if err != nil || !strings.Contains(strings.Join(lines, "\n"), "app_sq_failed_executions 1") {
		t.Fatalf("check: %v %q", err, lines)
	}
}
