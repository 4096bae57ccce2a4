package solidqueue

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults for the settings and tunables of Config.
const (
	DefaultPollInterval   = time.Second
	DefaultAliveThreshold = 5 * time.Minute // Solid Queue's process_alive_threshold
	DefaultTablePrefix    = "solid_queue_"
	DefaultSettle         = 5 * time.Second
	DefaultMaxArgsBytes   = 64 << 10
	DefaultMaxErrorBytes  = 1 << 20
	DefaultBatchSize      = 500
	DefaultMaxEvents      = 2000
	DefaultMaxHoles       = 256
	DefaultMaxSeen        = 20000
	DefaultRoundTimeout   = 30 * time.Second
)

// Config configures the Solid Queue watcher. The env tags lack the
// CABLECAR_ prefix, which the command adds. The untagged tunables are for
// tests and embedding; a zero value means the default.
type Config struct {
	// URL is the database that holds Solid Queue's tables:
	// postgres://user:password@host:port/db (or postgresql://; any pgx
	// connection option is accepted), or sqlite:///absolute/path.sqlite3,
	// sqlite3:relative/path.sqlite3. A SQLite file must exist; it is only
	// read (default none: the watcher is off).
	URL string `env:"JOBS_SOLID_QUEUE_URL"`
	// PollInterval is how often the tables are read (default 1s).
	PollInterval time.Duration `env:"JOBS_SOLID_QUEUE_POLL_INTERVAL"`
	// AliveThreshold is how long a Solid Queue process may go without a
	// heartbeat before the jobs it claimed are reported lost. Match Solid
	// Queue's process_alive_threshold (default 5m, Solid Queue's default).
	AliveThreshold time.Duration `env:"JOBS_SOLID_QUEUE_ALIVE_THRESHOLD"`
	// TablePrefix is the prefix of Solid Queue's tables; a schema may be
	// named too, as "queue.solid_queue_" (default "solid_queue_").
	TablePrefix string `env:"JOBS_SOLID_QUEUE_TABLE_PREFIX"`

	// Settle is how long ids skipped over and finished jobs already
	// reported are remembered, to catch rows whose transaction committed
	// late (default 5s).
	Settle time.Duration
	// MaxArgsBytes caps a job's serialized arguments; a larger job is
	// skipped as too_large (default 64 KiB).
	MaxArgsBytes int
	// MaxErrorBytes caps a failed execution's error JSON (default 1 MiB).
	MaxErrorBytes int
	// BatchSize is the row limit of one query (default 500).
	BatchSize int
	// MaxEvents caps the events of one stream in one poll; the rest come
	// in the next poll, without waiting (default 2000).
	MaxEvents int
	// MaxHoles caps the skipped-over ids remembered per table (default 256).
	MaxHoles int
	// MaxSeen caps the finished jobs remembered within the settle window,
	// and the lost claims remembered (default 20000).
	MaxSeen int
	// RoundTimeout bounds one poll's queries, so that a database that
	// stops answering (rather than refusing) is an error too (default 30s).
	RoundTimeout time.Duration
}

// Configured reports whether c names a database at all, i.e. whether the
// command should start this watcher. It does not validate c; New does.
func (c Config) Configured() bool { return strings.TrimSpace(c.URL) != "" }

// withDefaults fills every zero setting with its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.AliveThreshold, DefaultAliveThreshold)
	def(&c.Settle, DefaultSettle)
	def(&c.RoundTimeout, DefaultRoundTimeout)
	defInt(&c.MaxArgsBytes, DefaultMaxArgsBytes)
	defInt(&c.MaxErrorBytes, DefaultMaxErrorBytes)
	defInt(&c.BatchSize, DefaultBatchSize)
	defInt(&c.MaxEvents, DefaultMaxEvents)
	defInt(&c.MaxHoles, DefaultMaxHoles)
	defInt(&c.MaxSeen, DefaultMaxSeen)
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
	return c
}

// prefixPattern keeps the prefix safe to splice into SQL: identifiers
// only, optionally schema-qualified.
var prefixPattern = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$`)

// validate reports every problem of c (defaults applied) at once.
func (c Config) validate() error {
	var errs []error
	if c.PollInterval < 0 || c.AliveThreshold < 0 || c.Settle < 0 || c.RoundTimeout < 0 {
		errs = append(errs, errors.New("solid queue: poll interval, alive threshold, settle and timeout must not be negative"))
	}
	if c.MaxArgsBytes < 0 || c.MaxErrorBytes < 0 || c.BatchSize < 0 || c.MaxEvents < 0 || c.MaxHoles < 0 || c.MaxSeen < 0 {
		errs = append(errs, errors.New("solid queue: limits must not be negative"))
	}
	if !prefixPattern.MatchString(c.TablePrefix + "jobs") {
		errs = append(errs, fmt.Errorf("CABLECAR_JOBS_SOLID_QUEUE_TABLE_PREFIX %q: want letters, digits and _ (and one . after a schema)", c.TablePrefix))
	}
	return errors.Join(errs...)
}

// source is a parsed URL: the database/sql driver and its data source.
type source struct {
	driver  string // "pgx" or "sqlite"
	dsn     string
	display string // the URL without its password, for messages
}

// parseURL maps the URL onto a driver. SQLite files are opened read-write
// without create (mode=rw) so that a wrong path is an error, not a new
// empty database.
func parseURL(raw string) (source, error) {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return source{}, fmt.Errorf("CABLECAR_JOBS_SOLID_QUEUE_URL %q: want postgres://… or sqlite:///path", raw)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			return source{}, fmt.Errorf("CABLECAR_JOBS_SOLID_QUEUE_URL: %w", err)
		}
		return source{driver: "pgx", dsn: raw, display: u.Redacted()}, nil
	case "sqlite", "sqlite3":
		path, _, _ := strings.Cut(rest, "?")
		if strings.HasPrefix(path, "//") {
			path = path[2:] // sqlite:///abs → /abs; sqlite://rel → rel
		}
		if path == "" {
			return source{}, fmt.Errorf("CABLECAR_JOBS_SOLID_QUEUE_URL %q: no file path", raw)
		}
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=rw&_pragma=busy_timeout(5000)"
		return source{driver: "sqlite", dsn: dsn, display: "sqlite:" + path}, nil
	}
	return source{}, fmt.Errorf("CABLECAR_JOBS_SOLID_QUEUE_URL %q: unknown scheme %q (want postgres, postgresql, sqlite or sqlite3)", raw, scheme)
}
