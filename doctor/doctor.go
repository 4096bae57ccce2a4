package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/cablecar/cablecar/adapters/postgres"
	redisbroker "github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/auth"
)

// The check names, as the report shows them.
const (
	nameConfig    = "settings"
	nameKeys      = "jwt keys"
	nameToken     = "sample token"
	nameRoutes    = "routes"
	nameRedis     = "redis reachable"
	nameVersion   = "redis version"
	namePolicy    = "redis maxmemory-policy"
	nameMemory    = "redis memory"
	namePubSub    = "redis pub/sub"
	nameNodes     = "cablecar nodes"
	nameTraffic   = "broadcast names"
	nameHealth    = "running cablecar"
	nameInterrupt = "interrupted"
)

// Config is what Run checks: the settings a cablecar would run with and where
// a running one answers. cmd/cablecar builds it from the CABLECAR_*
// variables. The zero value checks an empty configuration (which fails: no
// JWT key) and skips Redis, the traffic watch and /health.
type Config struct {
	// LoadErr is the error reading the settings gave, if any. Run reports
	// it as a failure and checks whatever did parse (default nil).
	LoadErr error
	// Auth is the JWT, Turbo and route settings, as auth.New takes them.
	Auth auth.Config
	// Redis is the CABLECAR_REDIS_* settings as the broker takes them:
	// doctor connects exactly as the broker would (URL, Sentinel or
	// Cluster; ACL users; TLS). When it names no Redis, RedisURL is used;
	// when neither does, the in-memory broker is reported and the Redis
	// checks are skipped (default: none).
	Redis redisbroker.Config
	// RedisURL is a short form for Redis with only URL set (default "").
	RedisURL string
	// Postgres is the PostgreSQL LISTEN/NOTIFY broker's settings; when
	// its URL is set (and Redis is not), its database is checked instead
	// of Redis (default: none).
	Postgres postgres.Config
	// SolidCable is the Solid Cable broker's settings; when its URL is set
	// (and neither Redis nor Postgres is), its database and table are
	// checked, read-only (default: none).
	SolidCable solidcable.Config
	// ChannelPrefix is CABLECAR_CHANNEL_PREFIX (default "", no prefix).
	ChannelPrefix string
	// Listen is how long to watch Redis for broadcasts and compare their
	// channels with ChannelPrefix; 0 skips the watch (default 0).
	Listen time.Duration
	// HealthURL is the base URL of a running cablecar, e.g.
	// "http://127.0.0.1:8080"; "" skips the /health check (default "").
	HealthURL string
	// Jobs is the job watchers' settings; with no watcher the job checks
	// are one SKIP line (default: none).
	Jobs Jobs
	// Progress, when set, gets a line before a slow step (the traffic
	// watch), so a person knows to wait and can publish something
	// (default nil: silent).
	Progress io.Writer
}

// Run runs every check in order and returns the report. It does not stop at
// the first failure. When ctx is cancelled it stops after the current step
// and adds a SKIP line saying so. Run is safe to call concurrently with
// different Configs.
func Run(ctx context.Context, cfg Config) *Report {
	r := &Report{}
	r.Add(checkSettings(cfg.LoadErr)...)
	r.Add(checkAuth(cfg.Auth)...)
	nodes, shown := -1, ""
	if rc := cfg.redisConfig(); rc.Configured() {
		var rs []Result
		rs, nodes, shown = checkRedisAll(ctx, cfg, rc)
		r.Add(rs...)
	} else {
		r.Add(cfg.checkDatabase(ctx)...)
	}
	if err := ctx.Err(); err != nil {
		r.Add(Result{Status: Skip, Check: nameInterrupt, Message: "stopped before the remaining checks: " + err.Error()})
		return r
	}
	r.Add(checkJobs(ctx, cfg.Jobs)...)
	if cfg.HealthURL == "" {
		r.Add(Result{Status: Skip, Check: nameHealth, Message: "no URL to check"})
		return r
	}
	health := checkHealthURL(ctx, cfg.HealthURL)
	r.Add(health)
	if health.Status == OK && nodes == 0 {
		r.Add(Result{Status: Warn, Check: nameHealth,
			Message: fmt.Sprintf("it answers, but no cablecar is subscribed to %s: the running one uses another CABLECAR_REDIS_URL, or none (the in-memory broker), so jobs publishing here never reach it", shown),
			Fix:     "give the running cablecar the CABLECAR_REDIS_URL your jobs publish to, and restart it"})
	}
	return r
}

// checkDatabase checks the database broker the settings name, or says
// the in-memory broker is in use.
func (cfg Config) checkDatabase(ctx context.Context) []Result {
	switch {
	case cfg.Postgres.Configured():
		return checkPostgres(ctx, cfg.Postgres)
	case cfg.SolidCable.Configured():
		return checkSolidCable(ctx, cfg.SolidCable)
	}
	return []Result{memoryBrokerLine()}
}

// redisConfig returns the Redis settings to check: Redis, or RedisURL
// when Redis names none.
func (cfg Config) redisConfig() redisbroker.Config {
	rc := cfg.Redis
	if !rc.Configured() && cfg.RedisURL != "" {
		rc.URL = cfg.RedisURL
	}
	return rc
}

// checkSettings reports whether the settings parsed; one FAIL per problem.
func checkSettings(loadErr error) []Result {
	if loadErr == nil {
		return []Result{{Status: OK, Check: nameConfig, Message: "CABLECAR_* settings parse"}}
	}
	var out []Result
	for _, msg := range errorLines(loadErr) {
		out = append(out, Result{Status: Fail, Check: nameConfig, Message: msg,
			Fix: "fix the variable named here (README: Settings); `cablecar serve` refuses to start until then. The checks below use the settings that did parse"})
	}
	return out
}

// errorLines splits an error (errors.Join puts one per line) into one
// message per line.
func errorLines(err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// redactURL returns raw with any password replaced by "xxxxx", or a
// placeholder when it does not parse (its text could hold a password).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// urlErrReason strips the URL from a *url.Error, which repeats it verbatim,
// password included.
func urlErrReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// plural returns "1 broadcast" or "3 broadcasts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// shorten cuts s to at most n runes, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// prefixSetting names the configured prefix for messages.
func prefixSetting(prefix string) string {
	if prefix == "" {
		return "no CABLECAR_CHANNEL_PREFIX"
	}
	return "CABLECAR_CHANNEL_PREFIX=" + prefix
}
