package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbroker "github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/rails"
)

// Time limits for the Redis checks.
const (
	// redisTimeout bounds each Redis command, the dial included.
	redisTimeout = 3 * time.Second
	// roundTripTimeout bounds each step of the pub/sub round trip.
	roundTripTimeout = 2 * time.Second
)

// Memory use, as a share of maxmemory, above which doctor warns or fails.
const (
	memoryWarn = 0.75
	memoryFail = 0.90
)

// minRedisMajor is the oldest Redis major version doctor accepts silently.
const minRedisMajor = 6

// probeChannel matches the private channel each running cablecar node
// subscribes to (adapters/redis: <prefix>:cablecar/probe/<16 hex>); the
// submatch is the node's prefix.
var probeChannel = regexp.MustCompile(`^(?:(.*):)?cablecar/probe/[0-9a-f]{16}$`)

// clientName labels doctor's connections in CLIENT LIST.
const clientName = "cablecar-doctor"

// skipTraffic stands for the traffic watch when Redis cannot be reached.
var skipTraffic = Result{Status: Skip, Check: nameTraffic, Message: "Redis is unreachable"}

// target is the Redis a check talks to, as the report names it, and where
// its settings live, for the fixes.
type target struct {
	shown string // redacted URL, "master m at host:port (Sentinel …)" or a cluster node
	creds string // the variables holding the user and password
	url   bool   // CABLECAR_REDIS_URL mode: the fixes keep their URL wording
}

// checkRedisAll runs the Redis checks and the traffic watch on rc with the
// broker's own client options. nodes is how many running cablecar nodes
// are subscribed to this Redis, or -1 when unknown; shown names the Redis
// for later messages.
func checkRedisAll(ctx context.Context, cfg Config, rc redisbroker.Config) (results []Result, nodes int, shown string) {
	shown = redisShown(rc)
	client, err := rc.NewClient(clientName)
	if err != nil {
		for _, msg := range errorLines(err) {
			fix := "fix the variable named here (README: Settings)"
			if strings.HasPrefix(msg, "CABLECAR_REDIS_URL:") {
				fix = "write it as redis://[user:password@]host:port[/db], or rediss://… for TLS"
			}
			results = append(results, Result{Status: Fail, Check: nameRedis, Message: msg, Fix: fix})
		}
		return append(results, skipTraffic), -1, shown
	}
	defer client.Close()
	switch c := client.(type) {
	case *goredis.ClusterClient:
		results, nodes = checkCluster(ctx, cfg, rc, c)
		return results, nodes, shown
	case *goredis.Client:
		t := target{shown: shown, creds: "CABLECAR_REDIS_URL", url: true}
		if rc.URL == "" { // Sentinel: a failover client
			var fail *Result
			if t, fail = sentinelTarget(ctx, rc); fail != nil {
				return []Result{*fail, skipTraffic}, -1, shown
			}
			shown = t.shown
		}
		results, nodes = checkServer(ctx, cfg, c, t)
		return results, nodes, shown
	}
	return []Result{{Status: Fail, Check: nameRedis, Message: fmt.Sprintf("unexpected client %T", client)}, skipTraffic}, -1, shown
}

// checkServer runs the checks on one Redis server (a URL's, or the master
// the sentinels name) and the traffic watch.
func checkServer(ctx context.Context, cfg Config, client *goredis.Client, t target) (results []Result, nodes int) {
	reach, server, infoErr := checkReachable(ctx, client, t)
	results = append(results, reach)
	if reach.Status == Fail {
		return append(results, skipTraffic), -1
	}
	if v := versionResult(server, infoErr); v != nil {
		results = append(results, *v)
	}
	results = append(results, checkMemory(ctx, client)...)
	return checkPubSub(ctx, cfg, client, serverChannels(client), t.shown, results)
}

// checkPubSub appends the checks every topology shares once its servers
// answer: a pub/sub round trip, the nodes listening, and the traffic
// watch.
func checkPubSub(ctx context.Context, cfg Config, c goredis.UniversalClient, list channelLister, shown string, results []Result) ([]Result, int) {
	results = append(results, checkRoundTrip(ctx, c, cfg.ChannelPrefix))
	nodeResults, nodes := checkNodes(ctx, list, cfg.ChannelPrefix)
	results = append(results, nodeResults...)
	results = append(results, checkTrafficFor(ctx, c, cfg, shown)...)
	return results, nodes
}

// serverChannels lists one server's pub/sub channels.
func serverChannels(c *goredis.Client) channelLister {
	return func(ctx context.Context, pattern string) ([]string, error) {
		return c.PubSubChannels(ctx, pattern).Result()
	}
}

// redisShown names rc's Redis without passwords: the redacted URL, or the
// seed addresses.
func redisShown(rc redisbroker.Config) string {
	switch {
	case rc.URL != "":
		return redactURL(rc.URL)
	case len(rc.Sentinels) > 0:
		return "Sentinel " + strings.Join(rc.Sentinels, ", ")
	}
	return "Redis Cluster " + strings.Join(rc.ClusterAddrs, ", ")
}

// checkReachable PINGs Redis and reads INFO server.
func checkReachable(ctx context.Context, c *goredis.Client, t target) (Result, map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return Result{Status: Fail, Check: nameRedis, Message: fmt.Sprintf("%s: %v", t.shown, err), Fix: reachFix(err, t)}, nil, err
	}
	server, err := info(ctx, c, "server")
	if err != nil {
		return Result{Status: OK, Check: nameRedis, Message: t.shown}, nil, err
	}
	return Result{Status: OK, Check: nameRedis, Message: fmt.Sprintf("%s (%s)", t.shown, serverName(server))}, server, nil
}

// reachFix says what to do about a failed PING of t.
func reachFix(err error, t target) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"):
		if t.url {
			return "the user or password in CABLECAR_REDIS_URL is wrong (redis://user:password@host:port/db)"
		}
		return "the user or password in " + t.creds + " is wrong"
	case strings.Contains(msg, "x509:"):
		return "the server's TLS certificate is not trusted here: set CABLECAR_REDIS_TLS_CA_FILE to the PEM bundle of the CA that signed it; the certificate must name the host dialled"
	case strings.Contains(msg, "tls"), strings.Contains(msg, "TLS"), strings.Contains(msg, "EOF"):
		if t.url {
			return "check the scheme: rediss:// for TLS (most managed Redis), redis:// for plain TCP"
		}
		return "check CABLECAR_REDIS_TLS: true for TLS, false for plain TCP"
	}
	if t.url {
		return "check CABLECAR_REDIS_URL (host, port, password, rediss:// for TLS), that Redis is running and that this host may reach it: redis-cli -u \"$CABLECAR_REDIS_URL\" PING"
	}
	return "check that Redis is running at " + t.shown + " and that this host may reach it, and " + t.creds + " and CABLECAR_REDIS_TLS"
}

// info runs INFO section and returns its key:value lines.
func info(ctx context.Context, c *goredis.Client, section string) (map[string]string, error) {
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// serverName returns "redis 7.0.15", or "valkey 8.0.1" for Valkey.
func serverName(server map[string]string) string {
	if v := server["valkey_version"]; v != "" {
		return "valkey " + v
	}
	return "redis " + server["redis_version"]
}

// versionResult warns about a Redis older than 6 or an unreadable INFO; a
// current version needs no line of its own (checkReachable shows it).
func versionResult(server map[string]string, infoErr error) *Result {
	if infoErr != nil {
		return &Result{Status: Warn, Check: nameVersion, Message: "cannot read INFO server: " + infoErr.Error(),
			Fix: "check the Redis version in your provider's console: cablecar expects Redis 6 or later"}
	}
	v := server["redis_version"]
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return &Result{Status: Warn, Check: nameVersion, Message: fmt.Sprintf("cannot read the version %q", v),
			Fix: "check the Redis version: cablecar expects Redis 6 or later"}
	}
	if major < minRedisMajor {
		return &Result{Status: Warn, Check: nameVersion,
			Message: fmt.Sprintf("redis %s is older than %d.0 and out of support", v, minRedisMajor),
			Fix:     "upgrade Redis to a supported release (7.x)"}
	}
	return nil
}

// nameMemory reads maxmemory and maxmemory-policy (CONFIG GET, else INFO
// memory where CONFIG is disabled) and used_memory, and judges the eviction
// policy and the headroom.
func checkMemory(ctx context.Context, c *goredis.Client) []Result {
	ctx, cancel := context.WithTimeout(ctx, 2*redisTimeout)
	defer cancel()
	mem, memErr := info(ctx, c, "memory")
	policy, maxmem, err := configGetMemory(ctx, c)
	source := ""
	if err != nil {
		p, m := mem["maxmemory_policy"], mem["maxmemory"]
		n, perr := strconv.ParseInt(m, 10, 64)
		if p == "" || perr != nil {
			return []Result{{Status: Warn, Check: namePolicy, Message: "cannot read CONFIG: " + err.Error(),
				Fix: "check maxmemory-policy in your provider's console: it must not be allkeys-* when this Redis also holds jobs (noeviction is safest)"}}
		}
		policy, maxmem, source = p, n, " (from INFO: CONFIG is not available)"
	}
	out := []Result{policyResult(policy, source)}
	used, uerr := strconv.ParseInt(mem["used_memory"], 10, 64)
	if memErr != nil || uerr != nil {
		why := "used_memory missing"
		if memErr != nil {
			why = memErr.Error()
		}
		return append(out, Result{Status: Skip, Check: nameMemory,
			Message: fmt.Sprintf("maxmemory %s; cannot read used memory: %s", maxmemoryText(maxmem), why)})
	}
	return append(out, memoryResult(used, maxmem, policy))
}

// configGetMemory reads maxmemory-policy and maxmemory with CONFIG GET.
func configGetMemory(ctx context.Context, c *goredis.Client) (policy string, maxmem int64, err error) {
	p, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", 0, err
	}
	m, err := c.ConfigGet(ctx, "maxmemory").Result()
	if err != nil {
		return "", 0, err
	}
	if maxmem, err = strconv.ParseInt(m["maxmemory"], 10, 64); err != nil || p["maxmemory-policy"] == "" {
		return "", 0, fmt.Errorf("unexpected CONFIG GET reply: maxmemory %q, maxmemory-policy %q", m["maxmemory"], p["maxmemory-policy"])
	}
	return p["maxmemory-policy"], maxmem, nil
}

// policyResult judges the eviction policy for a Redis that also holds jobs.
func policyResult(policy, source string) Result {
	res := Result{Check: namePolicy}
	switch {
	case policy == "noeviction":
		res.Status = OK
		res.Message = "noeviction" + source + ": Redis never drops a job; when memory is full, writes fail loudly instead"
	case strings.HasPrefix(policy, "allkeys-"):
		res.Status = Fail
		res.Message = policy + source + ": when memory fills, Redis evicts any key. Job queues (Sidekiq, BullMQ, Celery) keep their jobs in Redis keys, so a job can vanish before it runs: its broadcast never happens and the page never updates"
		res.Fix = "CONFIG SET maxmemory-policy noeviction (and make it permanent in redis.conf or your provider's parameter group); Sidekiq's docs recommend noeviction. volatile-* at least spares keys without a TTL. Keep caches on a separate Redis"
	case strings.HasPrefix(policy, "volatile-"):
		res.Status = Warn
		res.Message = policy + source + ": when memory fills, Redis evicts keys that have a TTL; job data with an expiry (Sidekiq batches and unique-job locks, BullMQ jobs kept with a TTL) can vanish"
		res.Fix = "if this Redis holds jobs: CONFIG SET maxmemory-policy noeviction, as Sidekiq's docs recommend"
	default:
		res.Status = Warn
		res.Message = fmt.Sprintf("unknown policy %q%s", policy, source)
		res.Fix = "use noeviction when this Redis holds jobs"
	}
	return res
}

// memoryResult judges the headroom left below maxmemory.
func memoryResult(used, maxmem int64, policy string) Result {
	if maxmem <= 0 {
		return Result{Status: OK, Check: nameMemory,
			Message: fmt.Sprintf("%s used; no maxmemory limit: Redis grows until the host runs out of memory", byteSize(used))}
	}
	share := float64(used) / float64(maxmem)
	msg := fmt.Sprintf("%s used of maxmemory %s (%.0f%%)", byteSize(used), byteSize(maxmem), share*100)
	fix := "raise maxmemory or free memory: "
	if policy == "noeviction" {
		fix += "with noeviction, enqueueing jobs fails with OOM errors once it is full"
	} else {
		fix += "with " + policy + ", Redis starts evicting keys once it is full"
	}
	switch {
	case share > memoryFail:
		return Result{Status: Fail, Check: nameMemory, Message: msg, Fix: fix}
	case share > memoryWarn:
		return Result{Status: Warn, Check: nameMemory, Message: msg, Fix: fix}
	}
	return Result{Status: OK, Check: nameMemory, Message: msg}
}

// maxmemoryText renders a maxmemory setting.
func maxmemoryText(n int64) string {
	if n <= 0 {
		return "0 (no limit)"
	}
	return byteSize(n)
}

// byteSize renders n bytes as "812 B", "1.5 KiB", "3.0 MiB", "2.0 GiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// checkRoundTrip subscribes to a private channel, publishes on it and waits
// for the message, as a running cablecar's probe does.
func checkRoundTrip(ctx context.Context, c goredis.UniversalClient, prefix string) Result {
	var id [8]byte
	_, _ = rand.Read(id[:])
	channel := rails.RedisChannel(prefix, "cablecar/probe/doctor-"+hex.EncodeToString(id[:]))
	fail := func(format string, args ...any) Result {
		return Result{Status: Fail, Check: namePubSub, Message: fmt.Sprintf(format, args...),
			Fix: "Redis pub/sub does not deliver here: point cablecar at Redis itself (CABLECAR_REDIS_URL, _SENTINELS or _CLUSTER_ADDRS), not at a proxy that lacks SUBSCRIBE (twemproxy, some cluster proxies)"}
	}
	ps := c.Subscribe(ctx)
	defer ps.Close()
	if err := ps.Subscribe(ctx, channel); err != nil {
		return fail("SUBSCRIBE: %v", err)
	}
	if _, err := receive[*goredis.Subscription](ctx, ps, roundTripTimeout); err != nil {
		return fail("SUBSCRIBE was not acknowledged within %v: %v", roundTripTimeout, err)
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, redisTimeout)
	err := c.Publish(pctx, channel, `{"cablecar":"doctor"}`).Err()
	cancel()
	if err != nil {
		return fail("PUBLISH: %v", err)
	}
	if _, err := receive[*goredis.Message](ctx, ps, roundTripTimeout); err != nil {
		return fail("a message published on a private channel did not come back within %v: %v", roundTripTimeout, err)
	}
	return Result{Status: OK, Check: namePubSub,
		Message: fmt.Sprintf("a message published on a private channel came back in %v", time.Since(start).Round(10*time.Microsecond))}
}

// receive waits up to timeout for the next pub/sub message of type T,
// skipping pongs and other kinds.
func receive[T any](ctx context.Context, ps *goredis.PubSub, timeout time.Duration) (T, error) {
	var zero T
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return zero, errors.New("timed out")
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return zero, err
		}
		if m, ok := msg.(T); ok {
			return m, nil
		}
	}
}

// channelLister lists the active pub/sub channels matching a pattern, as
// PUBSUB CHANNELS does, over every server that holds subscriptions.
type channelLister func(ctx context.Context, pattern string) ([]string, error)

// checkNodes finds the running cablecar nodes on this Redis by their probe
// channels and compares their prefixes with ours. nodes is -1 when PUBSUB
// CHANNELS is not available.
func checkNodes(ctx context.Context, list channelLister, prefix string) (results []Result, nodes int) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	channels, err := list(ctx, "*cablecar/probe/*")
	if err != nil {
		return []Result{{Status: Skip, Check: nameNodes, Message: "cannot list pub/sub channels: " + err.Error()}}, -1
	}
	byPrefix := map[string]int{}
	for _, ch := range channels {
		if m := probeChannel.FindStringSubmatch(ch); m != nil {
			byPrefix[m[1]]++
			nodes++
		}
	}
	if nodes == 0 {
		return []Result{{Status: OK, Check: nameNodes,
			Message: "no running cablecar is subscribed to this Redis (fine if none is started yet)"}}, 0
	}
	if n := byPrefix[prefix]; n > 0 {
		msg := fmt.Sprintf("%s subscribed with %s", plural(n, "running node"), prefixSetting(prefix))
		if prefix != "" {
			if streams, err := list(ctx, globEscape(prefix)+":*"); err == nil {
				msg += fmt.Sprintf(", %s in use", plural(len(streams)-countProbes(streams), "stream"))
			}
		}
		results = append(results, Result{Status: OK, Check: nameNodes, Message: msg})
	}
	others := make([]string, 0, len(byPrefix))
	for p := range byPrefix {
		if p != prefix {
			others = append(others, p)
		}
	}
	sort.Strings(others)
	for _, p := range others {
		results = append(results, Result{Status: Warn, Check: nameNodes,
			Message: fmt.Sprintf("%s on this Redis subscribed with %s, but this shell has %s", plural(byPrefix[p], "running cablecar node"), prefixSetting(p), prefixSetting(prefix)),
			Fix:     "run doctor with the settings the running cablecar uses, or give that cablecar the channel_prefix from your cable.yml"})
	}
	return results, nodes
}

// countProbes counts the channels that are cablecar probes, not streams.
func countProbes(channels []string) int {
	n := 0
	for _, ch := range channels {
		if strings.Contains(ch, "cablecar/probe/") {
			n++
		}
	}
	return n
}

// globEscape escapes the Redis glob characters in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
