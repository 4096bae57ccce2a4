package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cablecar/cablecar/bench"
)

// benchJobs runs the job watcher benchmark (bench.RunJobs) against a
// running server and the Redis it watches; it fails when the run was not
// clean.
func benchJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.JobsConfig
	fs := flag.NewFlagSet("bench jobs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "cablecar bench jobs --redis URL [flags]: the cost of watching Sidekiq or BullMQ\n\n"+
			"The server watches the same Redis (CABLECAR_JOBS_SIDEKIQ_URL, or CABLECAR_JOBS_BULLMQ_URL with\n"+
			"CABLECAR_JOBS_BULLMQ_QUEUES=bench) with\n  CABLECAR_JOB_STREAMS='%s'\n"+
			"and its events go to the stream %q, which this tool subscribes to.\n\n", bench.JobsStreamRule, bench.JobsStream)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Backend, "backend", bench.DefaultJobsBackend, "job backend whose writes are imitated: sidekiq (retry set failures) or bullmq (failures moved to delayed, on the queue's events stream)")
	fs.StringVar(&cfg.Queue, "queue", bench.DefaultJobsQueue, "bullmq: the queue (the server's CABLECAR_JOBS_BULLMQ_QUEUES)")
	fs.StringVar(&cfg.BullMQPrefix, "bullmq-prefix", bench.DefaultBullMQPrefix, "bullmq: the key prefix (the server's CABLECAR_JOBS_BULLMQ_PREFIX)")
	fs.StringVar(&cfg.RedisURL, "redis", "", "the Redis the server watches and publishes to (required)")
	fs.StringVar(&cfg.Prefix, "prefix", "", "the server's CABLECAR_CHANNEL_PREFIX")
	fs.StringVar(&cfg.Namespace, "namespace", "", "the server's CABLECAR_JOBS_SIDEKIQ_NAMESPACE")
	fs.BoolVar(&cfg.Reset, "reset", false, "delete the retry set before seeding (a Redis of the benchmark's own only)")
	fs.IntVar(&cfg.RetrySet, "retry-set", bench.DefaultRetrySet, "entries to seed before measuring: Sidekiq's retry set, or BullMQ's delayed jobs (0: none)")
	fs.IntVar(&cfg.Rate, "rate", bench.DefaultJobRate, "job failures written per second")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultJobDuration, "how long to write them")
	fs.IntVar(&cfg.BadEvery, "bad-every", 0, "make every K-th written entry bad: malformed JSON, an unknown class, huge arguments, in turn")
	fs.IntVar(&cfg.HugeBytes, "huge-bytes", bench.DefaultHugeBytes, "size of a huge entry's argument")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id: report its CPU and RSS from /proc")
	fs.StringVar(&cfg.AdminURL, "admin", "", "the server's admin listener, e.g. http://127.0.0.1:9090: report the watcher's lag and bad-data counters")
	fs.DurationVar(&cfg.Drain, "drain-timeout", bench.DefaultJobDrain, "wait for deliveries after the last write")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on the whole run (default duration + drain + 5m)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (default: random)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if cfg.RetrySet == 0 {
		cfg.RetrySet = -1 // RunJobs reads 0 as the default
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	res, err := bench.RunJobs(ctx, cfg, progress)
	if res == nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		res.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("run not clean: %s", strings.Join(res.Problems, "; "))
	}
	return nil
}
