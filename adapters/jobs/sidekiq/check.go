package sidekiq

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Check reports, for `cablecar doctor`, whether Sidekiq's Redis answers,
// its version, the sizes of the keys the watcher reads, the Sidekiq
// versions its processes announce, and a warning when no process has a
// live heartbeat (then no job can be seen running, completed or lost).
// It reads only sizes and the processes' own hashes, never a whole set.
func (w *Watcher) Check(ctx context.Context) ([]string, error) {
	info, err := w.rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil, fmt.Errorf("sidekiq: redis unreachable: %w", err)
	}
	lines := []string{"sidekiq: redis " + infoField(info, "redis_version") + " reachable"}
	sizes, err := w.keySizes(ctx)
	if err != nil {
		return nil, err
	}
	lines = append(lines, sizes...)
	procs, err := w.checkProcesses(ctx)
	if err != nil {
		return nil, err
	}
	return append(lines, procs...), nil
}

// keySizes describes the processes, retry and dead keys.
func (w *Watcher) keySizes(ctx context.Context) ([]string, error) {
	var lines []string
	for _, k := range []struct{ name, kind string }{{"processes", "set"}, {"retry", "zset"}, {"dead", "zset"}} {
		key := w.cfg.key(k.name)
		typ, err := w.rdb.Type(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("sidekiq: type of %s: %w", key, err)
		}
		switch typ {
		case "none":
			lines = append(lines, fmt.Sprintf("sidekiq: key %q does not exist (yet): wrong URL, database or namespace, or no Sidekiq has used it", key))
			continue
		case k.kind:
		default:
			lines = append(lines, fmt.Sprintf("sidekiq: key %q is a %s, want a %s: not Sidekiq's", key, typ, k.kind))
			continue
		}
		var n int64
		if k.kind == "set" {
			n, err = w.rdb.SCard(ctx, key).Result()
		} else {
			n, err = w.rdb.ZCard(ctx, key).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("sidekiq: size of %s: %w", key, err)
		}
		lines = append(lines, fmt.Sprintf("sidekiq: %s %q has %d entries", k.kind, key, n))
	}
	return lines, nil
}

// checkProcesses reads each listed process's heartbeat hash.
func (w *Watcher) checkProcesses(ctx context.Context) ([]string, error) {
	procs, err := w.rdb.SMembers(ctx, w.cfg.key("processes")).Result()
	if err != nil {
		return nil, fmt.Errorf("sidekiq: read processes: %w", err)
	}
	if len(procs) > maxProcesses {
		procs = procs[:maxProcesses]
	}
	cmds := make([]*goredis.SliceCmd, len(procs))
	_, err = w.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, id := range procs {
			cmds[i] = pipe.HMGet(ctx, w.cfg.key(id), "info", "beat")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sidekiq: read process heartbeats: %w", err)
	}
	live := 0
	var newest float64
	var versions []string
	for _, c := range cmds {
		v := c.Val()
		if len(v) != 2 || v[1] == nil {
			continue // heartbeat key expired: the process is gone
		}
		live++
		if beat, ok := parseScore(fmt.Sprint(v[1])); ok && beat > newest {
			newest = beat
		}
		ver := "6.x or older (no version in its info)"
		var pi struct {
			Version string `json:"version"`
		}
		if s, ok := v[0].(string); ok && json.Unmarshal([]byte(s), &pi) == nil && pi.Version != "" {
			ver = pi.Version
		}
		if !slices.Contains(versions, ver) {
			versions = append(versions, ver)
		}
	}
	sort.Strings(versions)
	if live == 0 {
		return []string{fmt.Sprintf("sidekiq: WARNING: no Sidekiq process has a live heartbeat (%d listed): running, completed and lost cannot be seen until one runs", len(procs))}, nil
	}
	ago := time.Since(seconds(newest)).Round(time.Second)
	return []string{
		fmt.Sprintf("sidekiq: %d live process(es), newest heartbeat %v ago", live, ago),
		"sidekiq: version(s) seen in process info: " + strings.Join(versions, ", "),
	}, nil
}

// infoField picks one field out of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "(version unknown)"
}
