package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// tableColumns are the columns of WriteTable, with how to read each from a
// Result; "–" where a run did not measure it.
var tableColumns = []struct {
	head string
	cell func(r *Result) string
}{
	{"scenario", func(r *Result) string { return r.Scenario }},
	{"client", func(r *Result) string {
		if r.ClientMode == "" {
			return "–"
		}
		return r.ClientMode
	}},
	{"connections", func(r *Result) string { return fmt.Sprint(r.Connections) }},
	{"streams", func(r *Result) string { return fmt.Sprint(r.Streams) }},
	{"payload B", func(r *Result) string { return optInt(r.PayloadBytes) }},
	{"rate/s", func(r *Result) string {
		if r.Fanout == nil {
			return "–"
		}
		if r.Rate <= 0 {
			return "closed loop"
		}
		return fmt.Sprintf("%g", r.Rate)
	}},
	{"delivered", func(r *Result) string {
		if r.Fanout == nil {
			return fmt.Sprintf("%d/%d connected", r.Connect.Connected, r.Connections)
		}
		return fmt.Sprintf("%d/%d", r.Fanout.Delivered, r.Fanout.Expected)
	}},
	{"p50 ms", func(r *Result) string { return latency(r, func(l *Latency) float64 { return l.P50 }) }},
	{"p99 ms", func(r *Result) string { return latency(r, func(l *Latency) float64 { return l.P99 }) }},
	{"deliveries/s", func(r *Result) string {
		if r.Fanout == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f", r.Fanout.DeliveriesPerSec)
	}},
	{"server CPU ms / 1k deliveries", func(r *Result) string {
		if r.Server == nil || r.Server.CPUPer1000DeliveriesMS == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", r.Server.CPUPer1000DeliveriesMS)
	}},
	{"client CPU ms / 1k deliveries", func(r *Result) string {
		if r.Client == nil || r.Client.CPUPer1000DeliveriesMS == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", r.Client.CPUPer1000DeliveriesMS)
	}},
	{"server RSS / conn KB", func(r *Result) string {
		if r.Server == nil || r.Server.RSSPerConnBytes == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f", r.Server.RSSPerConnBytes/1024)
	}},
	{"connect/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Connect.RatePerSec) }},
	{"failures", func(r *Result) string { return fmt.Sprint(r.FailuresTotal) }},
}

// ReadResults decodes the --json outputs of several runs, one after
// another in r (files concatenated, or a JSON array per file).
func ReadResults(r io.Reader) ([]Result, error) {
	dec := json.NewDecoder(r)
	var out []Result
	for n := 1; dec.More(); n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, fmt.Errorf("result %d: %w", n, err)
		}
		if strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
			var many []Result
			if err := json.Unmarshal(raw, &many); err != nil {
				return out, fmt.Errorf("result %d: %w", n, err)
			}
			out = append(out, many...)
			continue
		}
		var one Result
		if err := json.Unmarshal(raw, &one); err != nil {
			return out, fmt.Errorf("result %d: %w", n, err)
		}
		out = append(out, one)
	}
	return out, nil
}

// WriteTable writes results as one Markdown table, a row per run in the
// order given, so a sweep's JSON becomes the table in docs/benchmarks.md.
func WriteTable(w io.Writer, results []Result) error {
	var b strings.Builder
	heads := make([]string, len(tableColumns))
	rule := make([]string, len(tableColumns))
	for i, c := range tableColumns {
		heads[i], rule[i] = c.head, "---"
	}
	fmt.Fprintf(&b, "| %s |\n|%s|\n", strings.Join(heads, " | "), strings.Join(rule, "|"))
	for i := range results {
		cells := make([]string, len(tableColumns))
		for j, c := range tableColumns {
			cells[j] = c.cell(&results[i])
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func optInt(n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprint(n)
}

func latency(r *Result, pick func(*Latency) float64) string {
	if r.Fanout == nil || r.Fanout.Latency == nil || r.Fanout.Latency.Count == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", pick(r.Fanout.Latency))
}
