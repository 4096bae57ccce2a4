package bullmq

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults for the tunables of Config.
const (
	DefaultPrefix   = "bull"
	DefaultBlock    = time.Second
	DefaultCount    = 500
	DefaultMaxValue = 64 << 10
)

// Config configures the BullMQ watcher. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the Redis that BullMQ uses: redis://[user:password@]host:port[/db]
	// or rediss:// for TLS. Setting it turns the watcher on (default none).
	URL string `env:"JOBS_BULLMQ_URL"`
	// Queues are the names of the queues to watch, comma separated in the
	// environment, as given to BullMQ's Queue and Worker (default none;
	// required with URL).
	Queues []string `env:"JOBS_BULLMQ_QUEUES"`
	// Prefix is BullMQ's key prefix, the prefix option of Queue and Worker
	// (default "bull").
	Prefix string `env:"JOBS_BULLMQ_PREFIX" envDefault:"bull"`

	// Block is how long one Poll waits for news (default 1s).
	Block time.Duration
	// Count caps the stream entries one Poll reads per queue (default 500).
	Count int
	// MaxValue caps the size in bytes of a job's data and of a progress
	// value; a larger one is skipped as "too_large" (default 64 KiB).
	MaxValue int
}

// Configured reports whether c turns the watcher on (URL set). It does not
// validate c; New does.
func (c Config) Configured() bool { return c.URL != "" }

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Block <= 0 {
		c.Block = DefaultBlock
	}
	if c.Count <= 0 {
		c.Count = DefaultCount
	}
	if c.MaxValue <= 0 {
		c.MaxValue = DefaultMaxValue
	}
	return c
}

// options checks c and returns go-redis options for URL and the cleaned
// queue names. Every problem is reported at once.
func (c Config) options() (*goredis.Options, []string, error) {
	var errs []error
	var opts *goredis.Options
	if c.URL == "" {
		errs = append(errs, errors.New("CABLECAR_JOBS_BULLMQ_URL is not set"))
	} else {
		var err error
		if opts, err = goredis.ParseURL(c.URL); err != nil {
			// url.Error repeats the URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			errs = append(errs, fmt.Errorf("CABLECAR_JOBS_BULLMQ_URL: %w (want redis://[user:password@]host:port[/db] or rediss://…)", err))
		}
	}
	var queues []string
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if q = strings.TrimSpace(q); q != "" && !seen[q] {
			seen[q] = true
			queues = append(queues, q)
		}
	}
	if len(queues) == 0 {
		errs = append(errs, errors.New("CABLECAR_JOBS_BULLMQ_QUEUES is not set (the queue names, comma separated)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	opts.ClientName = "cablecar-jobs-bullmq"
	if opts.DialerRetries == 0 {
		// A Redis that is down is reported by the Poll that finds it
		// so; the runner backs off and calls again.
		opts.DialerRetries = 1
	}
	return opts, queues, nil
}
