package jobstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

// TestSidekiq proves the helper runs the real Sidekiq: a FailJob pushed
// with Enqueue lands in the retry set under its jid with the error class
// the worker file raises, an ActiveJob job carries ActiveJob's job_id, and
// Kill leaves the heartbeat hash to expire.
func TestSidekiq(t *testing.T) {
	srv := redistest.Start(t)
	sk := StartSidekiq(t, srv.URL)
	opts, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()

	jid := sk.Enqueue("FailJob", 1, "two")
	var entry struct {
		JID        string `json:"jid"`
		Class      string `json:"class"`
		ErrorClass string `json:"error_class"`
		RetryCount int    `json:"retry_count"`
		Args       []any  `json:"args"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for entry.JID == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		ms, err := rdb.ZRange(ctx, "retry", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if err := json.Unmarshal([]byte(m), &entry); err != nil {
				t.Fatal(err)
			}
		}
	}
	if entry.JID != jid || entry.Class != "FailJob" || entry.ErrorClass != "CablecarTestError" || entry.RetryCount != 0 {
		t.Fatalf("retry entry %+v, want jid %s FailJob CablecarTestError retry_count 0", entry, jid)
	}

	id := sk.EnqueueActiveJob("SleepActiveJob", map[string]any{"document": 7}, 0)
	if len(id) != 36 { // a UUID
		t.Fatalf("ActiveJob job_id %q, want a UUID", id)
	}

	sk.Kill()
	ttl, err := rdb.TTL(ctx, sk.Identity).Result()
	if err != nil || ttl <= 0 || ttl > 60*time.Second {
		t.Fatalf("heartbeat key TTL after SIGKILL = %v, %v; want 0 < ttl <= 60s", ttl, err)
	}
}
