package main

import (
	"log/slog"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/adapters/jobs/bullmq"
)

// jobBackendsConfig is every job backend's own settings
// (CABLECAR_JOBS_<BACKEND>_*).
type jobBackendsConfig struct {
	BullMQ bullmq.Config
}

// jobBackends lists the job backends cablecar can watch, in the order they
// start.
func jobBackends(cfg config) []jobBackend {
	b := cfg.JobBackends
	return []jobBackend{
		{name: jobs.BullMQ, configured: b.BullMQ.Configured(), build: func(log *slog.Logger) (jobs.Watcher, error) {
			return bullmq.New(b.BullMQ, log)
		}},
	}
}
