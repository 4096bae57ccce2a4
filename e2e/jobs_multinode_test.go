package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/jobstest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// holderOf returns the sidecar whose admin API says it watches backend; a
// killed node does not answer.
func holderOf(t *testing.T, nodes []*sidecar, backend string) *sidecar {
	t.Helper()
	for _, n := range nodes {
		body, err := httpGet("http://" + n.admin + "/api/status")
		if err != nil {
			continue
		}
		var st struct {
			Jobs []struct {
				Backend  string
				Watching bool
			}
		}
		if json.Unmarshal([]byte(body), &st) != nil {
			continue
		}
		for _, j := range st.Jobs {
			if j.Backend == backend && j.Watching {
				return n
			}
		}
	}
	return nil
}

// TestJobEventsExactlyOnceAcrossNodes: three cablecar nodes watch one
// BullMQ queue. Mid-stream the lease holder is killed with SIGKILL; another
// node takes over from the stored cursor, and every job event is published
// exactly once: none lost, none doubled.
func TestJobEventsExactlyOnceAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	env := bullmqEnv(rs.URL)
	var nodes []*sidecar
	for range 3 {
		nodes = append(nodes, startSidecar(t, env, "serve"))
	}
	worker := jobstest.StartBullMQ(t, rs.URL, "docs")

	ctx := context.Background()
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	sub := rdb.PSubscribe(ctx, "myapp:job:*")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{} // "job status" → times published
	msgs := sub.Channel()
	collect := func(until time.Time) {
		for {
			select {
			case m := <-msgs:
				var je jobEvent
				if err := json.Unmarshal([]byte(m.Payload), &je); err != nil {
					t.Fatalf("%s: %v", m.Payload, err)
				}
				if m.Channel != "myapp:job:"+je.JobID {
					t.Errorf("event for job %s on %s", je.JobID, m.Channel)
				}
				seen[je.JobID+" "+je.Status]++
			case <-time.After(time.Until(until)):
				return
			}
		}
	}

	var first *sidecar
	waitUntil(t, "a node to hold the bullmq lease", func() bool { first = holderOf(t, nodes, "bullmq"); return first != nil })
	const total = 40
	var ids []string
	for i := range total {
		ids = append(ids, worker.Add("thumb", map[string]any{"n": i}, 1))
		if i == total/2 {
			if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no release, no goodbye
				t.Fatal(err)
			}
		}
		collect(time.Now().Add(50 * time.Millisecond))
	}
	var second *sidecar
	waitUntil(t, "another node to take the lease over", func() bool { second = holderOf(t, nodes, "bullmq"); return second != nil })
	if second == first {
		t.Fatal("the killed node still holds the lease")
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && seen[ids[total-1]+" completed"] == 0 {
		collect(time.Now().Add(200 * time.Millisecond))
	}
	collect(time.Now().Add(time.Second)) // anything doubled arrives by now
	for _, id := range ids {
		for _, st := range []string{"running", "completed"} {
			if n := seen[id+" "+st]; n != 1 {
				t.Errorf("job %s %s published %d times, want exactly once", id, st, n)
			}
		}
	}
	if len(seen) != 2*total {
		t.Errorf("%d distinct job events, want %d: %v", len(seen), 2*total, seen)
	}
}
