package redis

import (
	"context"
	"log/slog"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/logbuf"
	"github.com/cablecar/cablecar/internal/redistest"
)

// Fast tunables, so fault tests take about a second.
const (
	testProbeInterval = 50 * time.Millisecond
	testProbeTimeout  = time.Second
	settle            = 5 * time.Second // generous bound for anything that should take milliseconds
)

// newBroker returns a broker on srv with fast tunables and a per-test
// prefix, closed at cleanup, and its log.
func newBroker(tb testing.TB, url, prefix string) (*Broker, *logbuf.Buffer) {
	tb.Helper()
	return newBrokerConfig(tb, Config{URL: url, ChannelPrefix: prefix})
}

// newBrokerConfig is newBroker for any Redis topology: cfg says where Redis
// is and the prefix; the fast tunables are filled in.
func newBrokerConfig(tb testing.TB, cfg Config) (*Broker, *logbuf.Buffer) {
	tb.Helper()
	logs := &logbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.ProbeInterval, cfg.ProbeTimeout = testProbeInterval, testProbeTimeout
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 200*time.Millisecond
	b, err := New(cfg, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("broker log:\n%s", logs)
		}
	})
	return b, logs
}

// newClient returns a plain go-redis client on srv, as Rails or a job
// would use to publish.
func newClient(tb testing.TB, srv *redistest.Server) *goredis.Client {
	tb.Helper()
	opts, err := goredis.ParseURL(srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	opts.MaxRetries = -1
	c := goredis.NewClient(opts)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// newClients is newClient for each of nodes, in order.
func newClients(tb testing.TB, nodes []*redistest.Server) []*goredis.Client {
	tb.Helper()
	clients := make([]*goredis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = newClient(tb, n)
	}
	return clients
}

// numSub returns PUBSUB NUMSUB for channel.
func numSub(tb testing.TB, c *goredis.Client, channel string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		tb.Fatalf("PUBSUB NUMSUB %s: %v", channel, err)
	}
	return m[channel]
}

func waitHealthy(tb testing.TB, b *Broker) {
	tb.Helper()
	brokertest.WaitFor(tb, settle, "Health nil", func() bool { return b.Health(context.Background()) == nil })
}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Contract(t, func(tb testing.TB) brokertest.Broker {
		b, _ := newBroker(tb, srv.URL, redistest.UniquePrefix(tb))
		return b
	}, settle)
}
