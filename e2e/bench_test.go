package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/redistest"
)

// `cablecar bench fanout` against the real binary and a real redis-server:
// minted tokens pass the streams-claim check, every broadcast published to
// Redis reaches every subscriber, and the JSON summary says so. Timings are
// printed, never asserted.
func TestBenchFanoutThroughRedis(t *testing.T) {
	rs := redistest.Start(t)
	env := map[string]string{
		"CABLECAR_REDIS_URL":      rs.URL,
		"CABLECAR_CHANNEL_PREFIX": "benchapp",
		"CABLECAR_JWT_SECRET":     secret,
		"CABLECAR_ROUTES":         "BenchChannel={params.stream}", // not public: the token must grant the stream
		"CABLECAR_LOG_LEVEL":      "warn",
	}
	sc := startSidecar(t, env, "serve")

	const conns, streams, broadcasts = 200, 20, 20
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "bench", "fanout",
		"--url", "ws://"+sc.addr+"/cable",
		"--connections", strconv.Itoa(conns), "--concurrency", "50", "--streams", strconv.Itoa(streams),
		"--broadcasts", strconv.Itoa(broadcasts), "--rate", "50",
		"--redis", rs.URL, "--prefix", "benchapp", "--jwt-secret", secret,
		"--sources", "127.0.0.1,127.0.0.2",
		"--pid", strconv.Itoa(sc.cmd.Process.Pid), "--timeout", "12s", "--drain-timeout", "5s", "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("bench stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("cablecar bench fanout: %v\n%s", err, stdout.String())
	}

	var res struct {
		Connect struct {
			Connected  int64 `json:"connected"`
			Subscribed int64 `json:"subscribed"`
		} `json:"connect"`
		Fanout struct {
			Expected  int64 `json:"expected"`
			Delivered int64 `json:"delivered"`
			Latency   *struct {
				Count int64   `json:"count"`
				P99   float64 `json:"p99"`
			} `json:"latency_ms"`
		} `json:"fanout"`
		Failures      map[string]int64 `json:"failures"`
		FailuresTotal int64            `json:"failures_total"`
		Misrouted     int64            `json:"misrouted"`
		OutOfOrder    int64            `json:"out_of_order"`
		Server        *struct {
			RSSConnectedKB int64 `json:"rss_connected_kb"`
		} `json:"server"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout.String())
	}
	if res.Connect.Connected != conns || res.Connect.Subscribed != conns {
		t.Errorf("connected %d, subscribed %d; want %d each", res.Connect.Connected, res.Connect.Subscribed, conns)
	}
	if want := int64(conns * broadcasts); res.Fanout.Expected != want || res.Fanout.Delivered != want {
		t.Errorf("delivered %d of %d, want %d of %d", res.Fanout.Delivered, res.Fanout.Expected, want, want)
	}
	if res.FailuresTotal != 0 || len(res.Failures) != 0 || res.Misrouted != 0 || res.OutOfOrder != 0 {
		t.Errorf("failures %v (total %d), misrouted %d, out of order %d", res.Failures, res.FailuresTotal, res.Misrouted, res.OutOfOrder)
	}
	if res.Fanout.Latency == nil || res.Fanout.Latency.Count != int64(conns*broadcasts) {
		t.Errorf("latency %+v, want one sample per delivery", res.Fanout.Latency)
	}
	if res.Server == nil || res.Server.RSSConnectedKB == 0 {
		t.Errorf("server %+v: --pid should report the server's RSS", res.Server)
	}
	if res.Fanout.Latency != nil {
		t.Logf("p99 %.2f ms (not asserted)", res.Fanout.Latency.P99)
	}
}
