package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/history"
	"github.com/cablecar/cablecar/proxy"
)

// historyConfig is CABLECAR_HISTORY: which streams keep a history for
// clients of the AnyCable extended protocol (docs/history.md).
type historyConfig struct {
	// Rules are "pattern:size:ttl" items separated by "," or ";".
	Rules string `env:"HISTORY"`
}

// startHistory turns history on when CABLECAR_HISTORY is set: the memory
// broker records in this process; with Redis, the node holding the
// recorder lease records in Redis Streams. The function it returns waits
// for the recorder to stop after ctx is done.
func startHistory(ctx context.Context, c historyConfig, broker proxy.Broker, srv *proxy.Server, log *slog.Logger) (func(), error) {
	rules, err := history.ParseRules(c.Rules)
	if err != nil || len(rules) == 0 {
		return func() {}, err
	}
	switch b := broker.(type) {
	case *memory.Broker:
		store := history.NewMemory(rules)
		b.SetHistory(store)
		srv.SetHistory(store, rules)
		return func() {}, nil
	case *redis.Broker:
		h, err := redis.NewHistory(b, rules, log)
		if err != nil {
			return nil, err
		}
		srv.SetHistory(h, rules)
		done := make(chan struct{})
		go func() { defer close(done); _ = h.Run(ctx) }()
		return func() { <-done }, nil
	}
	return nil, errors.New("CABLECAR_HISTORY needs the Redis broker (or the in-memory one): PostgreSQL and Solid Cable keep no stream history")
}
