package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Limits on what the traffic watch remembers and shows.
const (
	// maxExamples is how many channels each finding names.
	maxExamples = 3
	// maxGroups is how many families of mismatched channels are listed.
	maxGroups = 5
	// maxTracked bounds the distinct channels counted per family, so a busy
	// Redis cannot grow the tally without limit.
	maxTracked = 1000
	// channelShown is the longest channel name shown; longer ones are cut.
	channelShown = 80
	// watchBuffer is the go-redis channel size for the watch.
	watchBuffer = 1000
)

// railsInternal is the channel Rails' Redis adapter subscribes to for its
// own bookkeeping.
const railsInternal = "_action_cable_internal"

// envSuffixes end the channel_prefix Rails generates in cable.yml
// (<app>_production) and its usual siblings.
var envSuffixes = []string{"_production", "_development", "_staging", "_test"}

// gidPrefix starts every GlobalID param: base64url("gid://").
const gidPrefix = "Z2lkOi8v"

// kind is what a published message is to this cablecar.
type kind int

const (
	ignored kind = iota // not cable traffic, or cablecar's or Rails' own
	ours                // a broadcast cablecar can see
	foreign             // looks like a broadcast, but on a channel cablecar never reads
)

// origin is where a foreign broadcast seems to come from.
type origin struct {
	prefix string // the publisher's channel_prefix; "" with known: none
	known  bool   // false: it looks like cable traffic, but the prefix cannot be told
}

// classify says what a message on channel is to a cablecar with prefix.
// Evidence that a channel is cable traffic: a Rails-style prefix
// (<app>_production:…), a GlobalID param in a segment (Z2lkOi8v…, what
// stream_for and turbo_stream_from produce), or a JSON payload.
func classify(prefix, channel, payload string) (kind, origin) {
	if isNoise(channel) {
		return ignored, origin{}
	}
	if prefix != "" && strings.HasPrefix(channel, prefix+":") {
		return ours, origin{}
	}
	env := envPrefix(channel)
	strong := env != "" || hasGIDParam(channel)
	if !strong && !isJSONMessage(payload) {
		return ignored, origin{}
	}
	if prefix == "" {
		if env != "" {
			return foreign, origin{prefix: env, known: true}
		}
		return ours, origin{}
	}
	if !strong {
		return foreign, origin{}
	}
	return foreign, guessOrigin(channel, env)
}

// isNoise reports channels that are never broadcasts: cablecar's probes,
// Rails' internal channel, Redis' own (__keyspace@…, __sentinel__…) and
// Celery's results.
func isNoise(channel string) bool {
	return strings.Contains(channel, "cablecar/probe/") ||
		channel == railsInternal || strings.HasSuffix(channel, ":"+railsInternal) ||
		strings.HasPrefix(channel, "__") ||
		strings.HasPrefix(channel, "celery-task-meta-")
}

// envPrefix returns the first segment of channel when it looks like a Rails
// channel_prefix (myapp_production), else "".
func envPrefix(channel string) string {
	first, _, found := strings.Cut(channel, ":")
	if !found {
		return ""
	}
	for _, s := range envSuffixes {
		if strings.HasSuffix(first, s) && len(first) > len(s) {
			return first
		}
	}
	return ""
}

// hasGIDParam reports whether a segment of channel is a GlobalID param.
func hasGIDParam(channel string) bool {
	for _, seg := range strings.Split(channel, ":") {
		if strings.HasPrefix(seg, gidPrefix) {
			return true
		}
	}
	return false
}

// guessOrigin tells a publisher's prefix from a channel with strong
// evidence: myapp_production:… has one; document:Z2lk… and Z2lk…:messages
// have none (the GlobalID comes first or second, so no prefix is in front);
// myapp:document:Z2lk… most likely has "myapp".
func guessOrigin(channel, env string) origin {
	if env != "" {
		return origin{prefix: env, known: true}
	}
	segs := strings.Split(channel, ":")
	if len(segs) < 2 || strings.HasPrefix(segs[0], gidPrefix) || strings.HasPrefix(segs[1], gidPrefix) {
		return origin{known: true}
	}
	return origin{prefix: segs[0], known: true}
}

// isJSONMessage reports a payload that is a JSON object, array or string,
// as Rails' broadcasts (and Turbo's) are.
func isJSONMessage(payload string) bool {
	p := strings.TrimSpace(payload)
	if p == "" || !strings.ContainsRune(`{["`, rune(p[0])) {
		return false
	}
	return json.Valid([]byte(p))
}

// group counts the foreign broadcasts of one origin.
type group struct {
	origin   origin
	count    int
	channels map[string]struct{} // up to maxTracked
	examples []string            // the first maxExamples distinct channels
}

// tally counts what the watch saw. Not safe for concurrent use.
type tally struct {
	prefix  string
	ours    int
	streams map[string]struct{} // distinct channels of ours, up to maxTracked
	ignored int
	groups  map[origin]*group
}

func newTally(prefix string) *tally {
	return &tally{prefix: prefix, streams: map[string]struct{}{}, groups: map[origin]*group{}}
}

// add classifies and counts one message; the payload is not kept.
func (t *tally) add(channel, payload string) {
	k, o := classify(t.prefix, channel, payload)
	switch k {
	case ignored:
		t.ignored++
	case ours:
		t.ours++
		if len(t.streams) < maxTracked {
			t.streams[channel] = struct{}{}
		}
	case foreign:
		g := t.groups[o]
		if g == nil {
			g = &group{origin: o, channels: map[string]struct{}{}}
			t.groups[o] = g
		}
		g.count++
		if _, seen := g.channels[channel]; !seen && len(g.channels) < maxTracked {
			g.channels[channel] = struct{}{}
			if len(g.examples) < maxExamples {
				g.examples = append(g.examples, shorten(channel, channelShown))
			}
		}
	}
}

// checkTrafficFor watches Redis for cfg.Listen and reports whether the
// broadcasts' channels match cfg.ChannelPrefix.
func checkTrafficFor(ctx context.Context, c goredis.UniversalClient, cfg Config, shown string) []Result {
	if cfg.Listen <= 0 {
		return []Result{{Status: Skip, Check: nameTraffic, Message: "not watching (listen time 0)"}}
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "listening %v for broadcasts on %s: publish something now…\n", cfg.Listen, shown)
	}
	t, err := watch(ctx, c, cfg.ChannelPrefix, cfg.Listen)
	return t.results(cfg.Listen, err)
}

// watch PSUBSCRIBEs to every channel for d and tallies what arrives. It is a
// diagnostic: cablecar itself only ever SUBSCRIBEs to exact channels.
func watch(ctx context.Context, c goredis.UniversalClient, prefix string, d time.Duration) (*tally, error) {
	t := newTally(prefix)
	ps := c.PSubscribe(ctx)
	defer ps.Close()
	if err := ps.PSubscribe(ctx, "*"); err != nil {
		return t, fmt.Errorf("PSUBSCRIBE: %w", err)
	}
	if _, err := receive[*goredis.Subscription](ctx, ps, redisTimeout); err != nil {
		return t, fmt.Errorf("PSUBSCRIBE was not acknowledged: %w", err)
	}
	msgs := ps.Channel(goredis.WithChannelSize(watchBuffer))
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-timer.C:
			return t, nil
		case m, ok := <-msgs:
			if !ok {
				return t, errors.New("the subscription closed")
			}
			t.add(m.Channel, m.Payload)
		}
	}
}

// results turns the tally into report lines. stopErr is why the watch ended
// early, if it did.
func (t *tally) results(d time.Duration, stopErr error) []Result {
	var out []Result
	ignoredNote := ""
	if t.ignored > 0 {
		ignoredNote = fmt.Sprintf("; %s on other channels ignored", plural(t.ignored, "message"))
	}
	if t.ours > 0 {
		streams := plural(len(t.streams), "channel")
		if len(t.streams) >= maxTracked {
			streams = fmt.Sprintf("%d+ channels", maxTracked)
		}
		where := "on " + t.prefix + ":*"
		if t.prefix == "" {
			where = "(no CABLECAR_CHANNEL_PREFIX)"
		}
		out = append(out, Result{Status: OK, Check: nameTraffic,
			Message: fmt.Sprintf("%s %s in %v, %s%s", plural(t.ours, "broadcast"), where, d, streams, ignoredNote)})
	}
	groups := make([]*group, 0, len(t.groups))
	for _, g := range t.groups {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].count != groups[j].count {
			return groups[i].count > groups[j].count
		}
		return groups[i].examples[0] < groups[j].examples[0]
	})
	for i, g := range groups {
		if i == maxGroups {
			out = append(out, Result{Status: Warn, Check: nameTraffic,
				Message: fmt.Sprintf("and %s of mismatched channels not listed", plural(len(groups)-maxGroups, "more group")),
				Fix:     "fix the ones above and run doctor again"})
			break
		}
		out = append(out, g.result(t.prefix, t.ours > 0))
	}
	stopped := stopErr != nil && !errors.Is(stopErr, context.Canceled) && !errors.Is(stopErr, context.DeadlineExceeded)
	if stopped {
		out = append(out, Result{Status: Warn, Check: nameTraffic, Message: "the watch stopped early: " + stopErr.Error(),
			Fix: "run doctor again; if PSUBSCRIBE is not allowed for this Redis user, compare the channel names your jobs use with `cablecar stream-name … --redis`"})
	}
	if len(out) == 0 {
		out = append(out, Result{Status: OK, Check: nameTraffic,
			Message: fmt.Sprintf("no broadcasts seen in %v (publish something while doctor listens to check names)%s", d, ignoredNote)})
	}
	return out
}

// result reports one family of broadcasts cablecar never sees. It fails
// when the origin is clear and cablecar saw nothing of its own: the classic
// wrong prefix. Otherwise it warns (another app may share this Redis).
func (g *group) result(prefix string, anyOurs bool) Result {
	res := Result{Status: Warn, Check: nameTraffic}
	if g.origin.known && !anyOurs {
		res.Status = Fail
	}
	eg := "e.g. " + strings.Join(g.examples, ", ")
	n := plural(g.count, "broadcast")
	// Verb forms agree with the count: "1 broadcast does not", "2 do not".
	doNot, look, them := "do not", "look", "them"
	if g.count == 1 {
		doNot, look, them = "does not", "looks", "it"
	}
	p := g.origin.prefix
	switch {
	case prefix == "":
		res.Message = fmt.Sprintf("%s on %s:* (%s) %s prefixed with %s, but CABLECAR_CHANNEL_PREFIX is empty: cablecar subscribes to the streams without it and never sees %s", n, p, eg, look, p, them)
		res.Fix = fmt.Sprintf("set CABLECAR_CHANNEL_PREFIX=%s (the channel_prefix in the app's config/cable.yml)", p)
	case !g.origin.known:
		res.Message = fmt.Sprintf("%s %s like cable traffic (JSON) but %s start with CABLECAR_CHANNEL_PREFIX=%s (%s): cablecar never sees %s", n, look, doNot, prefix, eg, them)
		res.Fix = fmt.Sprintf("if these are meant for cablecar, publish to %s:<stream>; `cablecar stream-name … --redis` prints the exact channel", prefix)
	case p == "":
		res.Message = fmt.Sprintf("%s without a prefix (%s) %s start with CABLECAR_CHANNEL_PREFIX=%s: cablecar never sees %s", n, eg, doNot, prefix, them)
		res.Fix = fmt.Sprintf("the publisher uses no channel_prefix: set channel_prefix: %s in the app's config/cable.yml (other languages: publish to %s:<stream>), or unset CABLECAR_CHANNEL_PREFIX", prefix, prefix)
	default:
		res.Message = fmt.Sprintf("%s on %s:* (%s) %s start with CABLECAR_CHANNEL_PREFIX=%s: cablecar never sees %s", n, p, eg, doNot, prefix, them)
		res.Fix = fmt.Sprintf("set CABLECAR_CHANNEL_PREFIX=%s, or fix channel_prefix in the app's config/cable.yml (it must be %s)", p, prefix)
	}
	if res.Status == Warn {
		res.Fix += ". If another app shares this Redis, ignore this"
	}
	return res
}
