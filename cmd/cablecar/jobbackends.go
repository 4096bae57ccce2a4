package main

import (
	"log/slog"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/adapters/jobs/bullmq"
	"github.com/cablecar/cablecar/adapters/jobs/celery"
	"github.com/cablecar/cablecar/adapters/jobs/sidekiq"
	"github.com/cablecar/cablecar/adapters/jobs/solidqueue"
)

// jobBackendsConfig is every job backend's own settings
// (CABLECAR_JOBS_<BACKEND>_*).
type jobBackendsConfig struct {
	Sidekiq    sidekiq.Config
	BullMQ     bullmq.Config
	Celery     celery.Config
	SolidQueue solidqueue.Config
}

// jobBackends lists the job backends cablecar can watch, in the order they
// start.
func jobBackends(cfg config) []jobBackend {
	b := cfg.JobBackends
	return []jobBackend{
		{name: jobs.Sidekiq, configured: b.Sidekiq.Configured(), build: func(log *slog.Logger) (jobs.Watcher, error) {
			return sidekiq.New(b.Sidekiq, log)
		}},
		{name: jobs.BullMQ, configured: b.BullMQ.Configured(), build: func(log *slog.Logger) (jobs.Watcher, error) {
			return bullmq.New(b.BullMQ, log)
		}},
		{name: jobs.Celery, configured: b.Celery.Configured(), build: func(log *slog.Logger) (jobs.Watcher, error) {
			return celery.New(b.Celery, log)
		}},
		{name: jobs.SolidQueue, configured: b.SolidQueue.Configured(), build: func(log *slog.Logger) (jobs.Watcher, error) {
			return solidqueue.New(b.SolidQueue, log)
		}},
	}
}
