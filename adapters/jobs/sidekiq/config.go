package sidekiq

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Defaults for the tunables of Config.
const (
	DefaultPollInterval  = time.Second
	DefaultMaxRetryCount = 25
	DefaultSweepCount    = 200
	DefaultMaxJobBytes   = 64 << 10
	DefaultSettle        = 2 * time.Second
	DefaultReadBudget    = 20000
	DefaultMaxRunning    = 2000
)

// Config configures the Sidekiq watcher. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the Redis that Sidekiq uses: redis://[user:password@]host:port[/db]
	// or rediss:// for TLS. It may be the broker's Redis. The database
	// number matters: it must be Sidekiq's (default none: no watcher).
	URL string `env:"JOBS_SIDEKIQ_URL"`
	// Namespace is the redis-namespace prefix of a Sidekiq 6 set up with
	// one; every key is read as "<Namespace>:<key>". Sidekiq 7 and later
	// have no namespaces (default "", none).
	Namespace string `env:"JOBS_SIDEKIQ_NAMESPACE"`
	// PollInterval is how often the watcher reads Redis: a Poll that is
	// not behind returns no sooner than this after it started (default
	// 1s).
	PollInterval time.Duration `env:"JOBS_SIDEKIQ_POLL_INTERVAL"`
	// MaxRetryCount is the highest retry_count the retry set is searched
	// for with Sidekiq's default backoff; set it to the largest `retry:`
	// option of the application's jobs when that exceeds Sidekiq's default
	// of 25. Entries beyond it are still found by the sweep (default 25).
	MaxRetryCount int `env:"JOBS_SIDEKIQ_RETRY_MAX_COUNT"`
	// SweepCount is how many retry set entries the background sweep asks
	// ZSCAN for per poll, to find retries scheduled by a custom
	// sidekiq_retry_in; -1 turns the sweep off (default 200).
	SweepCount int `env:"JOBS_SIDEKIQ_SWEEP_COUNT"`
	// MaxJobBytes is the largest job hash the watcher decodes; a bigger one
	// is skipped and reported as "too_large" (default 65536).
	MaxJobBytes int `env:"JOBS_SIDEKIQ_MAX_JOB_BYTES"`

	// Settle is how far behind Redis's clock the watcher reads the retry
	// and dead sets, so that a failure being written as it polls (and a
	// little clock skew between Sidekiq's hosts) is not passed over; it is
	// also the grace before a job that left a worker's work list counts as
	// completed (default 2s).
	Settle time.Duration
	// ReadBudget bounds the retry set entries one poll reads from the
	// windows; a burst of failures beyond it is passed over and reported
	// as an "overflow" skip (default 20000).
	ReadBudget int
	// MaxRunning bounds the running jobs the cursor remembers, to keep it
	// well under a megabyte; a job listed beyond it is skipped as
	// "too_many_running" (default 2000).
	MaxRunning int
}

// Configured reports whether c names a Redis at all, i.e. whether the
// command should start a Sidekiq watcher. It does not validate c; New does.
func (c Config) Configured() bool { return c.URL != "" }

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxRetryCount == 0 {
		c.MaxRetryCount = DefaultMaxRetryCount
	}
	if c.SweepCount == 0 {
		c.SweepCount = DefaultSweepCount
	}
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = DefaultMaxJobBytes
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.ReadBudget == 0 {
		c.ReadBudget = DefaultReadBudget
	}
	if c.MaxRunning == 0 {
		c.MaxRunning = DefaultMaxRunning
	}
	return c
}

// validate reports every problem of c (defaults applied) at once.
func (c Config) validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("CABLECAR_JOBS_SIDEKIQ_URL is not set"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		// The URL may hold a password: name the problem, not the URL.
		errs = append(errs, errors.New("CABLECAR_JOBS_SIDEKIQ_URL: want redis://[user:password@]host:port[/db] or rediss://…"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("CABLECAR_JOBS_SIDEKIQ_POLL_INTERVAL: %v is negative", c.PollInterval))
	}
	if c.MaxRetryCount < 0 || c.MaxRetryCount > 1000 {
		errs = append(errs, fmt.Errorf("CABLECAR_JOBS_SIDEKIQ_RETRY_MAX_COUNT: %d: want 0..1000", c.MaxRetryCount))
	}
	if c.SweepCount < -1 {
		errs = append(errs, fmt.Errorf("CABLECAR_JOBS_SIDEKIQ_SWEEP_COUNT: %d: want -1 (off) or more", c.SweepCount))
	}
	if c.MaxJobBytes < 0 {
		errs = append(errs, fmt.Errorf("CABLECAR_JOBS_SIDEKIQ_MAX_JOB_BYTES: %d is negative", c.MaxJobBytes))
	}
	if c.Settle < 0 || c.ReadBudget < 0 || c.MaxRunning < 0 {
		errs = append(errs, errors.New("sidekiq: settle, read budget and max running must not be negative"))
	}
	return errors.Join(errs...)
}

// key is a Sidekiq key with the namespace, if any.
func (c Config) key(name string) string {
	if c.Namespace == "" {
		return name
	}
	return c.Namespace + ":" + name
}
