package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/redistest"
)

// `cablecar bench fanout --slow` against the real binary and a real
// redis-server, at a tiny size: with a small CABLECAR_MAX_PENDING_BYTES the
// slow subscribers overflow and are disconnected as too_slow (the tool sees
// it, and so does the server's /metrics), while every normal subscriber
// gets every broadcast and the run stays clean. Timings are printed, never
// asserted.
func TestBenchFanoutSlowSubscribers(t *testing.T) {
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	sc := startSidecar(t, map[string]string{
		"CABLECAR_REDIS_URL":         rs.URL,
		"CABLECAR_CHANNEL_PREFIX":    prefix,
		"CABLECAR_ALLOW_ANONYMOUS":   "true",
		"CABLECAR_ROUTES":            "public:BenchChannel={params.stream}",
		"CABLECAR_MAX_PENDING_BYTES": "32768",
		"CABLECAR_LOG_LEVEL":         "warn",
	}, "serve")

	const conns, slow, broadcasts = 50, 2, 30
	out := runBench(t, "fanout", "--url", "ws://"+sc.addr+"/cable",
		"--connections", strconv.Itoa(conns), "--slow", strconv.Itoa(slow),
		// 30 × 8 KiB per slow subscriber: well past the 32 KiB budget
		// plus what the kernels hold.
		"--broadcasts", strconv.Itoa(broadcasts), "--rate", "50", "--payload-size", "8192",
		"--redis", rs.URL, "--prefix", prefix, "--timeout", "20s", "--drain-timeout", "5s", "--json")

	var res struct {
		Fanout struct {
			Expected  int64 `json:"expected"`
			Delivered int64 `json:"delivered"`
			Latency   *struct {
				P99 float64 `json:"p99"`
			} `json:"latency_ms"`
		} `json:"fanout"`
		Slow *struct {
			Confirmed    int64            `json:"confirmed"`
			Disconnected int64            `json:"disconnected"`
			StillOpen    int64            `json:"still_open"`
			Outcomes     map[string]int64 `json:"outcomes"`
		} `json:"slow"`
		FailuresTotal int64            `json:"failures_total"`
		Failures      map[string]int64 `json:"failures"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	if want := int64(conns * broadcasts); res.Fanout.Expected != want || res.Fanout.Delivered != want {
		t.Errorf("normal subscribers: delivered %d of %d, want %d", res.Fanout.Delivered, res.Fanout.Expected, want)
	}
	if res.FailuresTotal != 0 {
		t.Errorf("failures %v: the slow subscribers must not count as failures", res.Failures)
	}
	if s := res.Slow; s == nil || s.Confirmed != slow || s.Disconnected != slow || s.StillOpen != 0 {
		t.Fatalf("slow %+v, want %d confirmed, all disconnected", s, slow)
	}
	if n := res.Slow.Outcomes["disconnect_too_slow"]; n == 0 {
		t.Errorf("outcomes %v: no too_slow disconnect frame reached a slow subscriber", res.Slow.Outcomes)
	}
	// The server's own count, once the closes have run.
	waitMetric(t, sc.admin, `cablecar_connections_closed_total{reason="too_slow"}`, strconv.Itoa(slow))
	if res.Fanout.Latency != nil {
		t.Logf("normal subscribers' p99 %.2f ms (not asserted); slow outcomes %v", res.Fanout.Latency.P99, res.Slow.Outcomes)
	}
}

// runBench runs `cablecar bench <args>` and returns its stdout; it fails t
// if the tool says the run was not clean.
func runBench(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"bench"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("bench stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("cablecar bench %s: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return stdout.Bytes()
}

// waitMetric waits up to 5 s for a Prometheus series on the admin
// listener to read want.
func waitMetric(t *testing.T, admin, series, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		body, err := httpGet("http://" + admin + "/metrics")
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		got = ""
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				got = v
			}
		}
		if got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s = %q, want %s", series, got, want)
}
