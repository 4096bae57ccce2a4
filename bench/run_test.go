package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/bench"
	"github.com/cablecar/cablecar/internal/servetest"
	"github.com/cablecar/cablecar/proxy"
)

const (
	testSecret = "bench-test-secret-0123456789abcdef"
	testKey    = "bench-broadcast-key"
)

// startServer runs a real cablecar server (in-memory broker, /_broadcast
// on) on a loopback port and returns its base address.
func startServer(t *testing.T, acfg auth.Config) string {
	t.Helper()
	return startServerWith(t, proxy.Config{BroadcastKey: testKey}, acfg)
}

// startServerWith is startServer with the server's own configuration.
func startServerWith(t *testing.T, pcfg proxy.Config, acfg auth.Config) string {
	t.Helper()
	a, err := auth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(pcfg, memory.New(), a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servetest.Serve(t, srv)
	return addr
}

func run(t *testing.T, cfg bench.Config) *bench.Result {
	t.Helper()
	res, _ := runWithProgress(t, cfg)
	return res
}

func runWithProgress(t *testing.T, cfg bench.Config) (*bench.Result, string) {
	t.Helper()
	var progress bytes.Buffer
	res, err := bench.Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.OK() {
		var b strings.Builder
		res.WriteText(&b)
		t.Fatalf("run not clean:\n%s", b.String())
	}
	return res, progress.String()
}

// Tokens minted per connection carry exactly their stream, so the route
// without public: admits each subscription; /_broadcast publishes.
func TestFanoutWithTokensThroughBroadcastEndpoint(t *testing.T) {
	addr := startServer(t, auth.Config{JWTSecret: testSecret, Routes: "BenchChannel={params.stream}"})
	// 12 rounds at 10/s: long enough for a progress line or two.
	res, progress := runWithProgress(t, bench.Config{
		Scenario: bench.ScenarioFanout, URL: "ws://" + addr + "/cable",
		Connections: 60, Concurrency: 20, Streams: 6, Broadcasts: 12, Rate: 10, PayloadSize: 300,
		BroadcastURL: "http://" + addr + "/_broadcast", BroadcastKey: testKey, JWTSecret: testSecret,
		Sources: []string{"127.0.0.1", "127.0.0.2"}, Timeout: 20 * time.Second,
	})
	if f := res.Fanout; f.Expected != 720 || f.Delivered != 720 || f.Latency == nil || f.Latency.Count != 720 {
		t.Errorf("fanout %+v", f)
	}
	if !strings.Contains(progress, "bench fanout") || !strings.Contains(progress, "delivered") {
		t.Errorf("progress output %q", progress)
	}
	var text strings.Builder
	res.WriteText(&text)
	for _, want := range []string{"720/720 (100.00%)", "failures     none", "via /_broadcast"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
}

// The closed loop publishes as fast as deliveries complete, with either
// kind of reader.
func TestFanoutClosedLoop(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-goroutines=%v", goroutines), func(t *testing.T) {
			addr := startServer(t, auth.Config{AllowAnonymous: true, Routes: bench.ServerRoute})
			res := run(t, bench.Config{
				Scenario: bench.ScenarioFanout, URL: "ws://" + addr + "/cable",
				Connections: 50, Streams: 1, Broadcasts: 200, Rate: -1, Window: 4, ReadGoroutines: goroutines,
				BroadcastURL: "http://" + addr + "/_broadcast", BroadcastKey: testKey, Timeout: 20 * time.Second,
			})
			if res.Fanout.Delivered != 50*200 || res.Fanout.Latency.Count != 50*200 || res.Window != 4 || res.Rate != 0 {
				t.Errorf("fanout %+v window %d rate %v", res.Fanout, res.Window, res.Rate)
			}
		})
	}
}

// A server that goes away mid-run costs every connection, counted by
// kind, with either kind of reader; the run ends instead of hanging.
func TestFanoutServerGoesAway(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-goroutines=%v", goroutines), func(t *testing.T) {
			a, err := auth.New(auth.Config{AllowAnonymous: true, Routes: bench.ServerRoute})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := proxy.New(proxy.Config{BroadcastKey: testKey}, memory.New(), a, a, nil)
			if err != nil {
				t.Fatal(err)
			}
			addr, stop := servetest.Serve(t, srv)
			go func() {
				time.Sleep(700 * time.Millisecond)
				_ = stop()
			}()
			res, err := bench.Run(context.Background(), bench.Config{
				Scenario: bench.ScenarioFanout, URL: "ws://" + addr + "/cable",
				Connections: 40, Streams: 4, Broadcasts: 50, Rate: 10, ReadGoroutines: goroutines,
				BroadcastURL: "http://" + addr + "/_broadcast", BroadcastKey: testKey,
				DrainTimeout: 2 * time.Second, Timeout: 20 * time.Second,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() || res.Failures["disconnect_server_restart"] != 40 {
				t.Errorf("ok %v failures %v", res.OK(), res.Failures)
			}
			if d := res.Fanout.Delivered; d == 0 || d >= 40*50 {
				t.Errorf("delivered %d, want some of %d before the server went", d, 40*50)
			}
		})
	}
}

func TestConnectHoldsAndCountsRejections(t *testing.T) {
	addr := startServer(t, auth.Config{AllowAnonymous: true, Routes: bench.ServerRoute})
	res := run(t, bench.Config{Scenario: bench.ScenarioConnect, URL: "ws://" + addr + "/cable",
		Connections: 100, Concurrency: 10, Hold: time.Millisecond, PID: 0})
	if res.Connect.Connected != 100 || res.Connect.Subscribed != 100 || res.Connect.RatePerSec <= 0 {
		t.Errorf("connect %+v", res.Connect)
	}

	// A channel without a route is rejected: counted, and the run is not OK.
	res, err := bench.Run(context.Background(), bench.Config{Scenario: bench.ScenarioConnect, URL: "ws://" + addr + "/cable",
		Connections: 5, Identifier: `{"channel":"NoSuchChannel"}`, Hold: time.Millisecond, DrainTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Failures["rejected"] != 5 || res.Connect.Subscribed != 0 {
		t.Errorf("rejected run: ok %v failures %v connect %+v", res.OK(), res.Failures, res.Connect)
	}
}

// A server that refuses the token is a failure of kind
// disconnect_unauthorized, not a hang.
func TestUnauthorizedIsAFailureKind(t *testing.T) {
	addr := startServer(t, auth.Config{JWTSecret: testSecret, Routes: bench.ServerRoute})
	res, err := bench.Run(context.Background(), bench.Config{Scenario: bench.ScenarioConnect, URL: "ws://" + addr + "/cable",
		Connections: 3, Hold: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Failures["disconnect_unauthorized"] != 3 {
		t.Errorf("failures %v", res.Failures)
	}
}
