package redis

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/internal/logbuf"
)

// TestRouteClientLogs checks that go-redis's dial failures go to the
// given logger at debug level, and not at all above it.
func TestRouteClientLogs(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Cleanup(func() { // go-redis's logger is per process: print again
		RouteClientLogs(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	})
	for _, tc := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelDebug, true}, {slog.LevelInfo, false}} {
		logs := &logbuf.Buffer{}
		RouteClientLogs(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: tc.level})))
		c := goredis.NewClient(&goredis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("PING to a closed port succeeded")
		}
		cancel()
		_ = c.Close()
		got := logs.String()
		if has := strings.Contains(got, "level=DEBUG msg=\"go-redis: connection pool: failed to dial"); has != tc.want {
			t.Errorf("level %v: dial failure logged %v, want %v; log:\n%s", tc.level, has, tc.want, got)
		}
		if !tc.want && got != "" {
			t.Errorf("level %v: logged %q", tc.level, got)
		}
	}
}
