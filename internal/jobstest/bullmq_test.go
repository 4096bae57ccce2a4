package jobstest

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// TestBullMQ checks that the launcher's jobs reach the real worker and
// that its processor does what their data asks.
func TestBullMQ(t *testing.T) {
	srv := redistest.Start(t)
	b := StartBullMQ(t, srv.URL, "launcher")
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	ok := b.Add("Ok", map[string]any{"result": "done", "progress": []int{7}}, 0)
	bad := b.Add("Bad", map[string]any{"fail": "nope"}, 2)
	custom := b.AddOpts("Custom", map[string]any{}, map[string]any{"jobId": "my-id"})
	if ok != "1" || bad != "2" || custom != "my-id" {
		t.Fatalf("ids %q %q %q, want 1, 2 and my-id", ok, bad, custom)
	}
	want := map[string][2]string{
		"1":     {"returnvalue", `"done"`},
		"2":     {"failedReason", "nope"},
		"my-id": {"returnvalue", "null"},
	}
	deadline := time.Now().Add(20 * time.Second)
	for id, kv := range want {
		for {
			h := c.HGetAll(context.Background(), "bull:launcher:"+id).Val()
			if h["finishedOn"] != "" {
				if h[kv[0]] != kv[1] || (id == "1" && h["progress"] != "7") || (id == "2" && h["atm"] != "2") {
					t.Errorf("job %s: %v", id, h)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s did not finish: %v", id, h)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
