package doctor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	redisbroker "github.com/cablecar/cablecar/adapters/redis"
)

// aclCreds names the variables of the master's or the nodes' credentials.
const aclCreds = "CABLECAR_REDIS_USERNAME and CABLECAR_REDIS_PASSWORD"

// sentinelTarget asks the sentinels for the current master, so that every
// later line names the server actually checked. On failure it returns the
// FAIL result instead.
func sentinelTarget(ctx context.Context, rc redisbroker.Config) (target, *Result) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	sentinels := strings.Join(rc.Sentinels, ", ")
	addr, err := rc.SentinelMaster(ctx)
	if err != nil {
		return target{}, &Result{Status: Fail, Check: nameRedis,
			Message: fmt.Sprintf("Sentinel %s: %s", sentinels, strings.ReplaceAll(err.Error(), "\n", "; ")),
			Fix: "check CABLECAR_REDIS_SENTINELS, CABLECAR_REDIS_MASTER_NAME (the name in the sentinels' `sentinel monitor` line), " +
				"CABLECAR_REDIS_SENTINEL_USERNAME and _PASSWORD, and CABLECAR_REDIS_TLS: redis-cli -h HOST -p PORT SENTINEL get-master-addr-by-name " + rc.MasterName}
	}
	return target{
		shown: fmt.Sprintf("master %s at %s (from Sentinel %s)", rc.MasterName, addr, sentinels),
		creds: aclCreds,
	}, nil
}

// checkCluster runs the per-server checks on every master of the cluster,
// one line per master where they differ, then the pub/sub round trip, the
// running nodes and the traffic watch through the cluster client.
func checkCluster(ctx context.Context, cfg Config, rc redisbroker.Config, cc *goredis.ClusterClient) (results []Result, nodes int) {
	t := target{shown: redisShown(rc), creds: aclCreds}
	per, err := perMaster(ctx, cc, func(ctx context.Context, c *goredis.Client, addr string) []Result {
		return checkMaster(ctx, c, target{shown: addr, creds: aclCreds})
	})
	if err != nil {
		return []Result{{Status: Fail, Check: nameRedis, Message: fmt.Sprintf("%s: %v", t.shown, err), Fix: reachFix(err, t)}, skipTraffic}, -1
	}
	addrs := make([]string, 0, len(per))
	for a := range per {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var up []string // masters that answered PING
	var versions []string
	for _, a := range addrs {
		if reach := per[a][0]; reach.Status == Fail {
			results = append(results, reach)
			continue
		}
		up = append(up, a)
		if v := strings.TrimPrefix(per[a][0].Message, a); !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
		per[a] = per[a][1:]
	}
	if len(up) == 0 {
		return append(results, skipTraffic), -1
	}
	results = append([]Result{{Status: OK, Check: nameRedis,
		Message: fmt.Sprintf("%s: %s reachable: %s%s", t.shown, plural(len(up), "master"), strings.Join(up, ", "), strings.Join(versions, ""))}}, results...)
	results = append(results, mergeNodes(up, per)...)
	return checkPubSub(ctx, cfg, cc, clusterChannels(cc), t.shown, results)
}

// checkMaster runs the checks of one server: reachable first (always the
// first result), then the version and memory lines.
func checkMaster(ctx context.Context, c *goredis.Client, t target) []Result {
	reach, server, infoErr := checkReachable(ctx, c, t)
	out := []Result{reach}
	if reach.Status == Fail {
		return out
	}
	if v := versionResult(server, infoErr); v != nil {
		out = append(out, *v)
	}
	return append(out, checkMemory(ctx, c)...)
}

// perMaster runs check on every master, concurrently (ForEachMaster's
// way), and returns the results by address. The error is the cluster's:
// no node answered the slot map.
func perMaster(ctx context.Context, cc *goredis.ClusterClient, check func(context.Context, *goredis.Client, string) []Result) (map[string][]Result, error) {
	var mu sync.Mutex
	out := map[string][]Result{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		addr := c.Options().Addr
		rs := check(ctx, c, addr)
		mu.Lock()
		out[addr] = rs
		mu.Unlock()
		return nil
	})
	return out, err
}

// mergeNodes lists per-node results check by check: a result every node
// gave once, as "all 3 masters: …", the others once per node, prefixed with
// its address.
func mergeNodes(addrs []string, per map[string][]Result) []Result {
	count := map[Result]int{}
	var checks []string
	for _, a := range addrs {
		for _, r := range per[a] {
			count[r]++
			if !slices.Contains(checks, r.Check) {
				checks = append(checks, r.Check)
			}
		}
	}
	var out []Result
	shown := map[Result]bool{}
	for _, check := range checks {
		for _, a := range addrs {
			for _, r := range per[a] {
				switch {
				case r.Check != check || shown[r]:
				case count[r] == len(addrs) && len(addrs) > 1:
					shown[r] = true
					r.Message = fmt.Sprintf("all %d masters: %s", len(addrs), r.Message)
					out = append(out, r)
				default:
					r.Message = a + ": " + r.Message
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// clusterChannels lists the pub/sub channels of every node, masters and
// replicas: PUBSUB CHANNELS only knows the subscriptions of the node it
// runs on, and each cablecar subscribes on one node.
func clusterChannels(cc *goredis.ClusterClient) channelLister {
	return func(ctx context.Context, pattern string) ([]string, error) {
		var mu sync.Mutex
		seen := map[string]struct{}{}
		err := cc.ForEachShard(ctx, func(ctx context.Context, c *goredis.Client) error {
			chans, err := c.PubSubChannels(ctx, pattern).Result()
			if err != nil {
				return fmt.Errorf("%s: %w", c.Options().Addr, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ch := range chans {
				seen[ch] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(seen))
		for ch := range seen {
			out = append(out, ch)
		}
		sort.Strings(out)
		return out, nil
	}
}
