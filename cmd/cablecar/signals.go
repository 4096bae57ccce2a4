package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/cablecar/cablecar/proxy"
	"github.com/cablecar/cablecar/status"
)

// toggleDebugOnSIGUSR1 switches between debug and the level in force
// before, each time the process gets SIGUSR1.
func toggleDebugOnSIGUSR1(ctx context.Context, level *slog.LevelVar, log *slog.Logger) {
	sig := debugSignal()
	if sig == nil {
		return // no SIGUSR1 here; PUT /loglevel still works
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	defer signal.Stop(ch)
	previous := level.Level()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		if level.Level() == slog.LevelDebug {
			if previous == slog.LevelDebug {
				previous = slog.LevelInfo
			}
			level.Set(previous)
		} else {
			previous = level.Level()
			level.Set(slog.LevelDebug)
		}
		log.Warn("log level changed", "level", level.Level().String(), "by", "SIGUSR1")
	}
}

// reconnecter is a broker that counts the connections to its server it
// re-established after losing one (Redis, PostgreSQL, Solid Cable).
type reconnecter interface{ Reconnects() uint64 }

// reconnects exposes the broker's reconnect count to the metrics, or nil
// for a broker without a server.
func reconnects(b proxy.Broker) func() int64 {
	rb, ok := b.(reconnecter)
	if !ok {
		return nil
	}
	return func() int64 { return int64(rb.Reconnects()) }
}

// statusPage is the admin listener's page at "/".
func statusPage() http.Handler { return status.Handler() }

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}
