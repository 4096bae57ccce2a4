package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Scenario names accepted in Config.Scenario.
const (
	// ScenarioConnect opens Connections sockets (subscribing each unless
	// NoSubscribe), holds them for Hold, measures and closes them.
	ScenarioConnect = "connect"
	// ScenarioFanout opens and subscribes Connections sockets over Streams
	// streams, then publishes Broadcasts messages to every stream and
	// measures what arrives.
	ScenarioFanout = "fanout"
)

// Defaults, applied by withDefaults to zero fields.
const (
	DefaultURL          = "ws://127.0.0.1:8080/cable"
	DefaultConnections  = 1000
	DefaultConcurrency  = 200
	DefaultStreams      = 1
	DefaultIdentifier   = `{"channel":"BenchChannel","stream":"bench-{i}"}`
	DefaultStream       = "bench-{i}"
	DefaultBroadcasts   = 100
	DefaultRate         = 10
	DefaultWindow       = 8
	DefaultHold         = 2 * time.Second
	DefaultTimeout      = 2 * time.Minute
	DefaultDrainTimeout = 10 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultStreamsClaim = "streams"

	// ServerRoute is the route the default identifier needs on the server:
	// CABLECAR_ROUTES='public:BenchChannel={params.stream}'. With JWTSecret
	// set, 'BenchChannel={params.stream}' works too: every token's streams
	// claim names the connection's stream.
	ServerRoute = "public:BenchChannel={params.stream}"
)

// Limits that bound a run whatever the flags say.
const (
	MaxConnections = 1_000_000
	MaxBroadcasts  = 1_000_000 // per stream
	MaxPayloadSize = 512 << 10
	maxFrameSize   = 4 << 20 // a larger server frame is a failure, not a buffer
)

// Config describes one run. The zero value, with Scenario set, is a valid
// configuration for a fan-out through nothing: Fanout needs RedisURL or
// BroadcastURL. A Config is plain data; Run does not keep it.
type Config struct {
	// Scenario is ScenarioConnect or ScenarioFanout (required).
	Scenario string
	// URL is the cable endpoint (default "ws://127.0.0.1:8080/cable").
	URL string
	// Connections is how many sockets to open (default 1000).
	Connections int
	// Concurrency is how many handshakes may be in flight at once (default
	// 200).
	Concurrency int
	// Streams is how many streams the connections are spread over,
	// connection i subscribing to stream i mod Streams (default 1).
	Streams int
	// Identifier is the subscribe identifier; "{i}" becomes the stream
	// index (default {"channel":"BenchChannel","stream":"bench-{i}"}).
	Identifier string
	// Stream is the broadcasting name the server routes Identifier to,
	// with the same "{i}"; broadcasts go there (default "bench-{i}").
	Stream string
	// NoSubscribe makes the connect scenario open sockets without
	// subscribing (default false: subscribe).
	NoSubscribe bool
	// NormalScheduling keeps the load tool's threads under the default
	// scheduling policy. By default (on Linux) they run as SCHED_BATCH,
	// so that a reader woken by the server's write does not preempt the
	// server on a shared machine (see batchScheduling).
	NormalScheduling bool
	// ReadGoroutines reads each connection on a goroutine of its own.
	// By default (on Linux) a few epoll loops read them all, which costs
	// the load tool less CPU, leaving more to the server it measures.
	ReadGoroutines bool
	// Hold is how long the connect scenario keeps every socket open before
	// measuring the server and closing (default 2s).
	Hold time.Duration

	// Broadcasts is how many messages each stream gets (default 100).
	Broadcasts int
	// Rate is publishing rounds per second, one message per stream per
	// round; negative means as fast as Window allows (default 10).
	Rate float64
	// Window bounds the rounds published but not yet fully delivered when
	// Rate is negative (default 8).
	Window int
	// PayloadSize pads every message to about this many bytes (default 0:
	// the smallest payload, about 60 bytes).
	PayloadSize int
	// Slow is how many extra fan-out connections subscribe (slow connection
	// j to stream j mod Streams) and then never read again, so the server
	// has to disconnect them while the others are measured (default 0).
	// They are not in Connections, the latency or the delivery count; see
	// SlowResult.
	Slow int

	// RedisURL publishes with PUBLISH to Prefix + ":" + stream.
	RedisURL string
	// Prefix is the server's CABLECAR_CHANNEL_PREFIX (default "": none).
	Prefix string
	// BroadcastURL publishes through the server's POST /_broadcast, e.g.
	// "http://127.0.0.1:8080/_broadcast"; used when RedisURL is empty.
	BroadcastURL string
	// BroadcastKey is the server's CABLECAR_BROADCAST_KEY.
	BroadcastKey string
	// BroadcastFormat is how messages reach the server: FormatActionCable
	// (default: PUBLISH to the stream's own channel, or POST /_broadcast
	// with the payload as JSON) or FormatAnyCable (one PUBLISH of the
	// round as a batch to AnyCable's "__anycable__" channel, or a POST with
	// each payload as a JSON string), so that the same run can load
	// AnyCable side by side.
	BroadcastFormat string

	// JWTSecret, when set, mints one HS256 token per connection with sub
	// "bench-<n>" and a streams claim naming its stream (default: no
	// token, the server must allow anonymous connections).
	JWTSecret string
	// StreamsClaim is the server's CABLECAR_STREAMS_CLAIM (default
	// "streams").
	StreamsClaim string

	// Sources are local addresses to dial from, round-robin; each has its
	// own ephemeral port range (default: the kernel picks).
	Sources []string
	// PID is the server's process id; when set, its RSS and CPU time are
	// read from /proc (default 0: not measured).
	PID int

	// Timeout bounds the whole run (default 2m).
	Timeout time.Duration
	// DrainTimeout bounds the wait for deliveries after the last publish
	// and for subscriptions to be confirmed (default 10s).
	DrainTimeout time.Duration
	// DialTimeout bounds one TCP connect plus WebSocket handshake plus
	// welcome (default 10s).
	DialTimeout time.Duration
	// AllowRemote permits non-loopback targets (default false).
	AllowRemote bool
}

func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.URL == "" {
		c.URL = DefaultURL
	}
	def(&c.Connections, DefaultConnections)
	def(&c.Concurrency, DefaultConcurrency)
	def(&c.Streams, DefaultStreams)
	def(&c.Broadcasts, DefaultBroadcasts)
	def(&c.Window, DefaultWindow)
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Identifier == "" {
		c.Identifier = DefaultIdentifier
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.StreamsClaim == "" {
		c.StreamsClaim = DefaultStreamsClaim
	}
	defDur(&c.Hold, DefaultHold)
	defDur(&c.Timeout, DefaultTimeout)
	defDur(&c.DrainTimeout, DefaultDrainTimeout)
	defDur(&c.DialTimeout, DefaultDialTimeout)
	if c.Concurrency > c.Connections {
		c.Concurrency = c.Connections
	}
	return c
}

// Validate reports every problem at once. It expects defaults applied.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Scenario != ScenarioConnect && c.Scenario != ScenarioFanout {
		bad("scenario %q is not %q or %q", c.Scenario, ScenarioConnect, ScenarioFanout)
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		bad("url %q: %v", c.URL, err)
	case u.Scheme != "ws" && u.Scheme != "wss":
		bad("url %q: scheme must be ws or wss", c.URL)
	default:
		errs = append(errs, c.checkLoopback("url", u.Hostname()))
	}
	for _, n := range []struct {
		name      string
		v, lo, hi int
	}{
		{"connections", c.Connections, 1, MaxConnections},
		{"concurrency", c.Concurrency, 1, MaxConnections},
		{"streams", c.Streams, 1, max(c.Connections, 1)},
		{"broadcasts", c.Broadcasts, 1, MaxBroadcasts},
		{"window", c.Window, 1, 1 << 20},
		{"payload-size", c.PayloadSize, 0, MaxPayloadSize},
		{"slow", c.Slow, 0, MaxConnections},
	} {
		if n.v < n.lo || n.v > n.hi {
			bad("%s %d is outside %d…%d", n.name, n.v, n.lo, n.hi)
		}
	}
	if c.Slow > 0 && c.Scenario != ScenarioFanout {
		bad("slow %d: slow subscribers are a fanout option", c.Slow)
	}
	if c.Scenario == ScenarioFanout && c.Streams > c.Connections {
		bad("streams %d is more than connections %d: some streams would have no subscriber", c.Streams, c.Connections)
	}
	if !strings.Contains(c.Identifier, "{i}") && c.Streams > 1 {
		bad("identifier %q has no {i}: every connection would subscribe to the same stream", c.Identifier)
	}
	if !strings.Contains(c.Stream, "{i}") && c.Streams > 1 {
		bad("stream %q has no {i}, but there are %d streams", c.Stream, c.Streams)
	}
	if c.Scenario == ScenarioFanout {
		switch c.BroadcastFormat {
		case "", FormatActionCable, FormatAnyCable:
		default:
			bad("broadcast-format %q: want %s or %s", c.BroadcastFormat, FormatActionCable, FormatAnyCable)
		}
		switch {
		case c.RedisURL == "" && c.BroadcastURL == "":
			bad("fanout needs a publisher: --redis URL (with --prefix) or --broadcast-url URL (with --broadcast-key)")
		case c.RedisURL != "" && c.BroadcastURL != "":
			bad("give --redis or --broadcast-url, not both")
		case c.RedisURL != "":
			if u, err := url.Parse(c.RedisURL); err != nil {
				bad("redis %q: %v", c.RedisURL, err)
			} else {
				errs = append(errs, c.checkLoopback("redis", u.Hostname()))
			}
		default:
			if u, err := url.Parse(c.BroadcastURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				bad("broadcast-url %q is not an http(s) URL", c.BroadcastURL)
			} else {
				errs = append(errs, c.checkLoopback("broadcast-url", u.Hostname()))
			}
		}
	}
	for _, s := range c.Sources {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			bad("source %q is not an IP address", s)
		case !ip.IsLoopback() && !c.AllowRemote:
			bad("source %s is not a loopback address (pass --allow-remote to dial from others)", s)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"drain-timeout", c.DrainTimeout}, {"dial-timeout", c.DialTimeout}, {"hold", c.Hold}} {
		if d.v < 0 {
			bad("%s %v is negative", d.name, d.v)
		}
	}
	if c.PID < 0 {
		bad("pid %d is negative", c.PID)
	}
	return errors.Join(errs...)
}

// checkLoopback refuses a host that is not loopback, unless AllowRemote.
// Names other than localhost are refused too: what they resolve to can
// change between the check and the dial.
func (c Config) checkLoopback(what, host string) error {
	if c.AllowRemote || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w: %s host %q (a load test against another machine needs --allow-remote)", ErrRemoteTarget, what, host)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// expand replaces "{i}" in template with n.
func expand(template string, n int) string {
	return strings.ReplaceAll(template, "{i}", itoa(n))
}
