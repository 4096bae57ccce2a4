package bench

import (
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	in := `{"scenario":"fanout","client_mode":"plain","connections":5000,"streams":1,"payload_bytes":200,"rate":10,
 "connect":{"connected":5000,"rate_per_s":12000.4},
 "fanout":{"expected":1000000,"delivered":1000000,"deliveries_per_s":50000,"latency_ms":{"count":1000000,"p50":12.34,"p99":28.06}},
 "server":{"rss_per_conn_bytes":4096,"cpu_ms_per_1000_deliveries":5.678},"client":{"cpu_ms_per_1000_deliveries":9.81},"failures_total":0}
[{"scenario":"connect","connections":19000,"streams":1,"connect":{"connected":18999,"rate_per_s":13000},"failures_total":1}]`
	results, err := ReadResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("read %d results, want 2 (an object, then an array of one)", len(results))
	}
	var b strings.Builder
	if err := WriteTable(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| scenario | client | connections | streams | payload B | rate/s | delivered | p50 ms | p99 ms | deliveries/s | server CPU ms / 1k deliveries | client CPU ms / 1k deliveries | server RSS / conn KB | connect/s | failures |",
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
		"| fanout | plain | 5000 | 1 | 200 | 10 | 1000000/1000000 | 12.3 | 28.1 | 50000 | 5.68 | 9.81 | 4.0 | 12000 | 0 |",
		"| connect | – | 19000 | 1 | – | – | 18999/19000 connected | – | – | – | – | – | – | 13000 | 1 |",
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", b.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if _, err := ReadResults(strings.NewReader(`{"scenario":`)); err == nil {
		t.Error("a truncated result was accepted")
	}
}
