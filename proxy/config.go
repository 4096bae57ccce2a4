package proxy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config holds the WebSocket server's settings. The env tags carry no
// prefix: cmd/cablecar reads them as CABLECAR_<tag>. The zero value is a
// valid configuration; zero fields take the defaults noted on each field.
type Config struct {
	// Addr is the address the server listens on (default ":8080").
	Addr string `env:"ADDR"`
	// Path is where the cable is mounted (default "/cable").
	Path string `env:"PATH"`
	// PingInterval is how often every connection gets an Action Cable ping;
	// the JS client reconnects after 6 s of silence (default 3s).
	PingInterval time.Duration `env:"PING_INTERVAL"`
	// WriteTimeout bounds one write to a client; a client that cannot take
	// a batch within it is disconnected (default 5s).
	WriteTimeout time.Duration `env:"WRITE_TIMEOUT"`
	// ShutdownTimeout bounds the drain on SIGTERM: every client gets
	// server_restart and a close frame within it (default 30s).
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT"`
	// MaxMessageSize is the largest message a client may send, in bytes;
	// a larger one closes the connection with 1009 (default 65536).
	MaxMessageSize int `env:"MAX_MESSAGE_SIZE"`
	// MaxPendingBytes is how many bytes may wait for one client before it
	// is disconnected as too_slow (default 1048576).
	MaxPendingBytes int `env:"MAX_PENDING_BYTES"`
	// MaxSubscriptions caps subscriptions per connection; the one past it
	// is rejected (default 256).
	MaxSubscriptions int `env:"MAX_SUBSCRIPTIONS"`
	// MaxCommandRate caps commands per second from one connection, with a
	// burst that covers a reconnecting client re-sending all its
	// subscribes (MaxSubscriptions + 16, at least twice the rate); a flood
	// past it closes the connection with 1008 (default 50).
	MaxCommandRate int `env:"MAX_COMMAND_RATE"`
	// AllowedOrigins lists the browser origins allowed to connect:
	// "https://app.example.com" (exact), "https://*.example.com"
	// (subdomains only) or "*". Empty means the Origin must match the Host
	// header, as Rails does; requests without Origin are always allowed.
	AllowedOrigins []string `env:"ALLOWED_ORIGINS"`
	// BroadcastKey enables POST /_broadcast for callers that present it as
	// a Bearer token (default: endpoint disabled).
	BroadcastKey string `env:"BROADCAST_KEY"`
	// OpenBroadcast enables /_broadcast without a key. Only `cablecar dev`
	// sets it, on loopback; it has no environment variable on purpose.
	OpenBroadcast bool
}

// Defaults, applied by withDefaults to zero fields.
const (
	DefaultAddr             = ":8080"
	DefaultPath             = "/cable"
	DefaultPingInterval     = 3 * time.Second
	DefaultWriteTimeout     = 5 * time.Second
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultMaxMessageSize   = 64 << 10
	DefaultMaxPendingBytes  = 1 << 20
	DefaultMaxSubscriptions = 256
	DefaultMaxCommandRate   = 50

	// maxBroadcastBody caps a POST /_broadcast body.
	maxBroadcastBody = 1 << 20
)

func (c Config) withDefaults() Config {
	setDefault(&c.Addr, DefaultAddr)
	setDefault(&c.Path, DefaultPath)
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&c.MaxPendingBytes, DefaultMaxPendingBytes)
	setDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&c.MaxCommandRate, DefaultMaxCommandRate)
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate reports every invalid setting at once, each named by its
// environment variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("CABLECAR_"+name+": "+format, args...))
	}
	if !strings.HasPrefix(c.Path, "/") && c.Path != "" {
		bad("PATH", "%q must start with /", c.Path)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PING_INTERVAL", c.PingInterval}, {"WRITE_TIMEOUT", c.WriteTimeout}, {"SHUTDOWN_TIMEOUT", c.ShutdownTimeout}} {
		if d.v < 0 {
			bad(d.name, "%s must not be negative", d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MAX_MESSAGE_SIZE", c.MaxMessageSize}, {"MAX_PENDING_BYTES", c.MaxPendingBytes}, {"MAX_SUBSCRIPTIONS", c.MaxSubscriptions}, {"MAX_COMMAND_RATE", c.MaxCommandRate}} {
		if n.v < 0 {
			bad(n.name, "%d must not be negative", n.v)
		}
	}
	if _, err := parseOrigins(c.AllowedOrigins); err != nil {
		bad("ALLOWED_ORIGINS", "%v", err)
	}
	return errors.Join(errs...)
}
