package postgres

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults for the tunables of Config.
const (
	DefaultPingInterval = 5 * time.Second
	DefaultPingTimeout  = 3 * time.Second
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
	// connectTimeout bounds one connection attempt when the URL sets no
	// connect_timeout of its own.
	connectTimeout = 10 * time.Second
)

// Config configures the PostgreSQL broker. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the PostgreSQL database the Rails app's Action Cable uses
	// (adapter: postgresql in config/cable.yml, which takes the app's
	// Active Record database): postgres://user:password@host:port/db, with
	// libpq query options such as sslmode and connect_timeout, or a
	// key=value DSN. It must be the same database as the app's: NOTIFY
	// reaches only listeners connected to the same database. Setting it
	// selects this broker (default none).
	URL string `env:"POSTGRES_URL"`
	// ChannelPrefix is Rails' cable.yml channel_prefix. A stream's
	// PostgreSQL channel is ChannelPrefix + ":" + stream, or the stream
	// alone when the prefix is empty, hashed as Rails does when longer
	// than 63 bytes (default "", no prefix).
	ChannelPrefix string `env:"CHANNEL_PREFIX"`

	// PingInterval is how long the listening connection may sit idle
	// before the broker checks it with a round trip (default 5s).
	PingInterval time.Duration
	// PingTimeout is how long that round trip may take before the
	// connection is given up and replaced (default 3s).
	PingTimeout time.Duration
	// BackoffMin is the wait before the first reconnect attempt; it doubles
	// after each failed attempt, with jitter (default 100ms).
	BackoffMin time.Duration
	// BackoffMax caps the wait between reconnect attempts (default 5s).
	BackoffMax time.Duration
}

// Configured reports whether c names a database, i.e. whether the command
// should use this broker. It does not validate c; New does.
func (c Config) Configured() bool { return c.URL != "" }

// withDefaults fills every zero tunable with its default.
func (c Config) withDefaults() Config {
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

// parse checks the URL and returns the configuration of the listening
// connection and of the publishing pool.
func (c Config) parse() (*pgx.ConnConfig, *pgxpool.Config, error) {
	if c.URL == "" {
		return nil, nil, fmt.Errorf("postgres: no URL (set CABLECAR_POSTGRES_URL)")
	}
	listen, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: CABLECAR_POSTGRES_URL: %w", err)
	}
	pool, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: CABLECAR_POSTGRES_URL: %w", err)
	}
	// Names in pg_stat_activity, as Rails names its listener
	// "ActionCable-PID-<pid>"; an application_name in the URL wins.
	if _, set := listen.RuntimeParams["application_name"]; !set {
		listen.RuntimeParams["application_name"] = "cablecar-listen"
	}
	if _, set := pool.ConnConfig.RuntimeParams["application_name"]; !set {
		pool.ConnConfig.RuntimeParams["application_name"] = "cablecar"
	}
	return listen, pool, nil
}
