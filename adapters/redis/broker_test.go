package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/internal/brokertest"
	"github.com/cablecar/cablecar/internal/redistest"
)

// TestDeliverWhatRailsPublishes publishes the way Rails does (plain
// PUBLISH on prefix:stream from another client, and from redis-cli) and
// checks the exact bytes arrive under the stream name without the prefix.
func TestDeliverWhatRailsPublishes(t *testing.T) {
	srv := redistest.Start(t)
	pub := newClient(t, srv)
	for _, prefix := range []string{"myapp_production", ""} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			b, _ := newBroker(t, srv.URL, prefix)
			r := brokertest.NewRecorder(t)
			r.Start(t, b)
			const stream = "chat:room:Z2lkOi8vbXlhcHAvQ2hhdDo6Um9vbS83"
			b.Subscribe(stream)
			brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives(stream) == 1 })
			channel := stream
			if prefix != "" {
				channel = prefix + ":" + stream
			}
			// From ActionCable's own capture (actioncable-protocol.md §4.4).
			const turbo = `"\u003cturbo-stream action=\"remove\" target=\"document_123\"\u003e\u003c/turbo-stream\u003e"`
			if err := pub.Publish(context.Background(), channel, turbo).Err(); err != nil {
				t.Fatal(err)
			}
			if got := r.WaitMessage(t, stream, 1, settle); string(got) != turbo {
				t.Errorf("go-redis PUBLISH: got %q, want %q", got, turbo)
			}
			out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port(srv), "PUBLISH", channel, `{"status":"complete"}`).CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli: %v: %s", err, out)
			}
			if got := r.WaitMessage(t, stream, 2, settle); string(got) != `{"status":"complete"}` {
				t.Errorf("redis-cli PUBLISH: got %q", got)
			}
			// Another app's prefix on the same Redis is not ours.
			_ = pub.Publish(context.Background(), "otherapp:"+stream, "x").Err()
			_ = pub.Publish(context.Background(), channel, "last").Err()
			r.WaitMessage(t, stream, 3, settle)
			for _, m := range r.Messages(stream) {
				if string(m) == "x" {
					t.Error("delivered a message from another prefix")
				}
			}
			if s := b.Stats(); s.Delivered < 3 || s.Streams != 1 {
				t.Errorf("Stats = %+v", s)
			}
			// Probes went round meanwhile (Health is nil only once one has
			// come back); none may reach the hub.
			waitHealthy(t, b)
			if got := r.Streams(); len(got) != 1 {
				t.Errorf("deliver called for streams %q, want only %q", got, stream)
			}
		})
	}
}

// TestUnsubscribe checks Redis's own count of subscribers.
func TestUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, _ := newBroker(t, srv.URL, prefix)
	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	ch := func(s string) string { return prefix + ":" + s }

	t.Run("Plain", func(t *testing.T) {
		b.Subscribe("a")
		brokertest.WaitFor(t, settle, "active(a)", func() bool { return r.Actives("a") == 1 })
		if n := numSub(t, c, ch("a")); n != 1 {
			t.Fatalf("NUMSUB after active = %d, want 1", n)
		}
		b.Unsubscribe("a")
		brokertest.WaitFor(t, settle, "NUMSUB 0", func() bool { return numSub(t, c, ch("a")) == 0 })
	})

	t.Run("SubUnsubSubCold", func(t *testing.T) {
		b.Subscribe("b")
		b.Unsubscribe("b")
		b.Subscribe("b")
		brokertest.WaitFor(t, settle, "active(b)", func() bool { return r.Actives("b") >= 1 })
		// active means every Subscribe so far was acknowledged: Redis must
		// count the subscription now, not eventually.
		if n := numSub(t, c, ch("b")); n != 1 {
			t.Fatalf("NUMSUB right after active = %d, want 1", n)
		}
	})

	t.Run("UnsubSubHot", func(t *testing.T) {
		b.Subscribe("c")
		brokertest.WaitFor(t, settle, "active(c)", func() bool { return r.Actives("c") == 1 })
		b.Unsubscribe("c")
		b.Subscribe("c")
		brokertest.WaitFor(t, settle, "second active(c)", func() bool { return r.Actives("c") == 2 })
		if n := numSub(t, c, ch("c")); n != 1 {
			t.Fatalf("NUMSUB right after the second active = %d, want 1", n)
		}
		if err := b.Publish(context.Background(), "c", []byte("1")); err != nil {
			t.Fatal(err)
		}
		r.WaitMessage(t, "c", 1, settle)
	})

	t.Run("UnsubSubUnsub", func(t *testing.T) {
		b.Subscribe("d")
		brokertest.WaitFor(t, settle, "active(d)", func() bool { return r.Actives("d") == 1 })
		b.Unsubscribe("d")
		b.Subscribe("d")
		b.Unsubscribe("d")
		brokertest.WaitFor(t, settle, "NUMSUB 0", func() bool { return numSub(t, c, ch("d")) == 0 })
	})

	t.Run("Churn", func(t *testing.T) {
		// Random toggles on a few streams, racing the command goroutine;
		// Redis must end up matching the last call for each.
		rng := rand.New(rand.NewPCG(1, 2))
		want := map[string]bool{}
		for range 3000 {
			s := fmt.Sprintf("churn:%d", rng.IntN(10))
			if rng.IntN(2) == 0 {
				b.Subscribe(s)
				want[s] = true
			} else {
				b.Unsubscribe(s)
				want[s] = false
			}
			if rng.IntN(100) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		for s, w := range want {
			wantN := int64(0)
			if w {
				wantN = 1
			}
			brokertest.WaitFor(t, settle, fmt.Sprintf("NUMSUB %s = %d", s, wantN), func() bool {
				return numSub(t, c, ch(s)) == wantN
			})
			if w && r.Actives(s) == 0 {
				t.Errorf("%s wanted but never active", s)
			}
		}
	})
}

// TestManyStreamsBatched subscribes 2,000 streams and checks they go out in
// a few SUBSCRIBE commands, not one each.
func TestManyStreamsBatched(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, _ := newBroker(t, srv.URL, prefix)
	r := brokertest.NewRecorder(t)
	const n = 2000
	for i := range n / 2 { // half before Run, half after
		b.Subscribe(fmt.Sprintf("s%d", i))
	}
	r.Start(t, b)
	for i := n / 2; i < n; i++ {
		b.Subscribe(fmt.Sprintf("s%d", i))
	}
	brokertest.WaitFor(t, settle, "all active", func() bool {
		for i := range n {
			if r.Actives(fmt.Sprintf("s%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	for _, i := range []int{0, 999, 1000, 1999} {
		if got := numSub(t, c, fmt.Sprintf("%s:s%d", prefix, i)); got != 1 {
			t.Errorf("NUMSUB s%d = %d", i, got)
		}
	}
	calls := commandCalls(t, c, "subscribe")
	t.Logf("SUBSCRIBE commands for %d streams (+1 probe channel): %d", n, calls)
	if calls > 50 {
		t.Errorf("%d SUBSCRIBE commands for %d streams: not batched", calls, n)
	}
}

// TestRedisKilled kills redis-server under a running broker, checks Health
// says what is wrong and Run keeps going, then restarts Redis (empty, on
// the same port) and checks everything comes back.
func TestRedisKilled(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, logs := newBroker(t, srv.URL, prefix)
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	streams := []string{"a", "b", "c"}
	for _, s := range streams {
		b.Subscribe(s)
	}
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("c") == 1 })
	waitHealthy(t, b)

	srv.Kill()
	killed := time.Now()
	var herr error
	brokertest.WaitFor(t, 3*time.Second, "Health to fail", func() bool {
		herr = b.Health(context.Background())
		return herr != nil
	})
	t.Logf("Health %v after kill: %v", time.Since(killed).Round(time.Millisecond), herr)
	brokertest.WaitFor(t, 3*time.Second, "Health to name the refused dial", func() bool {
		herr = b.Health(context.Background())
		return herr != nil && strings.Contains(herr.Error(), "connect: connection refused") &&
			strings.HasPrefix(herr.Error(), "redis: dial tcp "+srv.Addr)
	})
	t.Logf("Health while down: %v", herr)

	// Publish reports the outage, bounded by its context.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	start := time.Now()
	err := b.Publish(ctx, "a", []byte("lost"))
	cancel()
	if err == nil || !strings.Contains(err.Error(), `redis publish "a"`) {
		t.Errorf("Publish while down = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Publish while down took %v", d)
	}

	b.Subscribe("while-down")
	// Let a few reconnect attempts fail, to check they are not each logged
	// loudly.
	brokertest.WaitFor(t, settle, "a few failed attempts", func() bool {
		return logs.Count("redis subscriber reconnect failed") >= 3
	})

	srv.Restart(t)
	waitHealthy(t, b)
	brokertest.WaitFor(t, settle, "active(while-down)", func() bool { return r.Actives("while-down") == 1 })
	brokertest.WaitFor(t, settle, "resubscribed", func() bool {
		for _, s := range append(streams, "while-down") {
			if numSub(t, c, prefix+":"+s) != 1 {
				return false
			}
		}
		return true
	})
	for _, s := range append(streams, "while-down") {
		if err := c.Publish(context.Background(), prefix+":"+s, "after").Err(); err != nil {
			t.Fatal(err)
		}
		if got := r.WaitMessage(t, s, 1, settle); string(got) != "after" {
			t.Errorf("%s: got %q", s, got)
		}
	}
	brokertest.WaitFor(t, settle, "reconnect log", func() bool {
		return logs.Count("redis subscriber reconnected, resubscribed 4 streams") == 1
	})
	if n := logs.Count("redis subscriber connection lost"); n != 1 {
		t.Errorf("%d 'connection lost' log lines, want 1:\n%s", n, logs)
	}
	if n := logs.Count("level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want 1 for the whole outage", n)
	}
	if s := b.Stats(); s.Disconnects != 1 || s.Reconnects != 1 {
		t.Errorf("Stats = %+v, want 1 disconnect and 1 reconnect", s)
	}
	stop()
}

// TestPublishWithoutRedis: Publish fails (no panic, no hang) when nothing
// listens, and Health says the broker never connected.
func TestPublishWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	b, logs := newBroker(t, srv.URL, "p")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := b.Publish(ctx, "s", []byte("1"))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Publish = %v, want connection refused", err)
	}
	if s := b.Stats(); s.PublishErrors != 1 {
		t.Errorf("PublishErrors = %d", s.PublishErrors)
	}

	r := brokertest.NewRecorder(t)
	r.Start(t, b)
	var herr error
	brokertest.WaitFor(t, settle, "Health to name the refused dial", func() bool {
		herr = b.Health(context.Background())
		return herr != nil && strings.Contains(herr.Error(), "connection refused")
	})
	if !errors.Is(herr, ErrNotConnected) || !strings.HasPrefix(herr.Error(), "redis: not connected yet: dial tcp") {
		t.Errorf("Health = %v", herr)
	}
	brokertest.WaitFor(t, settle, "retries", func() bool { return logs.Count("reconnect failed") >= 3 })
	if n := logs.Count("redis subscriber cannot connect"); n != 1 {
		t.Errorf("%d 'cannot connect' lines, want 1", n)
	}
}

// TestWedgedSubscriber black-holes the subscriber's TCP connection: no
// error, no EOF, the socket stays open and Redis still counts the
// subscriber, and PUBLISH keeps succeeding. go-redis cannot notice; the
// probe must.
func TestWedgedSubscriber(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	c := newClient(t, srv)
	proxy := startProxy(t, srv.Addr)
	prefix := redistest.UniquePrefix(t)
	b, logs := newBroker(t, proxy.URL(), prefix)
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("s") == 1 })
	waitHealthy(t, b)

	addr := subscriberAddr(t, c)
	if !proxy.freeze(addr) {
		t.Fatalf("no proxied connection from %s", addr)
	}
	frozen := time.Now()
	var herr error
	brokertest.WaitFor(t, settle, "Health to report the lost probe", func() bool {
		herr = b.Health(context.Background())
		return errors.Is(herr, ErrProbeLate)
	})
	t.Logf("Health %v after the freeze: %v", time.Since(frozen).Round(time.Millisecond), herr)
	if want := fmt.Sprintf("redis: pub/sub probe not received for %v", testProbeTimeout); herr.Error() != want {
		t.Errorf("Health = %q, want %q", herr, want)
	}
	waitHealthy(t, b)
	t.Logf("healthy again %v after the freeze", time.Since(frozen).Round(time.Millisecond))
	if s := b.Stats(); s.ProbeTimeouts < 1 || s.Reconnects < 1 {
		t.Errorf("Stats = %+v", s)
	}
	// The black-holed connection is still open as far as Redis knows
	// (until TCP keepalive ends it), so there are two subscribers now.
	brokertest.WaitFor(t, settle, "resubscribed on a new connection", func() bool {
		addrs := subscriberAddrs(t, c)
		return len(addrs) == 2 && numSub(t, c, prefix+":s") == 2
	})
	if err := c.Publish(context.Background(), prefix+":s", "after").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "s", 1, settle); string(got) != "after" {
		t.Errorf("got %q", got)
	}
	if n := logs.Count("redis subscriber connection lost"); n != 1 {
		t.Errorf("%d 'connection lost' lines, want 1", n)
	}
	stop()
}

// TestClientKilled kills the subscriber connection from the server side.
// go-redis would reconnect and resubscribe on its own, silently; the broker
// must instead count the gap, use a fresh connection, and leave exactly one
// subscriber connection.
func TestClientKilled(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	c := newClient(t, srv)
	prefix := redistest.UniquePrefix(t)
	b, logs := newBroker(t, srv.URL, prefix)
	r := brokertest.NewRecorder(t)
	stop := r.Start(t, b)
	b.Subscribe("s")
	brokertest.WaitFor(t, settle, "active", func() bool { return r.Actives("s") == 1 })
	waitHealthy(t, b)
	before := subscriberAddr(t, c)

	if err := c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, settle, "a new subscriber connection", func() bool {
		return b.Stats().Reconnects == 1 && b.Health(context.Background()) == nil
	})
	brokertest.WaitFor(t, settle, "NUMSUB 1", func() bool { return numSub(t, c, prefix+":s") == 1 })
	if after := subscriberAddr(t, c); after == before {
		t.Errorf("subscriber still on %s", after)
	}
	brokertest.WaitFor(t, settle, "active again after resubscribe", func() bool { return r.Actives("s") == 2 })
	if err := c.Publish(context.Background(), prefix+":s", "after").Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.WaitMessage(t, "s", 1, settle); string(got) != "after" {
		t.Errorf("got %q", got)
	}
	if n := logs.Count("redis subscriber connection lost"); n != 1 {
		t.Errorf("%d 'connection lost' lines, want 1:\n%s", n, logs)
	}
	stop()
}

// TestCloseStopsRun: Close makes Run return and Publish fail.
func TestCloseStopsRun(t *testing.T) {
	brokertest.CheckGoroutines(t)
	srv := redistest.Start(t)
	b, _ := newBroker(t, srv.URL, "p")
	r := brokertest.NewRecorder(t)
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background(), r.Deliver, r.Active) }()
	waitHealthy(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close = %v, want nil", err)
		}
	case <-time.After(settle):
		t.Fatal("Run did not return after Close")
	}
	if err := b.Run(context.Background(), r.Deliver, r.Active); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := b.Publish(context.Background(), "s", nil); err == nil {
		t.Error("Publish after Close = nil")
	}
	if !errors.Is(b.Health(context.Background()), ErrNotRunning) {
		t.Errorf("Health after Close = %v", b.Health(context.Background()))
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"", "CABLECAR_REDIS_URL is not set"},
		{"http://localhost:6379", "CABLECAR_REDIS_URL: redis: invalid URL scheme: http"},
		{"redis://user:s3cret%zz@localhost:6379", "CABLECAR_REDIS_URL: "},
		{"redis://localhost:6379/abc", "CABLECAR_REDIS_URL: "},
	} {
		_, err := New(Config{URL: tc.url}, nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want %q...", tc.url, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) error leaks the password: %v", tc.url, err)
		}
	}
	if _, err := New(Config{URL: "redis://localhost:6379/0", BackoffMin: time.Second, BackoffMax: time.Millisecond}, nil); err == nil {
		t.Error("backoff min > max accepted")
	}
	b, err := New(Config{URL: "rediss://user:pw@cache.internal:6380/2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.cfg.ProbeInterval != time.Second || b.cfg.ProbeTimeout != 3*time.Second {
		t.Errorf("defaults not applied: %+v", b.cfg)
	}
	if !regexp.MustCompile(`^cablecar-[A-Za-z0-9._-]+-\d+$`).MatchString(clientName()) {
		t.Errorf("clientName = %q", clientName())
	}
}

// subscriberAddr returns the address of the only pub/sub client that Redis
// sees, failing the test if there is not exactly one.
func subscriberAddr(tb testing.TB, c *goredis.Client) string {
	tb.Helper()
	addrs := subscriberAddrs(tb, c)
	if len(addrs) != 1 {
		tb.Fatalf("%d pub/sub connections (%q), want exactly 1", len(addrs), addrs)
	}
	return addrs[0]
}

// subscriberAddrs returns the addresses of the clients in subscribe mode,
// checking they carry cablecar's name.
func subscriberAddrs(tb testing.TB, c *goredis.Client) []string {
	tb.Helper()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["flags"] == "P" { // a client in subscribe mode
			if !strings.HasPrefix(fields["name"], "cablecar-") {
				tb.Errorf("subscriber connection named %q, want cablecar-<host>-<pid>", fields["name"])
			}
			addrs = append(addrs, fields["addr"])
		}
	}
	return addrs
}

// port returns srv's port as a string.
func port(srv *redistest.Server) string {
	i := strings.LastIndexByte(srv.Addr, ':')
	return srv.Addr[i+1:]
}

// commandCalls returns how many times Redis ran cmd (INFO commandstats).
func commandCalls(tb testing.TB, c *goredis.Client, cmd string) int {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^cmdstat_` + cmd + `:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
