package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/e2e/jsclient"
	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/rails"
)

// sidekiqArgs are the arguments of the README's `sidekiq` command line.
var sidekiqArgs = []string{"-r", "./worker.rb", "-c", "1"}

// A real job backend: the Ruby app in examples/rails-sidekiq (Debian's
// Action Cable 6.1, Sidekiq 6.4 and globalid), its jobs enqueued with the
// real Sidekiq client and run by a real `sidekiq` process, broadcasting
// with DocumentChannel.broadcast_to(document, …) through the Redis adapter
// with channel_prefix myapp_production. The real @rails/actioncable client
// subscribes to DocumentChannel through cablecar and must see what the jobs
// say, in order.
func TestInteropSidekiqJobsReachRealJSClient(t *testing.T) {
	ruby := requireCommand(t, "ruby")
	sidekiqBin := requireCommand(t, "sidekiq")
	rs := redistest.Start(t)
	env := documentEnv(rs.URL)
	sc := startSidecar(t, env, "serve")
	tok := mustToken(t, env, "document:*")
	dir := repoDir(t, "examples/rails-sidekiq")
	rubyEnv := []string{"REDIS_URL=" + rs.URL}

	sidekiqCmd := exec.Command(sidekiqBin, sidekiqArgs...)
	sidekiqCmd.Dir = dir
	sidekiqCmd.Env = append(os.Environ(), rubyEnv...)
	sk := startBackground(t, "sidekiq", sidekiqCmd, 10*time.Second)

	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	waitSidekiqRunning(t, rdb, sk)

	// subscribe connects the real JS client to DocumentChannel {id} and
	// waits for the confirmation; the client exits after n messages.
	subscribe := func(t *testing.T, id any, n int) *jsclient.Client {
		t.Helper()
		c := jsclient.Start(t, jsclient.Options{
			URL:           sc.wsURL("token=" + tok),
			Subscriptions: []map[string]any{{"channel": "DocumentChannel", "id": id}},
			Duration:      15 * time.Second,
			ExitAfter:     &jsclient.ExitAfter{Event: jsclient.KindReceived, Count: n},
		})
		waitEvent(t, c, jsclient.KindConnected)
		return c
	}
	// enqueue runs `ruby enqueue.rb JOB ID` (ProcessDocumentJob.perform_async(id)
	// with the real Sidekiq client) and returns the job id.
	enqueue := func(t *testing.T, job, id string) string {
		t.Helper()
		jid := strings.TrimSpace(runIn(t, dir, rubyEnv, ruby, "enqueue.rb", job, id))
		if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(jid) {
			t.Fatalf("enqueue.rb printed %q, want a Sidekiq jid", jid)
		}
		return jid
	}
	// marker publishes a message of our own to the document's stream once the
	// job has failed. Redis delivers a channel's messages in the order it
	// received them and cablecar keeps that order, so whatever the job
	// published reaches the client before the marker: the messages before it
	// are all the job ever said.
	const marker = `{"marker":"nothing more from the job"}`
	publishMarker := func(t *testing.T, id string) {
		t.Helper()
		stream := rails.Broadcasting("DocumentChannel", rails.GlobalIDParam("myapp", "Document", id))
		if err := rdb.Publish(ctx, rails.RedisChannel("myapp_production", stream), marker).Err(); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(t *testing.T, events []jsclient.Event, want ...string) {
		t.Helper()
		got := receivedBy(events, 0)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("the client received, in order:\n  %s\nwant exactly:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}

	t.Run("processing then complete", func(t *testing.T) {
		c := subscribe(t, 123, 2)
		enqueue(t, "ProcessDocumentJob", "123")
		expect(t, c.Wait(), `{"status":"processing"}`, `{"status":"complete","pages":3}`)
	})

	// A job that raises partway: the page saw "processing" and then nothing,
	// although Sidekiq knows the job failed.
	t.Run("a crash leaves the page on processing", func(t *testing.T) {
		c := subscribe(t, 124, 2)
		jid := enqueue(t, "CrashingDocumentJob", "124")
		failed := waitRetrySet(t, rdb, sk, jid)
		if failed["error_class"] != "Document::Unreadable" || failed["error_message"] != "page 2 of document 124 is unreadable" {
			t.Errorf("Sidekiq recorded %v, want the Document::Unreadable raised by the job", failed)
		}
		publishMarker(t, "124")
		expect(t, c.Wait(), `{"status":"processing"}`, marker)
	})

	// The remedy in the README: rescue, broadcast "failed", re-raise.
	t.Run("rescue reports failed", func(t *testing.T) {
		c := subscribe(t, "a b/c", 3)
		jid := enqueue(t, "SafeDocumentJob", "a b/c")
		failed := waitRetrySet(t, rdb, sk, jid)
		if failed["error_class"] != "Document::Unreadable" {
			t.Errorf("Sidekiq recorded %v: the job must re-raise so that it is retried", failed)
		}
		publishMarker(t, "a b/c")
		expect(t, c.Wait(), `{"status":"processing"}`,
			`{"status":"failed","error":"page 2 of document a b/c is unreadable"}`, marker)
	})

	if sk.exited() {
		t.Errorf("sidekiq exited during the test: %v", sk.err)
	}
}

// waitSidekiqRunning waits until the Sidekiq process has registered itself
// in Redis (its heartbeat), which proves it reached the test's redis-server.
func waitSidekiqRunning(t *testing.T, rdb *goredis.Client, sk *background) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := rdb.SCard(context.Background(), "processes").Result()
		if err == nil && n > 0 {
			return
		}
		if sk.exited() {
			t.Fatalf("sidekiq exited: %v\n%s", sk.err, sk.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidekiq did not register in Redis within 15s (err %v):\n%s", err, sk.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRetrySet waits until job jid is in Sidekiq's retry set, which Sidekiq
// writes after the job raised, and returns the job's record there.
func waitRetrySet(t *testing.T, rdb *goredis.Client, sk *background, jid string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := rdb.ZRange(context.Background(), "retry", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range jobs {
			var job map[string]any
			if json.Unmarshal([]byte(raw), &job) == nil && job["jid"] == jid {
				return job
			}
		}
		if sk.exited() {
			t.Fatalf("sidekiq exited: %v", sk.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is not in Sidekiq's retry set after 10s; retry set: %v", jid, jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
