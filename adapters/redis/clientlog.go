package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// RouteClientLogs sends go-redis's own log lines (such as "connection
// pool: failed to dial after 1 attempts") to log at debug level instead of
// stderr. While Redis is down go-redis prints one per failed dial, many a
// second; the broker already logs the outage once, with its cause, and
// Health reports it. go-redis keeps one logger per process, so call this
// once, from main.
func RouteClientLogs(log *slog.Logger) {
	goredis.SetLogger(clientLog{log})
}

// clientLog adapts slog to go-redis's logging interface.
type clientLog struct{ log *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.log.DebugContext(ctx, "go-redis: "+strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
