package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Status is the verdict of one check. Statuses are ordered by severity:
// OK < Skip < Warn < Fail. The zero value is OK.
type Status int

// The statuses a check can give.
const (
	// OK means the check passed.
	OK Status = iota
	// Skip means the check did not apply or could not run.
	Skip
	// Warn means something is likely wrong or worth knowing, but not fatal.
	Warn
	// Fail means something is broken: cablecar will not deliver as expected.
	Fail
)

var statusNames = [...]string{OK: "OK", Skip: "SKIP", Warn: "WARN", Fail: "FAIL"}

// String returns "OK", "SKIP", "WARN" or "FAIL".
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusNames[s]
}

// MarshalText writes the status as String does, for JSON.
func (s Status) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(statusNames) {
		return nil, fmt.Errorf("doctor: unknown status %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads "OK", "SKIP", "WARN" or "FAIL".
func (s *Status) UnmarshalText(text []byte) error {
	for i, name := range statusNames {
		if string(text) == name {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("doctor: unknown status %q", text)
}

// Result is the outcome of one check.
type Result struct {
	// Status is the verdict.
	Status Status `json:"status"`
	// Check names what was checked, e.g. "redis reachable".
	Check string `json:"check"`
	// Message says what was found; it never holds a password, a token or a
	// message payload.
	Message string `json:"message"`
	// Fix says what to do; set for WARN and FAIL (default "").
	Fix string `json:"fix,omitempty"`
}

// Report is the results of a run, in the order the checks ran. The zero
// value is an empty report. A Report is not safe for concurrent use.
type Report struct {
	// Results holds one entry per finding.
	Results []Result
}

// Add appends results.
func (r *Report) Add(results ...Result) { r.Results = append(r.Results, results...) }

// Failed reports whether any check failed; `cablecar doctor` then exits 1.
func (r *Report) Failed() bool { return r.Count(Fail) > 0 }

// Count returns how many results have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// Find returns the results of the named check, in order.
func (r *Report) Find(check string) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Check == check {
			out = append(out, res)
		}
	}
	return out
}

// WriteText writes one aligned line per result (status, check, message), an
// indented "→ fix:" line under each WARN and FAIL, and a summary line:
//
//	OK    redis reachable         redis://127.0.0.1:6379/0 (redis 7.0.15)
//	FAIL  redis maxmemory-policy  allkeys-lru: …
//	                              → fix: CONFIG SET maxmemory-policy noeviction …
func (r *Report) WriteText(w io.Writer) error {
	width := 0
	for _, res := range r.Results {
		width = max(width, len([]rune(res.Check)))
	}
	pad := strings.Repeat(" ", statusWidth+width+2)
	var b strings.Builder
	for _, res := range r.Results {
		name := res.Check + strings.Repeat(" ", width+2-len([]rune(res.Check)))
		fmt.Fprintf(&b, "%-*s%s%s\n", statusWidth, res.Status, name, indent(res.Message, pad))
		if res.Fix != "" && res.Status >= Warn {
			fmt.Fprintf(&b, "%s→ fix: %s\n", pad, indent(res.Fix, pad+"       "))
		}
	}
	b.WriteString("\n" + r.summary() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// statusWidth is the width of the status column: "WARN" and two spaces.
const statusWidth = 6

// indent puts pad before every line of s but the first.
func indent(s, pad string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// summary counts the results by status, worst first: "1 FAIL, 2 WARN, 7 OK".
func (r *Report) summary() string {
	if len(r.Results) == 0 {
		return "no checks ran"
	}
	var parts []string
	for _, s := range []Status{Fail, Warn, OK, Skip} {
		if n := r.Count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

// jsonReport is the shape WriteJSON writes.
type jsonReport struct {
	OK      bool     `json:"ok"`
	Fail    int      `json:"fail"`
	Warn    int      `json:"warn"`
	Results []Result `json:"results"`
}

// WriteJSON writes the report for machines:
// {"ok":false,"fail":1,"warn":0,"results":[{"status":"FAIL","check":…,"message":…,"fix":…},…]}.
// "ok" is false exactly when Failed is true.
func (r *Report) WriteJSON(w io.Writer) error {
	out := jsonReport{OK: !r.Failed(), Fail: r.Count(Fail), Warn: r.Count(Warn), Results: r.Results}
	if out.Results == nil {
		out.Results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}
