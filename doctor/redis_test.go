package doctor

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/internal/redistest"
)

// TestRun runs the whole doctor on a good setup: every check passes.
func TestRun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	url := startCablecar(t, nil)
	r := run(t, Config{
		Auth:          goodAuth(),
		RedisURL:      srv.URL,
		ChannelPrefix: "myapp_production",
		Listen:        100e6, // 100ms: nothing is published
		HealthURL:     url,
	})
	if r.Failed() || r.Count(Warn) > 1 {
		t.Errorf("want no FAIL and at most the nodes/health warning, got %d FAIL, %d WARN", r.Count(Fail), r.Count(Warn))
	}
	for _, check := range []string{nameConfig, nameToken, nameRedis, namePolicy, nameMemory, namePubSub, nameTraffic} {
		if res := only(t, r, check); res.Status != OK {
			t.Errorf("%s = %s: %s", check, res.Status, res.Message)
		}
	}
	if got := only(t, r, nameRedis).Message; got != srv.URL+" (redis "+redisVersion(t, srv.URL)+")" {
		t.Errorf("redis reachable message = %q", got)
	}
	if got := only(t, r, nameTraffic).Message; !strings.Contains(got, "no broadcasts seen in 100ms") {
		t.Errorf("traffic = %q", got)
	}
	// The cablecar at url uses the in-memory broker, so it is not on this
	// Redis, which doctor points out.
	health := r.Find(nameHealth)
	if len(health) != 2 || health[0].Status != OK || health[1].Status != Warn || !strings.Contains(health[1].Message, "no cablecar is subscribed to") {
		t.Errorf("health results = %+v", health)
	}
}

// redisVersion asks the server its version.
func redisVersion(t *testing.T, url string) string {
	t.Helper()
	server, err := info(context.Background(), client(t, url), "server")
	if err != nil {
		t.Fatal(err)
	}
	return server["redis_version"]
}

func TestRedisPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string // redis-server arguments
		policy string   // CONFIG SET maxmemory-policy, if any
		acl    []any    // ACL SETUSER doctor … : doctor connects as that user
		status Status
		text   []string // in the message or fix
	}{
		{name: "noeviction", policy: "noeviction", status: OK, text: []string{"noeviction: Redis never drops a job"}},
		{name: "allkeys-lru", policy: "allkeys-lru", status: Fail,
			text: []string{"allkeys-lru", "evicts any key", "Sidekiq", "a job can vanish", "CONFIG SET maxmemory-policy noeviction", "Sidekiq's docs recommend noeviction"}},
		{name: "allkeys-lfu", policy: "allkeys-lfu", status: Fail, text: []string{"allkeys-lfu"}},
		{name: "volatile-lru", policy: "volatile-lru", status: Warn, text: []string{"volatile-lru", "keys that have a TTL", "noeviction"}},
		{name: "CONFIG disabled: read from INFO", args: []string{"--rename-command", "CONFIG", "", "--maxmemory-policy", "allkeys-lru"},
			status: Fail, text: []string{"allkeys-lru (from INFO: CONFIG is not available)"}},
		{name: "CONFIG and INFO not allowed", acl: []any{"-config", "-info"},
			status: Warn, text: []string{"cannot read CONFIG", "NOPERM", "provider's console"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, tc.args...)
			if tc.policy != "" {
				mustDo(t, client(t, srv.URL), "CONFIG", "SET", "maxmemory-policy", tc.policy)
			}
			url := srv.URL
			if tc.acl != nil {
				// A managed Redis often refuses CONFIG (and sometimes
				// INFO): an ACL user without them acts the same.
				mustDo(t, client(t, srv.URL), append([]any{"ACL", "SETUSER", "doctor", "on", ">pw", "~*", "&*", "+@all"}, tc.acl...)...)
				url = "redis://doctor:pw@" + srv.Addr + "/0"
			}
			r := run(t, Config{Auth: goodAuth(), RedisURL: url})
			res := only(t, r, namePolicy)
			if res.Status != tc.status {
				t.Errorf("status = %s, want %s: %s", res.Status, tc.status, res.Message)
			}
			for _, s := range tc.text {
				if !strings.Contains(res.Message+" "+res.Fix, s) {
					t.Errorf("want %q in %q / fix %q", s, res.Message, res.Fix)
				}
			}
			if r.Failed() != (tc.status == Fail) {
				t.Errorf("Failed() = %v with policy status %s", r.Failed(), tc.status)
			}
		})
	}
}

func TestRedisMemoryHeadroom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		share  float64 // maxmemory is set so that used memory is this share of it
		status Status
	}{
		{"plenty", 0.30, OK},
		{"tight", 0.82, Warn},
		{"nearly full", 0.96, Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			c := client(t, srv.URL)
			// Fill Redis with data (8 MiB), so that the few KiB a new
			// client connection costs do not move the share.
			big := strings.Repeat("x", 1<<20)
			for i := range 8 {
				mustDo(t, c, "SET", "job:"+strconv.Itoa(i), big)
			}
			mem, err := info(context.Background(), c, "memory")
			if err != nil {
				t.Fatal(err)
			}
			used, _ := strconv.ParseInt(mem["used_memory"], 10, 64)
			mustDo(t, c, "CONFIG", "SET", "maxmemory", strconv.FormatInt(int64(float64(used)/tc.share), 10))

			r := run(t, Config{Auth: goodAuth(), RedisURL: srv.URL})
			res := only(t, r, nameMemory)
			if res.Status != tc.status || !strings.Contains(res.Message, "used of maxmemory") {
				t.Errorf("memory = %s %q, want %s", res.Status, res.Message, tc.status)
			}
			if tc.status != OK && !strings.Contains(res.Fix, "raise maxmemory") {
				t.Errorf("fix = %q", res.Fix)
			}
		})
	}
}

func TestRedisNoMaxmemory(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := run(t, Config{Auth: goodAuth(), RedisURL: srv.URL})
	if res := only(t, r, nameMemory); res.Status != OK || !strings.Contains(res.Message, "no maxmemory limit") {
		t.Errorf("memory = %s %q", res.Status, res.Message)
	}
}

func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	stopped := redistest.Start(t)
	stopped.Stop()
	locked := redistest.Start(t)
	mustDo(t, client(t, locked.URL), "CONFIG", "SET", "requirepass", "the-right-password")
	const password = "hunter2-not-shown"
	for _, tc := range []struct {
		name  string
		url   string
		shown string // the URL as the report shows it
		text  []string
	}{
		{"stopped server", stopped.URL, stopped.URL, []string{"connection refused", "check CABLECAR_REDIS_URL"}},
		{"password masked", "redis://:" + password + "@" + stopped.Addr + "/0", "redis://:xxxxx@" + stopped.Addr + "/0", []string{"connection refused"}},
		{"wrong password", "redis://:" + password + "@" + locked.Addr + "/0", "redis://:xxxxx@" + locked.Addr + "/0", []string{"WRONGPASS", "password in CABLECAR_REDIS_URL is wrong"}},
		{"bad URL", "http://" + password + "@example", "", []string{"CABLECAR_REDIS_URL: ", "redis://[user:password@]host:port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, Config{Auth: goodAuth(), RedisURL: tc.url, Listen: 1e9})
			if !r.Failed() {
				t.Error("Failed() = false")
			}
			res := r.Find(nameRedis)
			if len(res) != 1 || res[0].Status != Fail || !strings.HasPrefix(res[0].Message, tc.shown) {
				t.Fatalf("redis reachable = %+v, want FAIL starting with %q", res, tc.shown)
			}
			for _, s := range tc.text {
				if !strings.Contains(res[0].Message+" "+res[0].Fix, s) {
					t.Errorf("want %q in %+v", s, res[0])
				}
			}
			var b strings.Builder
			_ = r.WriteText(&b)
			_ = r.WriteJSON(&b)
			if strings.Contains(b.String(), password) {
				t.Errorf("the report shows the password:\n%s", b.String())
			}
			for _, check := range []string{namePolicy, nameMemory, namePubSub} {
				if got := r.Find(check); len(got) != 0 {
					t.Errorf("%s ran without Redis: %+v", check, got)
				}
			}
		})
	}
}

func TestRedisNotConfigured(t *testing.T) {
	t.Parallel()
	r := run(t, Config{Auth: goodAuth(), Listen: 1e9})
	if res := only(t, r, nameRedis); res.Status != Skip || !strings.Contains(res.Message, "in-memory broker: single node only") {
		t.Errorf("redis = %+v", res)
	}
	if r.Failed() {
		t.Error("Failed() with no Redis configured")
	}
}

// TestNodes runs real cablecar brokers on the Redis: one with the expected
// prefix and one with another, which doctor reports.
func TestNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	url := startCablecar(t, newRedisBroker(t, srv.URL, "myapp_production"))
	startCablecar(t, newRedisBroker(t, srv.URL, "myapp_development"))

	r := run(t, Config{Auth: goodAuth(), RedisURL: srv.URL, ChannelPrefix: "myapp_production", HealthURL: url})
	nodes := r.Find(nameNodes)
	if len(nodes) != 2 {
		t.Fatalf("nodes = %+v", nodes)
	}
	if nodes[0].Status != OK || !strings.Contains(nodes[0].Message, "1 running node subscribed with CABLECAR_CHANNEL_PREFIX=myapp_production, 0 streams in use") {
		t.Errorf("nodes[0] = %+v", nodes[0])
	}
	if nodes[1].Status != Warn || !strings.Contains(nodes[1].Message, "CABLECAR_CHANNEL_PREFIX=myapp_development") || nodes[1].Fix == "" {
		t.Errorf("nodes[1] = %+v", nodes[1])
	}
	if res := only(t, r, nameHealth); res.Status != OK {
		t.Errorf("health = %+v", res)
	}
}
