package jobs

import "time"

// Config is what every job watcher shares. The env tags lack the
// CABLECAR_ prefix, which the command adds. Each backend's own settings
// (CABLECAR_JOBS_SIDEKIQ_URL, …) live in its package.
type Config struct {
	// Streams maps job classes to streams: `ClassName=template[,…]` rules
	// separated by ";" or newlines, and `*=template` for every other class
	// (see Mapping). Required when a backend is watched (default none).
	Streams string `env:"JOB_STREAMS"`
	// StreamsFile holds more rules, one per line, "#" comments (default
	// none).
	StreamsFile string `env:"JOB_STREAMS_FILE"`
	// StateTTL is how long the last job event of each stream is kept for
	// subscriptions that arrive later (routes written "replay:")
	// (default 1h).
	StateTTL time.Duration `env:"JOB_STATE_TTL" envDefault:"1h"`
	// ErrorMessages puts exceptions' messages in events. Off by default:
	// messages can carry internals (SQL, paths, personal data); the error
	// class is always sent.
	ErrorMessages bool `env:"JOB_ERROR_MESSAGES"`
	// LeaseTTL is how long a node's lease on a backend outlives its last
	// renewal: the longest another node waits to take over from one that
	// died (default 5s).
	LeaseTTL time.Duration `env:"JOBS_LEASE_TTL" envDefault:"5s"`
	// KeyPrefix starts the Redis keys of leases, cursors and last states
	// (default "cablecar:jobs:").
	KeyPrefix string `env:"JOBS_KEY_PREFIX" envDefault:"cablecar:jobs:"`
}
