package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/history"
	"github.com/cablecar/cablecar/internal/redistest"
)

// startHistory runs a History for a broker of its own on url, as one node
// would, until the test ends or the returned stop is called.
func startHistory(t *testing.T, url, prefix string, rules history.Rules) (*History, func()) {
	t.Helper()
	b, _ := newBroker(t, url, prefix)
	h, err := NewHistory(b, rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.leaseTTL = 600 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return h, stop
}

// TestHistoryRecordsOnceAcrossNodes runs two nodes' recorders on one Redis:
// every plain PUBLISH is recorded exactly once, in order, with offsets
// 1…n, and its annotated copy is published once with the same position.
// When the recording node stops, the other takes over and offsets go on.
func TestHistoryRecordsOnceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	rules := history.Rules{{Pattern: "doc:*", Size: 1000, TTL: time.Minute}}
	a, stopA := startHistory(t, srv.URL, prefix, rules)
	startHistory(t, srv.URL, prefix, rules)
	pub := newClient(t, srv)
	ctx := t.Context()

	annotated := pub.Subscribe(ctx, prefix+":"+history.InternalPrefix+"doc:1")
	defer annotated.Close()
	if _, err := annotated.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until some node records (holds the lease and has PSUBSCRIBEd).
	brokertest.WaitFor(t, settle, "a recorder subscribed", func() bool {
		n, _ := pub.Do(ctx, "PUBSUB", "NUMPAT").Int()
		return n == 1
	})
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := pub.Publish(ctx, prefix+":doc:1", fmt.Sprintf(`{"n":%d}`, i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// Noise no rule covers.
		if err := pub.Publish(ctx, prefix+":chat:1", `{"n":0}`).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish(1, 50)
	var epoch string
	ch := annotated.Channel()
	for i := 1; i <= 50; i++ {
		select {
		case m := <-ch:
			ep, off, data, err := history.ParseAnnotated([]byte(m.Payload))
			if err != nil || off != uint64(i) || string(data) != fmt.Sprintf(`{"n":%d}`, i) || (epoch != "" && ep != epoch) {
				t.Fatalf("annotated copy %d = %q (%v)", i, m.Payload, err)
			}
			epoch = ep
		case <-time.After(settle):
			t.Fatalf("annotated copy %d did not come", i)
		}
	}
	snap, err := a.Snapshot(ctx, "doc:1")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Epoch != epoch || snap.Last != 50 || len(snap.Entries) != 50 {
		t.Fatalf("snapshot: epoch %q last %d, %d entries; want %q, 50, 50", snap.Epoch, snap.Last, len(snap.Entries), epoch)
	}
	for i, e := range snap.Entries {
		if e.Offset != uint64(i+1) || string(e.Data) != `{"n":`+strconv.Itoa(i+1)+`}` {
			t.Fatalf("entry %d = %d %s", i, e.Offset, e.Data)
		}
	}
	if snap, _ := a.Snapshot(ctx, "chat:1"); snap.Epoch != "" {
		t.Fatalf("a stream without a rule has history: %+v", snap)
	}

	// Stop node A (whether or not it was recording); the other records on.
	stopA()
	brokertest.WaitFor(t, settle, "a recorder subscribed after A stopped", func() bool {
		n, _ := pub.Do(ctx, "PUBSUB", "NUMPAT").Int()
		return n == 1 && pub.Exists(ctx, a.leaseKey()).Val() == 1
	})
	publish(51, 60)
	for i := 51; i <= 60; i++ {
		select {
		case m := <-ch:
			ep, off, _, _ := history.ParseAnnotated([]byte(m.Payload))
			if off != uint64(i) || ep != epoch {
				t.Fatalf("annotated copy %d after the hand-over = %q", i, m.Payload)
			}
		case <-time.After(settle):
			t.Fatalf("annotated copy %d did not come after the hand-over", i)
		}
	}
	select {
	case m := <-ch:
		t.Fatalf("an extra annotated copy: %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	if n := pub.XLen(ctx, a.streamKey("doc:1")).Val(); n != 60 {
		t.Fatalf("XLEN = %d, want 60", n)
	}
}

// TestHistoryTrimAndExpiry checks MAXLEN ~ trimming and that a lost stream
// key starts a new epoch, which a position in the old one cannot restore.
func TestHistoryTrimAndExpiry(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	h, _ := startHistory(t, srv.URL, prefix, history.Rules{{Pattern: "doc:*", Size: 10, TTL: time.Minute}})
	pub := newClient(t, srv)
	ctx := t.Context()
	brokertest.WaitFor(t, settle, "recorder subscribed", func() bool {
		n, _ := pub.Do(ctx, "PUBSUB", "NUMPAT").Int()
		return n == 1
	})
	for i := 1; i <= 500; i++ {
		pub.Publish(ctx, prefix+":doc:2", strconv.Itoa(i))
	}
	var snap history.Snapshot
	brokertest.WaitFor(t, settle, "500 recorded", func() bool {
		snap, _ = h.Snapshot(ctx, "doc:2")
		return snap.Last == 500
	})
	n := len(snap.Entries)
	if n < 10 || n > 200 || snap.Entries[n-1].Offset != 500 || snap.Entries[0].Offset != uint64(501-n) {
		t.Fatalf("after 500 with MAXLEN ~ 10: %d entries from %d", n, snap.Entries[0].Offset)
	}
	if snap.DroppedAt < snap.Entries[0].Time {
		t.Fatalf("DroppedAt %d before the oldest kept %d", snap.DroppedAt, snap.Entries[0].Time)
	}
	req := history.Request{Streams: map[string]history.Position{"doc:2": {Epoch: snap.Epoch, Offset: 1}}}
	if _, err := history.Select(snap, "doc:2", req, time.Now(), time.Minute); !errors.Is(err, history.ErrCannotRestore) {
		t.Fatalf("offset 1 after trimming: %v, want ErrCannotRestore", err)
	}
	// The keys vanish (as after their ttl): the next message starts anew.
	pub.Del(ctx, h.streamKey("doc:2"), h.metaKey("doc:2"))
	pub.Publish(ctx, prefix+":doc:2", `"again"`)
	var fresh history.Snapshot
	brokertest.WaitFor(t, settle, "new epoch", func() bool {
		fresh, _ = h.Snapshot(ctx, "doc:2")
		return fresh.Last == 1
	})
	if fresh.Epoch == snap.Epoch || len(fresh.Entries) != 1 || string(fresh.Entries[0].Data) != `"again"` {
		t.Fatalf("after the keys were lost: %+v (old epoch %q)", fresh, snap.Epoch)
	}
	req = history.Request{Streams: map[string]history.Position{"doc:2": {Epoch: snap.Epoch, Offset: 500}}}
	if _, err := history.Select(fresh, "doc:2", req, time.Now(), time.Minute); !errors.Is(err, history.ErrCannotRestore) {
		t.Fatalf("old epoch: %v, want ErrCannotRestore", err)
	}
	if ttl := pub.PTTL(ctx, h.streamKey("doc:2")).Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("stream key PTTL %s, want about a minute", ttl)
	}
}
