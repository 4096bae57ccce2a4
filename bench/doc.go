// Package bench is cablecar's load generator: it opens many Action Cable
// WebSocket connections against a running server, subscribes them, publishes
// through Redis or POST /_broadcast, and measures what arrives. The
// `cablecar bench` command is a thin wrapper around Run; docs/benchmarks.md
// has the scenarios and the figures.
//
// # Scenarios
//
// ScenarioConnect opens Config.Connections sockets, Concurrency handshakes at
// a time, waits for every welcome (and confirm_subscription unless
// NoSubscribe), holds them for Hold and reads the server's RSS: the memory an
// idle subscribed connection costs. ScenarioFanout subscribes connection i to
// stream i mod Streams, then publishes Broadcasts rounds of one message per
// stream at Rate rounds a second (or, with a negative Rate, as fast as a
// window of Window undelivered rounds allows: the throughput ceiling), and
// waits for every delivery.
//
// With Config.Slow, that many more connections subscribe and then stop
// reading (slow.go): the server must disconnect them while the normal
// subscribers' latency is measured.
//
// The server needs a route for the subscribe identifier. For the default
// identifier {"channel":"BenchChannel","stream":"bench-{i}"} that is
// CABLECAR_ROUTES='public:BenchChannel={params.stream}' (ServerRoute). With
// Config.JWTSecret each connection gets its own HS256 token whose streams
// claim names its stream, so the non-public route works too.
//
// # Measurements
//
// Every payload carries the publisher's timestamp (nanoseconds since the run
// started, on the monotonic clock of this process) and the round number, so
// latency is publish → frame read, misrouted and reordered messages are
// caught, and a broadcast from another run is ignored. Latencies go into a
// lock-free log-linear histogram (1.6% precision). With Config.PID the
// server's VmRSS and CPU time are read from /proc before and after each phase.
//
// # Keeping the client out of the way
//
// Each connection has one reader goroutine that parses frames in place from a
// 1 KiB buffer: no allocation per message. The run raises its own
// RLIMIT_NOFILE soft limit to the hard limit, spreads connections over
// Config.Sources (each loopback address has its own ephemeral port range),
// and closes with SO_LINGER 0 so no TIME_WAIT is left behind to exhaust the
// ports of the next run.
//
// # Safety
//
// Targets (the cable URL, Redis and the broadcast URL) must be loopback
// addresses unless Config.AllowRemote is set. Every run is bounded by
// Config.Timeout, the connection count by the open-file limit and
// MaxConnections, and the waits for confirmation and delivery by
// DrainTimeout.
package bench
