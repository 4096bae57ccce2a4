package solidcable

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Defaults for Config. PollingInterval and MessageRetention are Solid
// Cable's own defaults (lib/solid_cable.rb: polling_interval 0.1.seconds,
// message_retention 1.day).
const (
	DefaultPollingInterval  = 100 * time.Millisecond
	DefaultMessageRetention = 24 * time.Hour
	DefaultQueryTimeout     = 5 * time.Second
	DefaultBatchSize        = 500
	DefaultLateCommitWindow = 2 * time.Second
)

// Config configures the Solid Cable broker. The env tags lack the CABLECAR_
// prefix, which the command adds. The untagged tunables are for tests and
// embedding; a zero value means the default.
type Config struct {
	// URL is the database that holds Solid Cable's solid_cable_messages
	// table (the "cable" database of config/database.yml):
	// postgres://user:pass@host:5432/db (or postgresql://; pgx options such
	// as sslmode are accepted), sqlite3:///abs/path/production_cable.sqlite3
	// (or sqlite:, or sqlite3:relative/path, relative to cablecar's working
	// directory; the file must exist) or mysql://user:pass@host:3306/db (or
	// mysql2:// or trilogy://). Setting it selects this broker (default
	// none).
	URL string `env:"SOLID_CABLE_URL"`
	// PollingInterval is how often the table is read for new messages,
	// cable.yml's polling_interval (default 100ms, Solid Cable's default).
	PollingInterval time.Duration `env:"SOLID_CABLE_POLLING_INTERVAL"`
	// Trim deletes expired messages the way Solid Cable's autotrim does:
	// after a Publish, with a 2% chance, up to 100 rows older than
	// MessageRetention. Rails' own broadcasts already trim when autotrim
	// is on, so this only matters when cablecar publishes most messages
	// (default false: cablecar never deletes rows).
	Trim bool `env:"SOLID_CABLE_TRIM"`
	// MessageRetention is cable.yml's message_retention: how old a message
	// must be before Trim may delete it (default 24h, Solid Cable's
	// 1.day).
	MessageRetention time.Duration `env:"SOLID_CABLE_MESSAGE_RETENTION"`
	// ChannelPrefix is cable.yml's channel_prefix. Solid Cable applies it
	// as Action Cable's Redis adapter does: a stream's channel column is
	// ChannelPrefix + ":" + stream, or the stream alone when the prefix is
	// empty. Rails 8's generated cable.yml sets none (default "").
	ChannelPrefix string `env:"CHANNEL_PREFIX"`

	// QueryTimeout bounds each database round trip (default 5s).
	QueryTimeout time.Duration
	// BatchSize caps the rows one poll reads; a full batch is followed at
	// once by another poll (default 500).
	BatchSize int
	// LateCommitWindow is how long after a larger id was read a row may
	// still become visible and be delivered: ids are handed out at insert
	// and rows appear at commit, so concurrent writers commit out of id
	// order (default 2s).
	LateCommitWindow time.Duration
}

// Configured reports whether c names a database, i.e. whether the command
// should use this broker. It does not validate c; New does.
func (c Config) Configured() bool { return strings.TrimSpace(c.URL) != "" }

// withDefaults fills every zero setting with its default.
func (c Config) withDefaults() Config {
	if c.PollingInterval == 0 {
		c.PollingInterval = DefaultPollingInterval
	}
	if c.MessageRetention == 0 {
		c.MessageRetention = DefaultMessageRetention
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.LateCommitWindow == 0 {
		c.LateCommitWindow = DefaultLateCommitWindow
	}
	return c
}

// check reports every problem with c (defaults applied) at once.
func (c Config) check() error {
	var errs []error
	if c.PollingInterval < 0 {
		errs = append(errs, fmt.Errorf("CABLECAR_SOLID_CABLE_POLLING_INTERVAL: %v is negative", c.PollingInterval))
	}
	if c.MessageRetention < 0 {
		errs = append(errs, fmt.Errorf("CABLECAR_SOLID_CABLE_MESSAGE_RETENTION: %v is negative", c.MessageRetention))
	}
	if c.QueryTimeout < 0 || c.BatchSize < 0 || c.LateCommitWindow < 0 {
		errs = append(errs, errors.New("solid_cable: query timeout, batch size and late commit window must not be negative"))
	}
	return errors.Join(errs...)
}

// database is where a URL points: the database/sql driver and its DSN.
type database struct {
	kind   kind
	driver string // registered database/sql driver name
	dsn    string
	where  string // for messages: host and database, or file; no password
}

// kind is the SQL dialect.
type kind int

const (
	kindPostgres kind = iota
	kindSQLite
	kindMySQL
)

// parseURL maps a Rails-style database URL to a driver and DSN.
func parseURL(raw string) (database, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return database{}, errors.New("CABLECAR_SOLID_CABLE_URL is not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return database{}, fmt.Errorf("CABLECAR_SOLID_CABLE_URL: %w", redact(err))
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		return database{kind: kindPostgres, driver: "pgx", dsn: raw, where: u.Host + u.Path}, nil
	case "sqlite", "sqlite3":
		return sqliteDatabase(u)
	case "mysql", "mysql2", "trilogy":
		return mysqlDatabase(u)
	}
	return database{}, fmt.Errorf("CABLECAR_SOLID_CABLE_URL: scheme %q: want postgres://, sqlite3:/path or mysql://", u.Scheme)
}

// sqliteDatabase accepts sqlite3:///abs/path, sqlite3:relative/path and
// sqlite3://localhost/abs/path. The file is opened read-write and never
// created: a mistyped path must not yield an empty database.
func sqliteDatabase(u *url.URL) (database, error) {
	path := u.Opaque
	if path == "" {
		if u.Host != "" && u.Host != "localhost" {
			return database{}, fmt.Errorf("CABLECAR_SOLID_CABLE_URL: SQLite is a local file, not on host %q (sqlite3:///abs/path)", u.Host)
		}
		path = u.Path
	}
	if path == "" {
		return database{}, errors.New("CABLECAR_SOLID_CABLE_URL: no SQLite file (sqlite3:///abs/path/production_cable.sqlite3)")
	}
	path = filepath.Clean(path)
	// busy_timeout: wait for Rails' writers rather than fail the poll.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=rw&_pragma=busy_timeout(5000)"
	return database{kind: kindSQLite, driver: "sqlite", dsn: dsn, where: path}, nil
}

// mysqlDatabase maps mysql://user:pass@host:port/db to go-sql-driver's DSN.
func mysqlDatabase(u *url.URL) (database, error) {
	c := mysql.NewConfig()
	c.Net = "tcp"
	c.Addr = u.Host
	if u.Port() == "" && u.Host != "" {
		c.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:3306"
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" {
		return database{}, errors.New("CABLECAR_SOLID_CABLE_URL: no database name (mysql://user:pass@host:3306/app_production_cable)")
	}
	return database{kind: kindMySQL, driver: "mysql", dsn: c.FormatDSN(), where: c.Addr + "/" + c.DBName}, nil
}

// redact keeps a password in a URL out of an error message.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Err.Error())
	}
	return err
}
