package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestKeySlot checks the examples of the Redis Cluster specification.
func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3 % slotCount}, // the spec's CRC16 check value
		{"", 0},
		{"{user1000}.following", keySlot("user1000")},
		{"{user1000}.followers", keySlot("user1000")},
		{"foo{}{bar}", keySlot("foo{}{bar}")}, // empty tag: the whole key
		{"foo{{bar}}zap", keySlot("{bar")},
		{"foo{bar}{zap}", keySlot("bar")},
		{"{bar", keySlot("{bar")}, // no closing brace: the whole key
	} {
		if got := keySlot(tc.key); got != tc.want {
			t.Errorf("keySlot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
	if keySlot("{user1000}.following") == keySlot("user1000.following") {
		t.Error("the hash tag made no difference")
	}
}

// TestShardedCluster runs a three-master Redis Cluster with sharded
// pub/sub: one subscriber connection per master, each stream SSUBSCRIBEd on
// the master owning its slot, SPUBLISH from a job delivered, classic
// PUBLISH not (sharded and classic channels are separate namespaces).
func TestShardedCluster(t *testing.T) {
	brokertest.CheckGoroutines(t)
	nodes := redistest.StartCluster(t, 3)
	clients := newClients(t, nodes)
	checkKeySlotAgainstRedis(t, clients[0])

	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{ClusterAddrs: []string{nodes[0].Addr}, ChannelPrefix: prefix, ShardedPubSub: true})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	streams := subscribeAll(t, b, r, "stream-%d", 24)

	owners := map[int]bool{}
	for i, c := range clients {
		if n := len(subscriberAddrs(t, c)); n != 1 {
			t.Errorf("node %d: %d subscriber connections, want 1", i, n)
		}
	}
	for _, s := range streams {
		ch := prefix + ":" + s
		for i, c := range clients {
			n := shardNumSub(t, c, ch)
			owns := ownsSlot(t, c, keySlot(ch))
			if owns && n != 1 || !owns && n != 0 {
				t.Errorf("%s on node %d (owns slot %v): SHARDNUMSUB %d", ch, i, owns, n)
			}
			if owns {
				owners[i] = true
			}
		}
	}
	if len(owners) != len(nodes) {
		t.Errorf("streams landed on %d of %d masters; want every master used", len(owners), len(nodes))
	}

	// A job publishing through its own cluster client, with SPUBLISH.
	pub := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{nodes[1].Addr}})
	t.Cleanup(func() { _ = pub.Close() })
	ctx := context.Background()
	for _, s := range streams {
		if err := pub.Publish(ctx, prefix+":"+s, "classic "+s).Err(); err != nil {
			t.Fatal(err)
		}
		if err := pub.SPublish(ctx, prefix+":"+s, "sharded "+s).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range streams {
		if got := r.WaitMessage(t, s, 1, settle); string(got) != "sharded "+s {
			t.Errorf("%s: got %q, want the SPUBLISHed message only", s, got)
		}
	}
	// The broker's own Publish (what /_broadcast and cablecar publish use)
	// is SPUBLISH too.
	if err := b.Publish(ctx, streams[0], []byte("via broker")); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, streams[0], 2, settle); string(got) != "via broker" {
		t.Errorf("broker Publish: got %q", got)
	}
	if got := len(r.Messages(streams[1])); got != 1 {
		t.Errorf("%s got %d messages, want 1", streams[1], got)
	}

	b.Unsubscribe(streams[2])
	ch := prefix + ":" + streams[2]
	brokertest.WaitFor(t, settle, "SHARDNUMSUB 0 after Unsubscribe", func() bool {
		for _, c := range clients {
			if shardNumSub(t, c, ch) != 0 {
				return false
			}
		}
		return true
	})
	if s := b.Stats(); s.Streams != len(streams)-1 || s.Delivered < uint64(len(streams)+1) || s.Published != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestShardedSlotMove moves the slot of a subscribed stream to another
// master, as resharding does, and checks that the stream is subscribed on
// its new master and messages published there arrive.
func TestShardedSlotMove(t *testing.T) {
	brokertest.CheckGoroutines(t)
	nodes := redistest.StartCluster(t, 3)
	clients := newClients(t, nodes)
	prefix := redistest.UniquePrefix(t)
	b, logs := newBrokerConfig(t, Config{ClusterAddrs: []string{nodes[0].Addr}, ChannelPrefix: prefix, ShardedPubSub: true})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	const stream, other = "moving", "staying"
	b.Subscribe(stream)
	b.Subscribe(other)
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives(stream) == 1 && r.Actives(other) == 1 })
	waitHealthy(t, b)

	ch := prefix + ":" + stream
	slot := keySlot(ch)
	from := -1
	for i, c := range clients {
		if ownsSlot(t, c, slot) {
			from = i
		}
	}
	to := (from + 1) % len(nodes)
	target, err := clients[to].ClusterMyID(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The slot holds no keys, so it can be reassigned without MIGRATE:
	// the new owner first, then the old one, then the rest (they would
	// learn it over the cluster bus too).
	for _, i := range []int{to, from, (to + 1) % len(nodes)} {
		if err := clients[i].Do(context.Background(), "CLUSTER", "SETSLOT", slot, "NODE", target).Err(); err != nil {
			t.Fatalf("CLUSTER SETSLOT %d NODE on node %d: %v", slot, i, err)
		}
	}
	moved := time.Now()
	brokertest.WaitFor(t, settle, "subscribed on the new master", func() bool {
		return shardNumSub(t, clients[to], ch) == 1 && shardNumSub(t, clients[from], ch) == 0
	})
	// At least once more: the old master's broker may also report the
	// stream active while it lets go, which the hub takes as a no-op. What
	// matters is the message published after the move, checked next.
	brokertest.WaitFor(t, settle, "active again", func() bool { return r.Actives(stream) >= 2 })
	resubscribed := time.Since(moved)
	if err := clients[to].SPublish(context.Background(), ch, "after the move").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, stream, 1, settle); string(got) != "after the move" {
		t.Errorf("after the move: got %q", got)
	}
	// The other stream's master kept its connection.
	otherCh := prefix + ":" + other
	if err := pubFor(t, clients, otherCh).SPublish(context.Background(), otherCh, "still here").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, other, 1, settle); string(got) != "still here" {
		t.Errorf("other stream: got %q", got)
	}
	waitHealthy(t, b)
	t.Logf("slot %d moved from node %d to %d: resubscribed %v later", slot, from, to, resubscribed.Round(time.Millisecond))
	if n := logs.Count("resubscribing there"); n != 1 {
		t.Errorf("%d \"resubscribing there\" log lines, want 1", n)
	}
}

// TestShardedStandalone uses sharded pub/sub on a single Redis 7 server:
// SSUBSCRIBE and SPUBLISH work there too, for development setups that
// mirror a sharded production cluster.
func TestShardedStandalone(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{URL: srv.URL, ChannelPrefix: prefix, ShardedPubSub: true})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	b.Subscribe("a")
	b.Subscribe("b")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("a") == 1 && r.Actives("b") == 1 })
	waitHealthy(t, b)
	if n := shardNumSub(t, c, prefix+":a"); n != 1 {
		t.Errorf("SHARDNUMSUB = %d, want 1", n)
	}
	ctx := context.Background()
	_ = c.Publish(ctx, prefix+":a", "classic").Err()
	if err := c.SPublish(ctx, prefix+":a", "sharded").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "b", []byte("via broker")); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "a", 1, settle); string(got) != "sharded" {
		t.Errorf("got %q, want the SPUBLISHed message", got)
	}
	if got := r.WaitMessage(t, "b", 1, settle); string(got) != "via broker" {
		t.Errorf("broker Publish: got %q", got)
	}
	b.Unsubscribe("a")
	brokertest.WaitFor(t, settle, "SHARDNUMSUB 0", func() bool { return shardNumSub(t, c, prefix+":a") == 0 })
}

// checkKeySlotAgainstRedis compares keySlot with CLUSTER KEYSLOT for
// random names, with and without hash tags.
func checkKeySlotAgainstRedis(t *testing.T, c *goredis.Client) {
	t.Helper()
	keys := []string{"", "{", "}", "{}", "a{b}c", "{a}{b}", "x{}y{z}", "myapp_production:chat_Z2lkOi8vYXBwL1Jvb20vMQ"}
	const alphabet = "ab{}:_/-0é"
	for range 200 {
		var sb strings.Builder
		for range rand.IntN(12) {
			sb.WriteString(string([]rune(alphabet)[rand.IntN(len([]rune(alphabet)))]))
		}
		keys = append(keys, sb.String())
	}
	for _, k := range keys {
		want, err := c.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
		}
		if got := keySlot(k); int64(got) != want {
			t.Errorf("keySlot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

// shardNumSub returns PUBSUB SHARDNUMSUB for channel on one node.
func shardNumSub(tb testing.TB, c *goredis.Client, channel string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := c.PubSubShardNumSub(ctx, channel).Result()
	if err != nil {
		tb.Fatalf("PUBSUB SHARDNUMSUB %s: %v", channel, err)
	}
	return m[channel]
}

// ownsSlot asks a node whether it is the master of slot.
func ownsSlot(tb testing.TB, c *goredis.Client, slot int) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		tb.Fatal(err)
	}
	me := c.Options().Addr
	for _, cs := range slots {
		if slot >= cs.Start && slot <= cs.End && len(cs.Nodes) > 0 {
			return cs.Nodes[0].Addr == me
		}
	}
	return false
}

// pubFor returns the client of the node owning channel's slot.
func pubFor(tb testing.TB, clients []*goredis.Client, channel string) *goredis.Client {
	tb.Helper()
	for _, c := range clients {
		if ownsSlot(tb, c, keySlot(channel)) {
			return c
		}
	}
	tb.Fatalf("no node owns the slot of %q", channel)
	return nil
}

// TestShardedClusterFailover kills the master of a subscribed stream in a
// cluster with a replica per master, and checks that after the replica is
// promoted the stream is subscribed there and delivery resumes, while the
// other masters' streams are not disturbed.
func TestShardedClusterFailover(t *testing.T) {
	brokertest.CheckGoroutines(t)
	nodes := redistest.StartClusterReplicas(t, 3, 1)
	byAddr := map[string]*redistest.Server{}
	var seeds []string
	for _, n := range nodes {
		byAddr[n.Addr] = n
		seeds = append(seeds, n.Addr)
	}
	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{ClusterAddrs: seeds, ChannelPrefix: prefix, ShardedPubSub: true})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	streams := subscribeAll(t, b, r, "s%d", 12)

	pub := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: seeds, MaxRedirects: 8})
	t.Cleanup(func() { _ = pub.Close() })
	victim := streams[0]
	slots, err := pub.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var master string
	for _, cs := range slots {
		if slot := keySlot(prefix + ":" + victim); slot >= cs.Start && slot <= cs.End {
			master = cs.Nodes[0].Addr
		}
	}
	byAddr[master].Kill()
	killed := time.Now()
	var healthDown time.Duration
	deadline := killed.Add(20 * time.Second)
	for n := 0; len(r.Messages(victim)) == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered %v after killing master %s; Health %v", time.Since(killed), master, b.Health(context.Background()))
		}
		if healthDown == 0 && b.Health(context.Background()) != nil {
			healthDown = time.Since(killed)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		// The broker's own Publish, as /_broadcast would: it must follow
		// the failover too.
		_ = b.Publish(ctx, victim, []byte(fmt.Sprintf("after-%d", n)))
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	firstDelivery := time.Since(killed)
	waitHealthy(t, b)
	healthy := time.Since(killed)
	if healthDown == 0 {
		t.Error("Health never reported the dead master")
	}
	// Every stream, on every master, still delivers what a job publishes
	// through its own cluster client (told of the new map, as it would
	// learn it from a MOVED reply or its periodic reload).
	pub.ReloadState(context.Background())
	time.Sleep(300 * time.Millisecond) // ReloadState reloads in the background
	for _, s := range streams {
		if err := pub.SPublish(context.Background(), prefix+":"+s, "final").Err(); err != nil {
			t.Fatalf("SPUBLISH %s: %v", s, err)
		}
	}
	for _, s := range streams {
		brokertest.WaitFor(t, settle, "final on "+s, func() bool {
			m := r.Messages(s)
			return len(m) > 0 && string(m[len(m)-1]) == "final"
		})
	}
	t.Logf("master %s killed: Health failed after %v, first delivery via the promoted replica %v after, Health nil %v after",
		master, healthDown.Round(time.Millisecond), firstDelivery.Round(time.Millisecond), healthy.Round(time.Millisecond))
}

// subscribeAll subscribes n streams named by format (with their index),
// waits until each is active and the broker healthy, and returns the
// names.
func subscribeAll(t *testing.T, b *Broker, r *brokertest.Recorder, format string, n int) []string {
	t.Helper()
	var streams []string
	for i := range n {
		s := fmt.Sprintf(format, i)
		streams = append(streams, s)
		b.Subscribe(s)
	}
	for _, s := range streams {
		brokertest.WaitFor(t, settle, "active("+s+")", func() bool { return r.Actives(s) == 1 })
	}
	waitHealthy(t, b)
	return streams
}
