// Package perform forwards client actions — what a page sends with
// subscription.perform — to the app's workers, in any language: as entries
// of a Redis Stream (RedisStream) or as signed HTTP POSTs to a hook
// (HTTPHook). Both implement proxy.Performer. docs/perform.md describes
// the entries, the body and the signature.
package perform

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/proxy"
)

// Defaults of Config.
const (
	DefaultStreamMaxLen = 100000
	DefaultTimeout      = 5 * time.Second
)

// Config selects where client actions go: a Redis Stream, an HTTP hook, or
// (neither set) nowhere, as before. The env tags lack the CABLECAR_ prefix,
// which the command adds.
type Config struct {
	// Stream is the Redis Stream that gets one entry per action (XADD), on
	// the broker's Redis (CABLECAR_REDIS_*) (default none).
	Stream string `env:"PERFORM_STREAM"`
	// StreamMaxLen trims the stream to about this many entries (XADD
	// MAXLEN ~) (default 100000).
	StreamMaxLen int64 `env:"PERFORM_STREAM_MAXLEN"`
	// URL is an http:// or https:// URL that gets one JSON POST per action
	// (default none).
	URL string `env:"PERFORM_URL"`
	// Timeout bounds one POST to URL (default 5s).
	Timeout time.Duration `env:"PERFORM_TIMEOUT"`
	// Secret, when set, signs each POST: X-Cablecar-Signature is
	// "sha256=" + hex HMAC-SHA256(Secret, body) (default none: unsigned).
	Secret string `env:"PERFORM_SECRET"`
	// Workers is how many actions are forwarded at once; one connection's
	// actions stay in order (default 4).
	Workers int `env:"PERFORM_WORKERS"`
	// Queue is how many actions may wait to be forwarded; past it they are
	// dropped and counted (default 1024).
	Queue int `env:"PERFORM_QUEUE"`
}

// Enabled reports whether actions are forwarded at all.
func (c Config) Enabled() bool { return c.Stream != "" || c.URL != "" }

// Options returns the queue's size for proxy.Server.SetPerformer.
func (c Config) Options() proxy.PerformOptions {
	return proxy.PerformOptions{Workers: c.Workers, Queue: c.Queue}
}

// Validate reports every problem at once; redisSet says whether the broker
// is Redis (CABLECAR_REDIS_* set).
func (c Config) Validate(redisSet bool) error {
	var errs []error
	if c.Stream != "" && c.URL != "" {
		errs = append(errs, errors.New("CABLECAR_PERFORM_STREAM and CABLECAR_PERFORM_URL are both set: client actions go to one of them; unset the other"))
	}
	if c.Stream != "" && !redisSet {
		errs = append(errs, errors.New("CABLECAR_PERFORM_STREAM needs the broker's Redis: set CABLECAR_REDIS_URL (or _SENTINELS, _CLUSTER_ADDRS)"))
	}
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("CABLECAR_PERFORM_URL %q is not an http:// or https:// URL", c.URL))
		}
	}
	if c.Secret != "" && c.URL == "" {
		errs = append(errs, errors.New("CABLECAR_PERFORM_SECRET signs CABLECAR_PERFORM_URL's requests, which is not set"))
	}
	if c.StreamMaxLen < 0 || c.Timeout < 0 || c.Workers < 0 || c.Queue < 0 {
		errs = append(errs, errors.New("CABLECAR_PERFORM_STREAM_MAXLEN, _TIMEOUT, _WORKERS and _QUEUE must not be negative"))
	}
	return errors.Join(errs...)
}

// New checks c and returns the Performer it names, or nil when it names
// none. The Closer releases the Redis client; it is never nil.
func New(c Config, rcfg redis.Config) (proxy.Performer, io.Closer, error) {
	if err := c.Validate(rcfg.Configured()); err != nil {
		return nil, nil, err
	}
	switch {
	case c.Stream != "":
		client, err := rcfg.NewClient("cablecar-perform")
		if err != nil {
			return nil, nil, fmt.Errorf("perform stream: %w", err)
		}
		return NewRedisStream(client, c.Stream, c.StreamMaxLen), client, nil
	case c.URL != "":
		return NewHTTPHook(c.URL, c.Secret, c.Timeout), nopCloser{}, nil
	}
	return nil, nopCloser{}, nil
}

// causeError names the cause of a failure for the server's once-per-cause
// log (proxy.PerformCauser).
type causeError struct {
	cause string
	err   error
}

func (e *causeError) Error() string        { return e.err.Error() }
func (e *causeError) Unwrap() error        { return e.err }
func (e *causeError) PerformCause() string { return e.cause }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
