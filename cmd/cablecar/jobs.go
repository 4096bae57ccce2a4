package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
)

// jobWatch is the job watchers of one process, ready to run.
type jobWatch struct {
	runners  jobs.Group
	replayer *jobs.Replayer
	close    func()
}

// newJobWatch builds a runner for every configured job backend, over a
// store that matches the broker: Redis (leases and exactly-once publishing
// shared by every node) when the broker is Redis, else this process alone.
// It returns nil when no backend is configured.
func newJobWatch(cfg config, broker proxy.Broker, a *auth.Auth, log *slog.Logger) (*jobWatch, error) {
	watchers, err := newWatchers(cfg, log)
	if err != nil || len(watchers) == 0 {
		return nil, err
	}
	closeWatchers := func() {
		for _, w := range watchers {
			_ = w.Close()
		}
	}
	jw, err := assembleJobWatch(cfg, watchers, broker, a, log)
	if err != nil {
		closeWatchers()
		return nil, err
	}
	prev := jw.close
	jw.close = func() { closeWatchers(); prev() }
	return jw, nil
}

func assembleJobWatch(cfg config, watchers []jobs.Watcher, broker proxy.Broker, a *auth.Auth, log *slog.Logger) (*jobWatch, error) {
	mapping, err := jobs.ParseMapping(cfg.Jobs.Streams, cfg.Jobs.StreamsFile, cfg.Auth.GIDApp)
	if err != nil {
		return nil, err
	}
	if mapping.Empty() {
		return nil, errors.New("a job backend is watched but CABLECAR_JOB_STREAMS names no stream: add rules such as 'ProcessDocumentJob=document:{gid:Document:args.0}' or '*=job:{job_id}'")
	}
	store, closeStore, err := newJobStore(cfg, broker)
	if err != nil {
		return nil, err
	}
	opts := jobs.RunnerOptions{LeaseTTL: cfg.Jobs.LeaseTTL, ErrorMessages: cfg.Jobs.ErrorMessages, Log: log}
	jw := &jobWatch{close: closeStore, replayer: &jobs.Replayer{Store: store, OptsIn: a.Replays, Log: log}}
	for _, w := range watchers {
		jw.runners = append(jw.runners, jobs.NewRunner(w, store, mapping, opts))
	}
	return jw, nil
}

// newJobStore shares leases, cursors and last states through the broker's
// Redis, or keeps them in this process for the other brokers.
func newJobStore(cfg config, broker proxy.Broker) (jobs.Store, func(), error) {
	if brokerName(cfg, false) != "redis" {
		return jobs.NewMemoryStore(broker, cfg.Jobs.StateTTL), func() {}, nil
	}
	if len(cfg.Redis.ClusterAddrs) > 0 {
		return nil, nil, errors.New("job watchers need one Redis server (CABLECAR_REDIS_URL or Sentinel) to publish exactly once: a Redis Cluster is not supported for them yet")
	}
	client, err := cfg.Redis.NewClient("cablecar-jobs")
	if err != nil {
		return nil, nil, fmt.Errorf("job store: %w", err)
	}
	store := jobs.NewRedisStore(client, jobs.RedisStoreOptions{KeyPrefix: cfg.Jobs.KeyPrefix,
		ChannelPrefix: cfg.Redis.ChannelPrefix, StateTTL: cfg.Jobs.StateTTL, Sharded: cfg.Redis.ShardedPubSub})
	return store, func() { _ = client.Close() }, nil
}

// newWatchers builds the watcher of every configured backend.
func newWatchers(cfg config, log *slog.Logger) ([]jobs.Watcher, error) {
	var out []jobs.Watcher
	var probs []error
	for _, b := range jobBackends(cfg) {
		if !b.configured {
			continue
		}
		w, err := b.build(log)
		if err != nil {
			probs = append(probs, err)
			continue
		}
		out = append(out, w)
	}
	if len(probs) > 0 {
		for _, w := range out {
			_ = w.Close()
		}
		return nil, errors.Join(probs...)
	}
	return out, nil
}

// jobBackend is one watchable backend as configured.
type jobBackend struct {
	name       string
	configured bool
	build      func(log *slog.Logger) (jobs.Watcher, error)
}

// run starts the runners; they stop with ctx, and close waits for them.
func (jw *jobWatch) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		jw.runners.Run(ctx)
	}()
	prev := jw.close
	jw.close = func() { <-done; prev() }
}

// stats lists the runners' counters for metrics and the status page.
func (jw *jobWatch) stats() []*jobs.Stats {
	if jw == nil {
		return nil
	}
	out := make([]*jobs.Stats, len(jw.runners))
	for i, r := range jw.runners {
		out[i] = r.Stats()
	}
	return out
}
