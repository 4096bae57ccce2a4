package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// BenchmarkClusterPublish compares what classic and sharded pub/sub cost a
// three-master cluster: three brokers (cablecar nodes) subscribe to the
// same 300 streams, and each iteration publishes one 200-byte message,
// pipelined 500 at a time. It reports the masters' CPU and cluster-bus
// messages per publish, read from INFO and CLUSTER INFO.
//
//	go test -run '^$' -bench ClusterPublish -benchtime 30000x ./adapters/redis/
func BenchmarkClusterPublish(b *testing.B) {
	for _, sharded := range []bool{false, true} {
		b.Run(fmt.Sprintf("sharded=%v", sharded), func(b *testing.B) {
			benchClusterPublish(b, sharded)
		})
	}
}

func benchClusterPublish(b *testing.B, sharded bool) {
	const streams = 300
	nodes := redistest.StartCluster(b, 3)
	clients := newClients(b, nodes)
	var seeds []string
	for _, n := range nodes {
		seeds = append(seeds, n.Addr)
	}
	var recs []*brokertest.Recorder
	for range 3 {
		br, _ := newBrokerConfig(b, Config{ClusterAddrs: seeds, ChannelPrefix: "p", ShardedPubSub: sharded})
		r := brokertest.NewRecorder(b)
		stop := r.Start(b, br)
		b.Cleanup(stop)
		for i := range streams {
			br.Subscribe(fmt.Sprintf("s%d", i))
		}
		brokertest.WaitFor(b, 10*time.Second, "every stream active", func() bool {
			for i := range streams {
				if r.Actives(fmt.Sprintf("s%d", i)) == 0 {
					return false
				}
			}
			return true
		})
		recs = append(recs, r)
	}
	pub := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: seeds})
	b.Cleanup(func() { _ = pub.Close() })
	ctx := context.Background()
	payload := strings.Repeat("x", 200)
	cpu0, bus0 := clusterCost(b, clients)
	b.ResetTimer()
	pipe := pub.Pipeline()
	for i := range b.N {
		ch := "p:s" + strconv.Itoa(i%streams)
		if sharded {
			pipe.SPublish(ctx, ch, payload)
		} else {
			pipe.Publish(ctx, ch, payload)
		}
		if i%500 == 499 || i == b.N-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	want := b.N / streams // how many i < b.N have i%streams == streams-1
	last := fmt.Sprintf("s%d", streams-1)
	for _, r := range recs {
		brokertest.WaitFor(b, time.Minute, "every message delivered", func() bool { return len(r.Messages(last)) >= want })
	}
	b.StopTimer()
	cpu1, bus1 := clusterCost(b, clients)
	b.ReportMetric((cpu1-cpu0)/float64(b.N)*1e6, "redis-cpu-µs/publish")
	b.ReportMetric((bus1-bus0)/float64(b.N), "bus-msgs/publish")
}

// clusterCost sums the masters' CPU seconds and cluster-bus messages sent.
func clusterCost(tb testing.TB, clients []*goredis.Client) (cpu, bus float64) {
	tb.Helper()
	for _, c := range clients {
		cpu += infoField(tb, c, "cpu", "used_cpu_sys") + infoField(tb, c, "cpu", "used_cpu_user")
		bus += infoField(tb, c, "cluster", "cluster_stats_messages_sent")
	}
	return cpu, bus
}

// infoField reads one number from INFO section (CLUSTER INFO for
// "cluster").
func infoField(tb testing.TB, c *goredis.Client, section, key string) float64 {
	tb.Helper()
	var text string
	var err error
	if section == "cluster" {
		text, err = c.ClusterInfo(context.Background()).Result()
	} else {
		text, err = c.Info(context.Background(), section).Result()
	}
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s %s: %v", section, key, err)
			}
			return f
		}
	}
	tb.Fatalf("%s has no %s", section, key)
	return 0
}
