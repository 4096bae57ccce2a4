package doctor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/memory"
	redisbroker "github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/internal/servetest"
	"github.com/cablecar/cablecar/proxy"
)

// testSecret is a JWT secret long enough for auth.New.
const testSecret = "0123456789abcdef0123456789abcdef-doctor"

// settle bounds anything that should take milliseconds.
const settle = 10 * time.Second

// goodAuth is a configuration auth.New accepts, with a route.
func goodAuth() auth.Config {
	return auth.Config{
		JWTSecret: testSecret,
		GIDApp:    "myapp",
		Routes:    "DocumentChannel={channel}:{gid:Document:params.id}",
	}
}

// client returns a go-redis client for the test's side (publishing,
// CONFIG SET), closed at cleanup.
func client(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mustDo runs a command on c and fails the test on error.
func mustDo(t *testing.T, c *goredis.Client, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	if err := c.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
}

// run runs doctor with a bound on the whole run.
func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := Run(ctx, cfg)
	if t.Failed() || testing.Verbose() {
		var b strings.Builder
		_ = r.WriteText(&b)
		t.Logf("report:\n%s", b.String())
	}
	return r
}

// only returns the single result of check, failing the test otherwise.
func only(t *testing.T, r *Report, check string) Result {
	t.Helper()
	got := r.Find(check)
	if len(got) != 1 {
		var b strings.Builder
		_ = r.WriteText(&b)
		t.Fatalf("want 1 %q result, got %d:\n%s", check, len(got), b.String())
	}
	return got[0]
}

// waitFor polls cond until it holds or settle passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startCablecar runs a real proxy.Server on 127.0.0.1:0 with broker (the
// in-memory one when nil) and returns its base URL. It waits until /health
// would pass and stops the server at cleanup.
func startCablecar(t *testing.T, broker proxy.Broker) string {
	t.Helper()
	if broker == nil {
		broker = memory.New()
	}
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{ShutdownTimeout: time.Second}, broker, a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servetest.Serve(t, srv)
	waitFor(t, "broker healthy", func() bool { return broker.Health(context.Background()) == nil })
	return "http://" + addr
}

// newRedisBroker returns a Redis broker with fast probes, closed at cleanup.
func newRedisBroker(t *testing.T, url, prefix string) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{
		URL:           url,
		ChannelPrefix: prefix,
		ProbeInterval: 50 * time.Millisecond,
		ProbeTimeout:  300 * time.Millisecond,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
			t.Errorf("broker Close: %v", err)
		}
	})
	return b
}
