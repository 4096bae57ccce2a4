package celery

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults for the tunables of Config.
const (
	DefaultKeyPrefix  = "celery-task-meta-"
	DefaultBlock      = time.Second
	DefaultSweepCount = 1000
	DefaultSeenMax    = 10000
	DefaultBuffer     = 10000
	DefaultBatch      = 1000
	DefaultMaxValue   = 64 << 10
	DefaultIdleStop   = 10 * time.Second
	DefaultSkew       = time.Minute
	DefaultGrace      = 5 * time.Second
)

// Config configures the Celery watcher. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the Redis of Celery's result backend (its result_backend
	// setting): redis://[user:password@]host:port[/db] or rediss:// for
	// TLS. The database number matters: results live in that database,
	// though Redis's pub/sub, which the watcher also uses, spans all of
	// them. Setting it turns the watcher on (default none).
	URL string `env:"JOBS_CELERY_URL"`
	// KeyPrefix starts the key of every task result; the channel each
	// result is published to has the same name (default
	// "celery-task-meta-").
	KeyPrefix string `env:"JOBS_CELERY_KEY_PREFIX" envDefault:"celery-task-meta-"`

	// Block is how long one Poll waits for a result (default 1s).
	Block time.Duration
	// SweepCount is the COUNT of the one SCAN step each Poll makes over
	// the result keys (default 1000).
	SweepCount int
	// SeenMax caps how many finished results the cursor remembers to
	// avoid reporting one twice (default 10000).
	SeenMax int
	// Buffer caps the results received by the subscription and not yet
	// polled; more are dropped and left to the sweep (default 10000).
	Buffer int
	// Batch caps the events of one Poll (default 1000).
	Batch int
	// MaxValue caps the size in bytes of one result; a larger one is
	// skipped as "too_large" (default 64 KiB).
	MaxValue int
	// IdleStop ends the subscription when no Poll came for this long,
	// as when this node lost the lease (default 10s).
	IdleStop time.Duration
	// Skew is the clock difference allowed between Celery's workers and
	// this node; it must exceed Grace (default 1 minute).
	Skew time.Duration
	// Grace is how old a finished result must be before the sweep
	// reports it, leaving the subscription, which keeps a task's states
	// in order, the first word (default 5s).
	Grace time.Duration
}

// Configured reports whether c turns the watcher on (URL set). It does not
// validate c; New does.
func (c Config) Configured() bool { return c.URL != "" }

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	setD(&c.Block, DefaultBlock)
	setD(&c.IdleStop, DefaultIdleStop)
	setD(&c.Skew, DefaultSkew)
	setD(&c.Grace, DefaultGrace)
	set(&c.SweepCount, DefaultSweepCount)
	set(&c.SeenMax, DefaultSeenMax)
	set(&c.Buffer, DefaultBuffer)
	set(&c.Batch, DefaultBatch)
	set(&c.MaxValue, DefaultMaxValue)
	return c
}

// options checks c and returns go-redis options for URL.
func (c Config) options() (*goredis.Options, error) {
	if c.URL == "" {
		return nil, errors.New("CABLECAR_JOBS_CELERY_URL is not set")
	}
	if c.Grace >= c.Skew {
		return nil, fmt.Errorf("celery watcher: Grace %v must be shorter than Skew %v", c.Grace, c.Skew)
	}
	opts, err := goredis.ParseURL(c.URL)
	if err != nil {
		// url.Error repeats the URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("CABLECAR_JOBS_CELERY_URL: %w (want redis://[user:password@]host:port[/db] or rediss://…)", err)
	}
	opts.ClientName = "cablecar-jobs-celery"
	if opts.DialerRetries == 0 {
		// A Redis that is down is reported by the Poll that finds it so;
		// the runner backs off and calls again.
		opts.DialerRetries = 1
	}
	return opts, nil
}
