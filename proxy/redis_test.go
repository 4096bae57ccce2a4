package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/internal/redistest"
	"github.com/cablecar/cablecar/proxy"
)

func startRedisServer(t *testing.T, rs *redistest.Server, prefix string) *testServer {
	t.Helper()
	return startRedisServerWith(t, rs, redis.Config{ChannelPrefix: prefix, ProbeTimeout: time.Second}, proxy.Config{})
}

// startRedisServerWith is startRedisServer with the broker's and the
// server's own settings; bcfg's URL is rs's, its probe every 200 ms.
func startRedisServerWith(t *testing.T, rs *redistest.Server, bcfg redis.Config, cfg proxy.Config) *testServer {
	t.Helper()
	bcfg.URL, bcfg.ProbeInterval = rs.URL, 200*time.Millisecond
	b, err := redis.New(bcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return startServer(t, cfg, anonymous(), b)
}

// confirm_subscription means Redis has acknowledged SUBSCRIBE: a message
// published the instant the client sees it is delivered, every time.
func TestConfirmOnlyAfterRedisAcknowledges(t *testing.T) {
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	ts := startRedisServer(t, rs, prefix)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	c := welcomed(t, ts.url(""))
	for i := 0; i < 50; i++ {
		room := fmt.Sprintf("room-%d", i)
		id := `{"channel":"ChatChannel","room":"` + room + `"}`
		c.command("subscribe", id)
		if got := c.nextText(); got != confirmFrame(id) {
			t.Fatalf("got %s", got)
		}
		if err := rdb.Publish(context.Background(), prefix+":chat:"+room, `{"n":`+fmt.Sprint(i)+`}`).Err(); err != nil {
			t.Fatal(err)
		}
		if got := c.nextText(); got != messageFrame(id, `{"n":`+fmt.Sprint(i)+`}`) {
			t.Fatalf("iteration %d: got %s", i, got)
		}
	}
}

// Redis killed under live clients: the process keeps serving them (pings
// continue), /health says why it is unhealthy, and after Redis comes back
// every stream is resubscribed and delivery resumes.
func TestRedisOutageAndRecovery(t *testing.T) {
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	ts := startRedisServer(t, rs, prefix)
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.nextText()

	health := func() (int, string) {
		resp, err := http.Get("http://" + ts.addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	rs.Kill()
	waitFor(t, "health 503", func() bool { code, _ := health(); return code == 503 })
	if _, body := health(); !strings.Contains(body, `"reason":"redis`) {
		t.Errorf("health body %s does not say redis is the problem", body)
	}
	// Still connected: a ping arrives while Redis is down.
	if f := c.next(); !strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
		t.Fatalf("got %q, want a ping", f.payload)
	}
	rs.Restart(t)
	waitFor(t, "health 200", func() bool { code, _ := health(); return code == 200 })
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	waitFor(t, "resubscribed", func() bool {
		n, _ := rdb.PubSubNumSub(context.Background(), prefix+":chat:lobby").Result()
		return n[prefix+":chat:lobby"] == 1
	})
	rdb.Publish(context.Background(), prefix+":chat:lobby", `"back"`)
	if got := c.nextText(); got != messageFrame(lobby, `"back"`) {
		t.Fatalf("after recovery: got %s", got)
	}
}

// A slow Redis (DEBUG SLEEP) stalls nothing on the client side: pings keep
// flowing while Redis is blocked, and delivery resumes after. The probe
// allows the sleep here; a stall past the probe timeout replaces the
// subscriber connection, which TestRedisDown covers.
func TestSlowRedis(t *testing.T) {
	rs := redistest.Start(t, "--enable-debug-command", "local")
	prefix := redistest.UniquePrefix(t)
	ts := startRedisServerWith(t, rs, redis.Config{ChannelPrefix: prefix, ProbeTimeout: 5 * time.Second},
		proxy.Config{PingInterval: 300 * time.Millisecond})
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	c.nextText()
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr, ReadTimeout: 10 * time.Second})
	defer rdb.Close()
	slept := make(chan error, 1)
	asleep := time.Now().Add(500 * time.Millisecond) // DEBUG SLEEP 2 is surely running by then
	go func() { slept <- rdb.Do(context.Background(), "DEBUG", "SLEEP", "2").Err() }()
	for {
		f := c.next()
		if !strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
			t.Fatalf("got %q, want pings while Redis sleeps", f.payload)
		}
		if time.Now().After(asleep) {
			break
		}
	}
	select {
	case err := <-slept:
		t.Fatalf("DEBUG SLEEP 2 ended before a ping came while it ran (%v)", err)
	default:
	}
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	rdb.Publish(context.Background(), prefix+":chat:lobby", `"awake"`)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		f, err := c.read(time.Second)
		if err == nil && strings.HasPrefix(string(f.payload), `{"type":"ping"`) {
			continue
		}
		if err != nil || string(f.payload) != messageFrame(lobby, `"awake"`) {
			t.Fatalf("got %q %v", f.payload, err)
		}
		return
	}
	t.Fatalf("no message; log:\n%s", ts.logs.String())
}

// A full Redis (maxmemory reached, noeviction) refuses writes to keys, not
// pub/sub: subscriptions and PUBLISH keep working, so broadcasts flow even
// while the job queue beside them is failing.
func TestFullRedisStillDelivers(t *testing.T) {
	rs := redistest.Start(t)
	prefix := redistest.UniquePrefix(t)
	ts := startRedisServer(t, rs, prefix)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	rdb.Set(ctx, "filler", strings.Repeat("x", 1<<20), 0)
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "job", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("SET on a full Redis: %v, want OOM", err)
	}
	c := welcomed(t, ts.url(""))
	c.command("subscribe", lobby)
	if got := c.nextText(); got != confirmFrame(lobby) {
		t.Fatalf("subscribe on a full Redis: %s", got)
	}
	if err := rdb.Publish(ctx, prefix+":chat:lobby", `"still here"`).Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.nextText(); got != messageFrame(lobby, `"still here"`) {
		t.Fatalf("got %s", got)
	}
}

// POST /_broadcast while Redis is down answers 503 with the reason, and the
// outage is not logged again per request: the broker said it once.
func TestBroadcastDuringOutage(t *testing.T) {
	rs := redistest.Start(t)
	b, err := redis.New(redis.Config{URL: rs.URL, ChannelPrefix: redistest.UniquePrefix(t),
		ProbeInterval: 200 * time.Millisecond, ProbeTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ts := startServer(t, proxy.Config{BroadcastKey: "bk-outage"}, anonymous(), b)
	post := func() (int, string) {
		req, _ := http.NewRequest("POST", "http://"+ts.addr+"/_broadcast", strings.NewReader(`{"stream":"chat:lobby","data":1}`))
		req.Header.Set("Authorization", "Bearer bk-outage")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(); code != http.StatusAccepted {
		t.Fatalf("before the outage: %d %s", code, body)
	}
	rs.Kill()
	waitFor(t, "broker unhealthy", func() bool { return b.Health(context.Background()) != nil })
	for range 5 {
		code, body := post()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
			t.Fatalf("during the outage: %d %s, want 503 naming the cause", code, body)
		}
	}
	noErrorLogs(t, ts)
	if n := strings.Count(ts.logs.String(), `msg="broadcast failed"`); n != 5 {
		t.Errorf("%d debug 'broadcast failed' lines, want 5", n)
	}
}
