package bench

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// chunkConn hands out data a few bytes per Read, as a slow socket would.
type chunkConn struct {
	net.Conn
	data  []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestPayloadRoundTrip(t *testing.T) {
	st := stamp{at: 123456789, seq: 42, stream: 999, run: 1 << 49}
	for _, size := range []int{0, 10, 200, 4096} {
		p := appendPayload(nil, st, size)
		if size > 60 && len(p) != size {
			t.Errorf("size %d: payload is %d bytes: %s", size, len(p), p)
		}
		got, ok := parseStamp(p)
		if !ok || got != st {
			t.Errorf("size %d: parse(%s) = %+v %v, want %+v", size, p, got, ok, st)
		}
		// A server that decodes the data and encodes it again (AnyCable:
		// sorted keys, numbers as float64) must hand back the same bytes.
		var v map[string]any
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("size %d: %s is not JSON: %v", size, p, err)
		}
		if again, _ := json.Marshal(v); string(again) != string(p) {
			t.Errorf("size %d: re-encoded\n%s\nwant\n%s", size, again, p)
		}
	}
	for _, bad := range []string{`{}`, `{"cbt":x}`, `{"cbt":1,"seq":2}`, `{"status":"complete"}`} {
		if _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parse(%s) succeeded", bad)
		}
	}
}

// A server frame is parsed and counted without allocating: the client must
// not be the bottleneck when it reads a million frames.
func TestMessagePathDoesNotAllocate(t *testing.T) {
	r := &runner{cfg: Config{Streams: 1}, start: time.Now(), runID: 7, roundDone: make(chan struct{}, 1)}
	c := &client{r: r, lastSeq: -1, t: &r.tally}
	text := []byte(`{"identifier":"{\"channel\":\"BenchChannel\",\"stream\":\"bench-0\"}","message":`)
	text = append(appendPayload(text, stamp{at: 1, seq: 0, run: 7}, 0), '}')
	frame := append([]byte{0x81, 126, byte(len(text) >> 8), byte(len(text))}, text...)
	allocs := testing.AllocsPerRun(1000, func() {
		c.buf, c.rd, c.wr = frame, 0, len(frame)
		c.lastSeq = -1
		op, p, err := c.next()
		if err != nil || op != 1 {
			t.Fatalf("next: %v %v", op, err)
		}
		if err := c.onText(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}
	if r.deliveredCount() == 0 || r.foreign.Load() != 0 || r.misrouted.Load() != 0 {
		t.Errorf("delivered %d foreign %d misrouted %d", r.deliveredCount(), r.foreign.Load(), r.misrouted.Load())
	}
}

func TestParseFramesAcrossReads(t *testing.T) {
	// Three frames: short, 16-bit length, and one split mid-header.
	long := strings.Repeat("x", 300)
	var stream []byte
	stream = append(stream, 0x81, 3)
	stream = append(stream, "abc"...)
	stream = append(stream, 0x81, 126, byte(len(long)>>8), byte(len(long)))
	stream = append(stream, long...)
	stream = append(stream, 0x88, 2, 0x03, 0xe8)
	for split := 1; split < len(stream); split += 37 {
		c := &client{buf: make([]byte, 8), nc: &chunkConn{data: stream, chunk: split}}
		var got []string
		for range 3 {
			op, p, err := c.next()
			if err != nil {
				t.Fatalf("split %d: %v", split, err)
			}
			got = append(got, string(rune('0'+op))+":"+string(p))
		}
		want := []string{"1:abc", "1:" + long, "8:\x03\xe8"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("split %d: got %q", split, got)
		}
	}
}

func TestValidateRefusesRemoteTargets(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: ScenarioConnect, URL: "ws://10.1.2.3:8080/cable"},
		{Scenario: ScenarioConnect, URL: "ws://example.com/cable"},
		{Scenario: ScenarioFanout, RedisURL: "redis://10.0.0.5:6379/0"},
		{Scenario: ScenarioFanout, BroadcastURL: "http://192.168.1.1:8080/_broadcast"},
		{Scenario: ScenarioConnect, Sources: []string{"10.0.0.1"}},
	} {
		if err := cfg.withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%+v: %v, want a loopback refusal", cfg, err)
		}
		cfg.AllowRemote = true
		if err := cfg.withDefaults().Validate(); err != nil && strings.Contains(err.Error(), "loopback") {
			t.Errorf("%+v with AllowRemote: %v", cfg, err)
		}
	}
	for _, cfg := range []Config{
		{Scenario: "soak"},
		{Scenario: ScenarioFanout},
		{Scenario: ScenarioFanout, RedisURL: "redis://127.0.0.1:6379", Connections: 10, Streams: 20},
		{Scenario: ScenarioConnect, Connections: MaxConnections + 1},
		{Scenario: ScenarioFanout, RedisURL: "redis://127.0.0.1:6379", Streams: 5, Identifier: `{"channel":"X"}`},
	} {
		if err := cfg.withDefaults().Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", cfg)
		}
	}
}

// Confirmations and rejections count whichever key the server puts first:
// Rails and cablecar send the identifier first, AnyCable the type.
func TestSubscriptionAnswers(t *testing.T) {
	const id = `"{\"channel\":\"BenchChannel\",\"stream\":\"bench-0\"}"`
	tests := []struct {
		frame     string
		confirmed bool
		rejected  bool
	}{
		{`{"identifier":` + id + `,"type":"confirm_subscription"}`, true, false},
		{`{"type":"confirm_subscription","identifier":` + id + `}`, true, false},
		{`{"identifier":` + id + `,"type":"reject_subscription"}`, false, true},
		{`{"type":"reject_subscription","identifier":` + id + `}`, false, true},
		{`{"type":"welcome"}`, false, false},
	}
	for _, tt := range tests {
		r := &runner{cfg: Config{Streams: 1}, start: time.Now()}
		c := &client{r: r, lastSeq: -1, t: &r.tally}
		err := c.onText([]byte(tt.frame))
		if c.confirmed != tt.confirmed || (err != nil) != tt.rejected {
			t.Errorf("%s: confirmed %v, err %v; want confirmed %v, rejected %v", tt.frame, c.confirmed, err, tt.confirmed, tt.rejected)
		}
		if tt.confirmed && r.subscribed.Load() != 1 {
			t.Errorf("%s: %d subscriptions counted, want 1", tt.frame, r.subscribed.Load())
		}
	}
}
