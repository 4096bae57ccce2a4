package redis

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults for the tunables of Config.
const (
	DefaultProbeInterval = time.Second
	DefaultProbeTimeout  = 3 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 5 * time.Second
)

// Config configures the Redis broker. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS; go-redis query options such as dial_timeout are
	// accepted. The database number does not matter for pub/sub (default
	// none: required).
	URL string `env:"REDIS_URL"`
	// ChannelPrefix is Rails' cable.yml channel_prefix. A stream's Redis
	// channel is ChannelPrefix + ":" + stream, or the stream alone when the
	// prefix is empty (default "", no prefix).
	ChannelPrefix string `env:"CHANNEL_PREFIX"`

	// ProbeInterval is how often a probe is published on this node's
	// private channel to prove that pub/sub delivery works (default 1s).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// broker reports itself unhealthy and replaces its subscriber
	// connection (default 3s).
	ProbeTimeout time.Duration
	// BackoffMin is the wait before the first reconnect attempt; it doubles
	// after each failed attempt, with jitter (default 100ms).
	BackoffMin time.Duration
	// BackoffMax caps the wait between reconnect attempts (default 5s).
	BackoffMax time.Duration
}

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

// options checks c (defaults applied) and returns go-redis options for it.
// Every problem is reported at once.
func (c Config) options() (*goredis.Options, error) {
	var errs []error
	var opts *goredis.Options
	if c.URL == "" {
		errs = append(errs, errors.New("CABLECAR_REDIS_URL is not set"))
	} else {
		var err error
		if opts, err = goredis.ParseURL(c.URL); err != nil {
			// url.Error repeats the whole URL, password included: keep
			// only its reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			errs = append(errs, fmt.Errorf("CABLECAR_REDIS_URL: %w (want redis://[user:password@]host:port[/db] or rediss://…)", err))
		}
	}
	if c.ProbeInterval < 0 || c.ProbeTimeout < 0 {
		errs = append(errs, errors.New("redis: probe interval and timeout must not be negative"))
	}
	if c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("redis: backoff %v..%v: want 0 <= min <= max", c.BackoffMin, c.BackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}
