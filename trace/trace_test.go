package trace

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbroker "github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/redistest"
)

// settle bounds anything that should take milliseconds.
const settle = 10 * time.Second

// start runs Run with opts until the test ends, waits until it listens,
// and returns its output.
func start(t *testing.T, opts Options) *logbuf.Buffer {
	t.Helper()
	out := &logbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts, out, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(settle):
		t.Fatal("Run not listening")
	}
	return out
}

// waitOutput waits until out contains want.
func waitOutput(t *testing.T, out *logbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in the output:\n%s", want, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish PUBLISHes on one server with a plain client.
func publish(t *testing.T, srv *redistest.Server, channel, payload string) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	if err := c.Publish(context.Background(), channel, payload).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestTraceCluster traces through the cluster client and sees broadcasts
// published on every node, whichever one holds the subscription.
func TestTraceCluster(t *testing.T) {
	t.Parallel()
	nodes := redistest.StartCluster(t, 3)
	out := start(t, Options{Streams: []string{"doc"}, Prefix: "app",
		Redis: redisbroker.Config{ClusterAddrs: []string{nodes[0].Addr}}})
	for i, n := range nodes {
		publish(t, n, "app:doc", fmt.Sprintf(`{"from":"node %d"}`, i))
	}
	for i := range nodes {
		waitOutput(t, out, fmt.Sprintf(`doc  17 B  → ? subscribers (no admin listener)  {"from":"node %d"}`, i))
	}
}

// TestTraceSentinel traces through the master the sentinel names.
func TestTraceSentinel(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, "trace-master", master)
	out := start(t, Options{Streams: []string{"doc"}, Prefix: "app",
		Redis: redisbroker.Config{Sentinels: []string{sentinel.Addr}, MasterName: "trace-master"}})
	publish(t, master, "app:doc", `"hello"`)
	waitOutput(t, out, `doc  7 B  → ? subscribers (no admin listener)  "hello"`)
}

// TestTraceSharded falls back to the admin event stream, and says so.
func TestTraceSharded(t *testing.T) {
	t.Parallel()
	rc := redisbroker.Config{ClusterAddrs: []string{"127.0.0.1:1"}, ShardedPubSub: true}
	err := Run(context.Background(), Options{Streams: []string{"doc"}, Redis: rc}, &logbuf.Buffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "CABLECAR_REDIS_SHARDED_PUBSUB=true") {
		t.Errorf("without an admin listener: %v", err)
	}

	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: broadcast\ndata: {\"stream\":\"doc\",\"bytes\":7,\"delivered\":2,\"preview\":\"\\\"hello\\\"\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(admin.Close)
	notes := &logbuf.Buffer{}
	out := start(t, Options{Streams: []string{"doc"}, Redis: rc, AdminURL: admin.URL, Notes: notes})
	waitOutput(t, out, `doc  7 B  → 2 subscribers  "hello"`)
	if !strings.Contains(notes.String(), "CABLECAR_REDIS_SHARDED_PUBSUB=true: reading broadcasts from the sidecar's admin event stream") {
		t.Errorf("notes = %q", notes)
	}
}

// TestTraceSummarisesJobEvents: a job event from cablecar's watchers is
// shown as one readable line; other JSON keeps its preview.
func TestTraceSummarisesJobEvents(t *testing.T) {
	srv := redistest.Start(t)
	out := start(t, Options{Streams: []string{"document:1"}, RedisURL: srv.URL, Prefix: "app"})
	publish(t, srv, "app:document:1", `{"type":"job","backend":"sidekiq","job_id":"j1","class":"DocJob","status":"retrying","error_class":"RuntimeError","retry_count":0,"at":"2026-12-04T14:00:00.000Z"}`)
	waitOutput(t, out, "document:1  ")
	waitOutput(t, out, "→ ? subscribers (no admin listener)  job sidekiq DocJob j1 retrying RuntimeError retry_count=0\n")
	publish(t, srv, "app:document:1", `{"type":"jobless"}`)
	waitOutput(t, out, `(no admin listener)  {"type":"jobless"}`)
}
