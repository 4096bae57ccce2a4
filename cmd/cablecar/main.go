// Command cablecar is a Rails-compatible WebSocket sidecar: it holds the
// browsers' Action Cable connections and fans out what jobs publish to
// Redis. Run `cablecar help` for the subcommands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `cablecar — Action Cable-compatible WebSocket sidecar

Usage:
  cablecar [serve]                 run the sidecar (settings from CABLECAR_* variables)
  cablecar dev                     run it for development: in-memory broker, loopback only,
                                   anonymous connections, a console page at /
  cablecar publish STREAM JSON     publish one message (to Redis when CABLECAR_REDIS_URL is
                                   set, else to a running cablecar's /_broadcast)
  cablecar token --sub ID [--streams 'a:*,b'] [--ttl 1h]
                                   mint a development JWT with CABLECAR_JWT_SECRET
  cablecar stream-name --channel DocumentChannel --gid Document:123
                                   print the broadcasting name Rails would use
  cablecar trace STREAM… | --channel DocumentChannel --gid Document:123
                                   follow streams live: time, size, preview, subscribers reached
  cablecar healthcheck             exit 0 when the local cablecar's /health says ok
  cablecar bench connect|fanout [--connections N] [--streams N] [--redis URL | --broadcast-url URL] …
                                   load-test a cablecar on this machine (docs/benchmarks.md)
  cablecar doctor [--listen 5s] [--url URL] [--json]
                                   check settings, Redis, channel names and /health; say what to fix
  cablecar help                    this text

Every setting is documented in the README.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, false, stderr)
	case "dev":
		err = serve(ctx, true, stderr)
	case "publish":
		err = publish(ctx, args, stdout)
	case "token":
		err = token(args, stdout)
	case "stream-name":
		err = streamName(args, stdout)
	case "trace":
		err = traceCmd(ctx, args, stdout, stderr)
	case "healthcheck":
		err = healthcheck(ctx, stdout)
	case "bench":
		err = benchCmd(ctx, args, stdout, stderr)
	case "doctor":
		err = doctor(ctx, args, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cablecar: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "cablecar %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
