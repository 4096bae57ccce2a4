package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// The job checks' names.
const (
	nameJobStreams = "job streams"
	nameJobBackend = "job backend"
	nameJobClasses = "job classes"
)

// jobCheckTimeout bounds one backend's check.
const jobCheckTimeout = 10 * time.Second

// Jobs is what doctor checks of the job watchers.
type Jobs struct {
	// Watchers are the configured backends' watchers (not running: doctor
	// only calls Check).
	Watchers []jobs.Watcher
	// WatchersErr says why the watchers could not be built (a bad URL).
	WatchersErr error
	// Mapping is CABLECAR_JOB_STREAMS as parsed, or nil with MappingErr.
	Mapping    *jobs.Mapping
	MappingErr error
	// AdminURL is a running cablecar's admin listener, asked for the
	// classes its watchers could not map ("" skips that).
	AdminURL, AdminToken string
}

// checkJobs reports the mapping, each backend, and the unmapped classes a
// running node has seen.
func checkJobs(ctx context.Context, j Jobs) []Result {
	if j.WatchersErr != nil {
		return []Result{{Status: Fail, Check: nameJobBackend, Message: j.WatchersErr.Error(),
			Fix: "fix the CABLECAR_JOBS_* setting named here; cablecar serve refuses to start until then"}}
	}
	if len(j.Watchers) == 0 {
		return []Result{{Status: Skip, Check: nameJobBackend, Message: "no job backend watched (CABLECAR_JOBS_SIDEKIQ_URL, _BULLMQ_URL, _CELERY_URL, _SOLID_QUEUE_URL unset)"}}
	}
	out := []Result{checkJobMapping(j)}
	for _, w := range j.Watchers {
		out = append(out, checkJobBackend(ctx, w)...)
	}
	if j.AdminURL != "" {
		out = append(out, checkUnmapped(ctx, j))
	}
	return out
}

func checkJobMapping(j Jobs) Result {
	switch {
	case j.MappingErr != nil:
		return Result{Status: Fail, Check: nameJobStreams, Message: j.MappingErr.Error(),
			Fix: "fix the rule named here: ClassName=template, placeholders {job_id} {class} {queue} {args.N} {gid:Model:args.N}"}
	case j.Mapping == nil || j.Mapping.Empty():
		return Result{Status: Fail, Check: nameJobStreams, Message: "a job backend is watched but CABLECAR_JOB_STREAMS has no rule: every event would be dropped",
			Fix: "add rules such as ProcessDocumentJob=document:{gid:Document:args.0} and *=job:{job_id}"}
	}
	classes := j.Mapping.Classes()
	sort.Strings(classes)
	msg := fmt.Sprintf("rules for %d job classes (%s)", len(classes), strings.Join(classes, ", "))
	if len(classes) == 0 {
		msg = "no class rules"
	}
	if j.Mapping.HasFallback() {
		return Result{Status: OK, Check: nameJobStreams, Message: msg + ", and * for every other class"}
	}
	return Result{Status: OK, Check: nameJobStreams, Message: msg + "; no * rule, so other classes' events are dropped and counted (see job classes)"}
}

func checkJobBackend(ctx context.Context, w jobs.Watcher) []Result {
	ctx, cancel := context.WithTimeout(ctx, jobCheckTimeout)
	defer cancel()
	findings, err := w.Check(ctx)
	if err != nil {
		return []Result{{Status: Fail, Check: nameJobBackend, Message: w.Backend() + ": " + err.Error(),
			Fix: "check the backend's URL setting and that the backend runs; cablecar keeps retrying meanwhile"}}
	}
	out := make([]Result, 0, len(findings)+1)
	out = append(out, Result{Status: OK, Check: nameJobBackend, Message: w.Backend() + ": reachable"})
	for _, f := range findings {
		st := OK
		if before, after, warn := strings.Cut(f, "WARNING: "); warn {
			st, f = Warn, before+after
		}
		out = append(out, Result{Status: st, Check: nameJobBackend, Message: f})
	}
	return out
}

// checkUnmapped asks the running node which classes had no stream.
func checkUnmapped(ctx context.Context, j Jobs) Result {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(j.AdminURL, "/")+"/api/status", nil)
	if err != nil {
		return Result{Status: Skip, Check: nameJobClasses, Message: "admin URL: " + urlErrReason(err).Error()}
	}
	if j.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+j.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Result{Status: Skip, Check: nameJobClasses, Message: "no running cablecar's admin listener to ask which classes had no stream (" + urlErrReason(err).Error() + ")"}
	}
	defer resp.Body.Close()
	var st struct{ Jobs []jobs.Snapshot }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		return Result{Status: Skip, Check: nameJobClasses, Message: fmt.Sprintf("admin /api/status answered %s", resp.Status)}
	}
	var lines []string
	for _, s := range st.Jobs {
		if len(s.UnmappedClasses) > 0 {
			lines = append(lines, fmt.Sprintf("%s: %s (%d events dropped)", s.Backend, strings.Join(s.UnmappedClasses, ", "), s.Unmapped))
		}
	}
	if len(lines) == 0 {
		return Result{Status: OK, Check: nameJobClasses, Message: "every job class the running cablecar saw has a stream"}
	}
	return Result{Status: Warn, Check: nameJobClasses, Message: "classes without a CABLECAR_JOB_STREAMS rule: " + strings.Join(lines, "; "),
		Fix: "add a rule for each (ClassName=template), or a *=job:{job_id} fallback"}
}
