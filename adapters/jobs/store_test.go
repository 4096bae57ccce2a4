package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/redistest"
)

func newRedisStore(t *testing.T) (*RedisStore, *goredis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	return NewRedisStore(client, RedisStoreOptions{ChannelPrefix: "myapp", StateTTL: time.Minute}), client
}

func TestRedisStoreLease(t *testing.T) {
	ctx := context.Background()
	s, _ := newRedisStore(t)
	ttl := 300 * time.Millisecond
	steps := []struct {
		holder string
		want   bool
	}{{"a", true}, {"b", false}, {"a", true}, {"b", false}}
	for i, st := range steps {
		if got, err := s.Acquire(ctx, Sidekiq, st.holder, ttl); err != nil || got != st.want {
			t.Fatalf("step %d: Acquire(%s) = %v, %v; want %v", i, st.holder, got, err, st.want)
		}
	}
	if ok, _ := s.Acquire(ctx, BullMQ, "b", ttl); !ok {
		t.Fatal("leases are per backend: b could not take bullmq")
	}
	// a stops renewing: b takes over once the lease expires.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s.Acquire(ctx, Sidekiq, "b", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Release by a non-holder does nothing; by the holder frees it at once.
	_ = s.Release(ctx, Sidekiq, "a")
	if ok, _ := s.Acquire(ctx, Sidekiq, "a", time.Minute); ok {
		t.Fatal("a took a lease b holds after a's stray Release")
	}
	_ = s.Release(ctx, Sidekiq, "b")
	if ok, _ := s.Acquire(ctx, Sidekiq, "a", time.Minute); !ok {
		t.Fatal("a could not take the lease b released")
	}
}

func TestRedisStoreCommit(t *testing.T) {
	ctx := context.Background()
	s, client := newRedisStore(t)
	sub := client.Subscribe(ctx, "myapp:job:1", "myapp:job:2")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Acquire(ctx, Celery, "a", time.Minute); !ok || err != nil {
		t.Fatal("acquire", ok, err)
	}
	msgs := []Message{{"job:1", []byte(`{"n":1}`)}, {"job:2", []byte(`{"n":2}`)}, {"job:1", []byte(`{"n":3}`)}}
	if err := s.Commit(ctx, Celery, "a", time.Minute, msgs, []byte("c1")); err != nil {
		t.Fatal(err)
	}
	want := []string{"myapp:job:1 " + `{"n":1}`, "myapp:job:2 " + `{"n":2}`, "myapp:job:1 " + `{"n":3}`}
	for i, w := range want {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Channel + " " + m.Payload; got != w {
			t.Fatalf("message %d: got %s, want %s", i, got, w)
		}
	}
	if c, _ := s.Cursor(ctx, Celery); string(c) != "c1" {
		t.Fatalf("cursor %q", c)
	}
	last, err := s.Last(ctx, []string{"job:1", "job:2", "job:none"})
	if err != nil || len(last) != 2 || string(last[0]) != `{"n":3}` || string(last[1]) != `{"n":2}` {
		t.Fatalf("Last: %q, %v", last, err)
	}
	if ttl := client.PTTL(ctx, "cablecar:jobs:last:myapp:job:1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("last state TTL %v, want (0, 1m]", ttl)
	}

	// A node that lost the lease commits nothing: no message, no cursor.
	err = s.Commit(ctx, Celery, "b", time.Minute, []Message{{"job:1", []byte(`{"n":4}`)}}, []byte("c2"))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("commit by non-holder: %v", err)
	}
	if c, _ := s.Cursor(ctx, Celery); string(c) != "c1" {
		t.Fatalf("cursor moved to %q by a refused commit", c)
	}
	if last, _ := s.Last(ctx, []string{"job:1"}); string(last[0]) != `{"n":3}` {
		t.Fatalf("last state changed by a refused commit: %s", last[0])
	}
	probe, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := sub.ReceiveMessage(probe); err == nil {
		t.Fatalf("refused commit published %s", m.Payload)
	}
}

type recordingPublisher struct{ got []Message }

func (p *recordingPublisher) Publish(_ context.Context, stream string, payload []byte) error {
	p.got = append(p.got, Message{stream, payload})
	return nil
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	pub := &recordingPublisher{}
	s := NewMemoryStore(pub, time.Minute)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	if ok, _ := s.Acquire(ctx, Sidekiq, "x", time.Second); !ok {
		t.Fatal("a single node always holds the lease")
	}
	if err := s.Commit(ctx, Sidekiq, "x", 0, []Message{{"a", []byte("1")}, {"b", []byte("2")}}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 2 || pub.got[0].Stream != "a" || pub.got[1].Stream != "b" {
		t.Fatalf("published %v", pub.got)
	}
	if c, _ := s.Cursor(ctx, Sidekiq); string(c) != "c" {
		t.Fatalf("cursor %q", c)
	}
	if last, _ := s.Last(ctx, []string{"a", "zz"}); len(last) != 1 || string(last[0]) != "1" {
		t.Fatalf("Last %q", last)
	}
	now = now.Add(2 * time.Minute)
	if last, _ := s.Last(ctx, []string{"a"}); len(last) != 0 {
		t.Fatalf("expired state still returned: %q", last)
	}
}
