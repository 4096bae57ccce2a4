package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

func TestNewChecksTopologyConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"url and sentinels", Config{URL: "redis://localhost:6379", Sentinels: []string{"localhost:26379"}, MasterName: "m"},
			"set only one of CABLECAR_REDIS_URL, CABLECAR_REDIS_SENTINELS and CABLECAR_REDIS_CLUSTER_ADDRS"},
		{"sentinels and cluster", Config{Sentinels: []string{"localhost:26379"}, MasterName: "m", ClusterAddrs: []string{"localhost:7000"}},
			"set only one of"},
		{"no master name", Config{Sentinels: []string{"localhost:26379"}},
			"CABLECAR_REDIS_MASTER_NAME is not set (required with CABLECAR_REDIS_SENTINELS)"},
		{"master name alone", Config{MasterName: "m"}, "CABLECAR_REDIS_URL is not set"},
		{"master name with url", Config{URL: "redis://localhost:6379", MasterName: "m"},
			"CABLECAR_REDIS_MASTER_NAME: only used with CABLECAR_REDIS_SENTINELS"},
		{"bad sentinel", Config{Sentinels: []string{"localhost"}, MasterName: "m"},
			`CABLECAR_REDIS_SENTINELS: "localhost" is not host:port`},
		{"bad cluster addr", Config{ClusterAddrs: []string{"a:1", " :7000"}},
			`CABLECAR_REDIS_CLUSTER_ADDRS: ":7000" is not host:port`},
		{"password with url", Config{URL: "redis://localhost:6379", Password: "pw"},
			"CABLECAR_REDIS_PASSWORD: not used with CABLECAR_REDIS_URL"},
		{"sentinel password without sentinels", Config{ClusterAddrs: []string{"a:1"}, SentinelPassword: "pw"},
			"CABLECAR_REDIS_SENTINEL_PASSWORD: only used with CABLECAR_REDIS_SENTINELS"},
	} {
		_, err := New(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want %q", tc.name, err, tc.want)
		}
	}
	if (Config{}).Configured() || (Config{Sentinels: []string{" "}}).Configured() || (Config{MasterName: "m"}).Configured() {
		t.Error("Configured without URL, Sentinels or ClusterAddrs")
	}
	for _, cfg := range []Config{
		{Sentinels: []string{"s1:26379", " s2:26379 ", ""}, MasterName: "mymaster", Password: "pw", SentinelPassword: "spw"},
		{ClusterAddrs: []string{"n1:7000", "n2:7000"}, Password: "pw"},
	} {
		if !cfg.Configured() {
			t.Errorf("Configured(%+v) = false", cfg)
		}
		b, err := New(cfg, nil)
		if err != nil {
			t.Errorf("New(%+v) = %v", cfg, err)
			continue
		}
		_ = b.Close()
	}
}

// TestSentinelFailover runs a master, a replica and a sentinel, kills the
// master under a running broker, and checks that after the sentinel
// promotes the replica the broker is healthy again and delivers what is
// published on the new master.
func TestSentinelFailover(t *testing.T) {
	brokertest.CheckGoroutines(t)
	const masterName = "cablecar-test"
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, masterName, master)
	brokertest.WaitFor(t, settle, "sentinel to know the replica", func() bool {
		info, err := redistest.Info(sentinel.Addr, "sentinel")
		return err == nil && strings.Contains(info, "slaves=1")
	})

	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{Sentinels: []string{sentinel.Addr}, MasterName: masterName, ChannelPrefix: prefix})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	b.Subscribe("a")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("a") == 1 })
	waitHealthy(t, b)

	// A job publishing through its own failover client, as Rails does
	// with a sentinel configuration.
	pub := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:    masterName,
		SentinelAddrs: []string{sentinel.Addr},
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { _ = pub.Close() })
	if err := pub.Publish(context.Background(), prefix+":a", "before").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "a", 1, settle); string(got) != "before" {
		t.Fatalf("before failover: got %q", got)
	}

	master.Kill()
	killed := time.Now()
	// Publish every 50 ms until one arrives: whatever arrives now went
	// through the promoted replica, since the old master is dead.
	var healthDown, firstDelivery time.Duration
	deadline := killed.Add(15 * time.Second)
	for n := 0; len(r.Messages("a")) < 2; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered %v after killing the master; Health %v", time.Since(killed), b.Health(context.Background()))
		}
		if healthDown == 0 && b.Health(context.Background()) != nil {
			healthDown = time.Since(killed)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = pub.Publish(ctx, prefix+":a", fmt.Sprintf("after-%d", n)).Err()
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	firstDelivery = time.Since(killed)
	waitHealthy(t, b)
	healthy := time.Since(killed)
	if got := string(r.Messages("a")[1]); !strings.HasPrefix(got, "after-") {
		t.Errorf("after failover: got %q", got)
	}
	info, err := redistest.Info(replica.Addr, "replication")
	if err != nil || !strings.Contains(info, "role:master") {
		t.Errorf("replica not promoted (err %v):\n%s", err, info)
	}
	// The broker's own Publish follows the failover too.
	if err := b.Publish(context.Background(), "a", []byte("via broker")); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "a", 3, settle); string(got) != "via broker" {
		t.Errorf("broker Publish after failover: got %q", got)
	}
	if s := b.Stats(); s.Disconnects < 1 || s.Reconnects < 1 {
		t.Errorf("Stats = %+v, want the failover counted as a disconnect and a reconnect", s)
	}
	t.Logf("failover: Health failed %v after kill -9 of the master, first delivery via the promoted replica %v after, Health nil %v after",
		healthDown.Round(time.Millisecond), firstDelivery.Round(time.Millisecond), healthy.Round(time.Millisecond))
}

// TestCluster runs a three-master Redis Cluster and checks that classic
// PUBLISH on a node other than the broker's subscriber node reaches it, for
// streams whose channels hash to every node.
func TestCluster(t *testing.T) {
	brokertest.CheckGoroutines(t)
	nodes := redistest.StartCluster(t, 3)
	prefix := redistest.UniquePrefix(t)
	b, _ := newBrokerConfig(t, Config{ClusterAddrs: []string{nodes[0].Addr}, ChannelPrefix: prefix})
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	defer stop()
	var streams []string
	for i := range 12 {
		s := fmt.Sprintf("stream-%d", i)
		streams = append(streams, s)
		b.Subscribe(s)
	}
	for _, s := range streams {
		brokertest.WaitFor(t, settle, "active("+s+")", func() bool { return r.Actives(s) == 1 })
	}
	waitHealthy(t, b)

	// Find the node holding the subscriber connection.
	sub := -1
	for i, n := range nodes {
		if len(subscriberAddrs(t, newClient(t, n))) > 0 {
			if sub >= 0 {
				t.Fatalf("subscriber connections on nodes %d and %d, want one", sub, i)
			}
			sub = i
		}
	}
	if sub < 0 {
		t.Fatal("no subscriber connection on any node")
	}
	other := nodes[(sub+1)%len(nodes)]
	t.Logf("subscriber on node %d (%s), publishing on %s", sub, nodes[sub].Addr, other.Addr)
	// A plain (non-cluster) connection to that other node, as a job
	// publishing on whichever node it happens to reach.
	c := newClient(t, other)
	for _, s := range streams {
		if err := c.Publish(context.Background(), prefix+":"+s, "hello "+s).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range streams {
		if got := r.WaitMessage(t, s, 1, settle); string(got) != "hello "+s {
			t.Errorf("%s: got %q", s, got)
		}
	}
	// The broker's own Publish goes through the cluster client.
	if err := b.Publish(context.Background(), streams[0], []byte("via broker")); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, streams[0], 2, settle); string(got) != "via broker" {
		t.Errorf("broker Publish: got %q", got)
	}
}
