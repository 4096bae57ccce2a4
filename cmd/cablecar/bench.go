package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/cablecar/cablecar/bench"
)

const benchUsage = `cablecar bench connect|fanout|jobs [flags]: load-test a running cablecar on this machine
cablecar bench table [FILE.json...]: one Markdown table from --json results (stdin without files)

  connect  open --connections sockets (subscribed unless --no-subscribe), hold them, measure
  fanout   subscribe --connections sockets over --streams streams, publish --broadcasts
           rounds (one message per stream each) at --rate rounds/s, measure delivery
  jobs     seed Sidekiq's retry set (or BullMQ's delayed jobs: --backend bullmq) with
           --retry-set entries, write --rate job failures/s for --duration to the Redis
           cablecar watches, count the events it publishes, measure its CPU and RSS (--pid),
           Redis's CPU and the watcher's lag (--admin)
  table    a row per result, in the order given: scripts/bench-sweep makes its table this way

The server needs a route for the identifier, by default
  CABLECAR_ROUTES='` + bench.ServerRoute + `'
Run 'cablecar bench connect -h' or 'cablecar bench fanout -h' for the flags;
docs/benchmarks.md has the scenarios.
`

// benchCmd runs the load generator (package bench) against a running
// server and prints its summary; it fails when the run was not clean.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "table" {
		return benchTable(args[1:], os.Stdin, stdout)
	}
	if len(args) > 0 && args[0] == bench.ScenarioJobs {
		return benchJobs(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != bench.ScenarioConnect && args[0] != bench.ScenarioFanout) {
		fmt.Fprint(stderr, benchUsage)
		return fmt.Errorf("%w: cablecar bench connect|fanout|jobs [flags]", errUsage)
	}
	cfg := bench.Config{Scenario: args[0]}
	fs := flag.NewFlagSet("bench "+cfg.Scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", bench.DefaultURL, "cable endpoint")
	fs.IntVar(&cfg.Connections, "connections", bench.DefaultConnections, "sockets to open")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "handshakes in flight at once")
	fs.IntVar(&cfg.Streams, "streams", bench.DefaultStreams, "streams; connection i subscribes to stream i mod streams")
	fs.StringVar(&cfg.Identifier, "identifier", bench.DefaultIdentifier, "subscribe identifier; {i} is the stream index")
	fs.StringVar(&cfg.Stream, "stream", bench.DefaultStream, "broadcasting name the server routes the identifier to; {i} is the stream index")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "", "mint an HS256 token per connection (streams claim: its stream) with the server's CABLECAR_JWT_SECRET; default: anonymous")
	fs.StringVar(&cfg.StreamsClaim, "streams-claim", bench.DefaultStreamsClaim, "the server's CABLECAR_STREAMS_CLAIM")
	sources := fs.String("sources", "", "local addresses to dial from, round-robin, e.g. 127.0.0.1,127.0.0.2 (each has its own ephemeral port range)")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id: report its RSS and CPU time from /proc")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "bound on the whole run")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", bench.DefaultDrainTimeout, "wait for confirmations, and for deliveries after the last publish")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", bench.DefaultDialTimeout, "bound on one connect + handshake + welcome")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	fs.BoolVar(&cfg.NormalScheduling, "normal-scheduling", false, "keep the load tool at the default scheduling policy instead of SCHED_BATCH (Linux), under which its readers, woken by the server's writes, do not preempt the server on a shared machine")
	fs.BoolVar(&cfg.ReadGoroutines, "read-goroutines", false, "read each connection on a goroutine of its own instead of a few epoll loops (more CPU in the load tool; Linux only has the loops)")
	clientMode := fs.String("client", "", "the load tool's mode: lean (epoll loops, SCHED_BATCH: the default), plain (a goroutine per connection at normal scheduling, as an ordinary client process: --read-goroutines --normal-scheduling) or both (plain, then lean, against the same server)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile here (is the client the bottleneck?)")
	rate := 0.0
	if cfg.Scenario == bench.ScenarioConnect {
		fs.BoolVar(&cfg.NoSubscribe, "no-subscribe", false, "open sockets without subscribing")
		fs.DurationVar(&cfg.Hold, "hold", bench.DefaultHold, "keep every socket open this long before measuring the server")
	} else {
		fs.IntVar(&cfg.Broadcasts, "broadcasts", bench.DefaultBroadcasts, "messages per stream")
		fs.Float64Var(&rate, "rate", bench.DefaultRate, "rounds per second (one message per stream each); 0: as fast as --window allows")
		fs.IntVar(&cfg.Window, "window", bench.DefaultWindow, "with --rate 0: rounds published but not yet fully delivered")
		fs.IntVar(&cfg.PayloadSize, "payload-size", 0, "pad each message to about this many bytes (default: ~60)")
		fs.IntVar(&cfg.Slow, "slow", 0, "extra connections on the same streams that stop reading after the confirm; the server should disconnect them (too_slow, or write_timeout) while the others are measured")
		fs.StringVar(&cfg.RedisURL, "redis", "", "publish to this Redis (the server's CABLECAR_REDIS_URL)")
		fs.StringVar(&cfg.Prefix, "prefix", "", "the server's CABLECAR_CHANNEL_PREFIX")
		fs.StringVar(&cfg.BroadcastURL, "broadcast-url", "", "publish through POST to this URL instead, e.g. http://127.0.0.1:8080/_broadcast")
		fs.StringVar(&cfg.BroadcastKey, "broadcast-key", "", "the server's CABLECAR_BROADCAST_KEY")
		fs.StringVar(&cfg.BroadcastFormat, "broadcast-format", bench.FormatActionCable, "actioncable, or anycable to load AnyCable side by side (Redis: one PUBLISH per round to __anycable__; HTTP: data as a JSON string)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if cfg.Scenario == bench.ScenarioFanout {
		cfg.Rate = rate
		if rate == 0 {
			cfg.Rate = -1 // closed loop
		}
	}
	for s := range strings.SplitSeq(*sources, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Sources = append(cfg.Sources, s)
		}
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	modes, err := clientModes(fs, *clientMode)
	if err != nil {
		return err
	}
	var results []*bench.Result
	for _, mode := range modes {
		c := cfg
		if mode != "" {
			c.ReadGoroutines = mode == bench.ClientPlain
			c.NormalScheduling = mode == bench.ClientPlain
		}
		res, err := bench.Run(ctx, c, progress)
		if err != nil {
			return err
		}
		if !*asJSON {
			res.WriteText(stdout)
		}
		results = append(results, res)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = results
		if len(results) == 1 {
			v = results[0]
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	var unclean []string
	for _, res := range results {
		if res.OK() {
			continue
		}
		msg := fmt.Sprintf("%s client: %d failures, %d/%d connected", res.ClientMode, res.FailuresTotal, res.Connect.Connected, res.Connections)
		if f := res.Fanout; f != nil {
			msg += fmt.Sprintf(", %d/%d delivered", f.Delivered, f.Expected)
		}
		unclean = append(unclean, msg)
	}
	if len(unclean) > 0 {
		return fmt.Errorf("run not clean: %s", strings.Join(unclean, "; "))
	}
	return nil
}

// clientModes reads --client: the modes to run in turn, or one "" that
// leaves --read-goroutines and --normal-scheduling as given. Plain runs
// first in "both", as SCHED_BATCH cannot be taken back from threads the
// runtime keeps.
func clientModes(fs *flag.FlagSet, mode string) ([]string, error) {
	fine := false
	fs.Visit(func(f *flag.Flag) {
		fine = fine || f.Name == "read-goroutines" || f.Name == "normal-scheduling"
	})
	if mode != "" && fine {
		return nil, fmt.Errorf("%w: --client %s sets --read-goroutines and --normal-scheduling; give one or the others", errUsage, mode)
	}
	switch mode {
	case "":
		return []string{""}, nil
	case bench.ClientLean, bench.ClientPlain:
		return []string{mode}, nil
	case "both":
		return []string{bench.ClientPlain, bench.ClientLean}, nil
	}
	return nil, fmt.Errorf("%w: --client %q: want lean, plain or both", errUsage, mode)
}

// benchTable prints the results in files (stdin when none) as one table.
func benchTable(files []string, stdin io.Reader, stdout io.Writer) error {
	var results []bench.Result
	read := func(name string, r io.Reader) error {
		rs, err := bench.ReadResults(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, rs...)
		return nil
	}
	if len(files) == 0 {
		if err := read("stdin", stdin); err != nil {
			return err
		}
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = read(name, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return bench.WriteTable(stdout, results)
}
