package bench_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/bench"
	"github.com/cablecar/cablecar/proxy"
)

// Slow connections fall behind on a small pending budget and are
// disconnected as too_slow; the normal ones get everything and the run is
// clean, because the slow ones are not its failures.
func TestFanoutWithSlowSubscribers(t *testing.T) {
	addr := startServerWith(t, proxy.Config{BroadcastKey: testKey, MaxPendingBytes: 32 << 10},
		auth.Config{JWTSecret: testSecret, Routes: "BenchChannel={params.stream}"})
	const conns, slow, broadcasts = 20, 3, 30
	res := run(t, bench.Config{
		Scenario: bench.ScenarioFanout, URL: "ws://" + addr + "/cable",
		Connections: conns, Streams: 2, Broadcasts: broadcasts, Rate: 100, PayloadSize: 8 << 10, Slow: slow,
		BroadcastURL: "http://" + addr + "/_broadcast", BroadcastKey: testKey, JWTSecret: testSecret,
		Timeout: 30 * time.Second,
	})
	if f := res.Fanout; f.Delivered != conns*broadcasts || f.Expected != conns*broadcasts {
		t.Errorf("fanout %+v, want %d delivered to the normal connections", f, conns*broadcasts)
	}
	s := res.Slow
	if s == nil || s.Requested != slow || s.Confirmed != slow || s.Disconnected != slow || s.StillOpen != 0 {
		t.Fatalf("slow %+v, want %d confirmed and disconnected", s, slow)
	}
	if s.Outcomes["disconnect_too_slow"] == 0 {
		t.Errorf("outcomes %v: no too_slow disconnect frame was read", s.Outcomes)
	}
	var text strings.Builder
	res.WriteText(&text)
	t.Logf("%s", text.String())
	if !strings.Contains(text.String(), "3/3 subscribed, then stopped reading") {
		t.Errorf("summary lacks the slow line:\n%s", text.String())
	}
}

func TestSlowIsAFanoutOption(t *testing.T) {
	cfg := bench.Config{Scenario: bench.ScenarioConnect, Slow: 2}
	_, err := bench.Run(t.Context(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "slow 2") {
		t.Errorf("connect with slow: %v", err)
	}
}
