package jobstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// TestCelery checks that tasks sent reach the real worker and that their
// results land in the Redis backend with the extended fields.
func TestCelery(t *testing.T) {
	srv := redistest.Start(t)
	w := StartCelery(t, srv.URL)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	want := map[string]string{
		w.Send("tasks.add", 2, 3):      "SUCCESS 5 tasks.add",
		w.Send("tasks.explode", "no"):  `FAILURE {"exc_message":["no"],"exc_module":"builtins","exc_type":"ValueError"} tasks.explode`,
		w.Send("tasks.flaky", "again"): `FAILURE {"exc_message":["again"],"exc_module":"builtins","exc_type":"RuntimeError"} tasks.flaky`,
		w.Send("tasks.steps", 3):       "SUCCESS 3 tasks.steps",
	}
	deadline := time.Now().Add(20 * time.Second)
	for id, summary := range want {
		for {
			raw := c.Get(context.Background(), "celery-task-meta-"+id).Val()
			var m struct {
				Status string          `json:"status"`
				Result json.RawMessage `json:"result"`
				Name   string          `json:"name"`
			}
			_ = json.Unmarshal([]byte(raw), &m)
			if m.Status == "SUCCESS" || m.Status == "FAILURE" {
				var r any
				_ = json.Unmarshal(m.Result, &r)
				res, _ := json.Marshal(r)
				if got := m.Status + " " + string(res) + " " + m.Name; got != summary {
					t.Errorf("task %s: %s, want %s", id, got, summary)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s did not finish (%s); log:\n%s", id, raw, w.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
