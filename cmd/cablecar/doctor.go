package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/admin"
	diag "github.com/cablecar/cablecar/doctor"
)

// quietRedis drops go-redis' own log lines ("connection pool: failed to
// dial…"): the report already says what failed, with what to do.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// doctor checks the settings, Redis and a running cablecar, prints OK, WARN,
// FAIL or SKIP per finding with what to do, and fails when any check fails.
func doctor(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	listen := fs.Duration("listen", 5*time.Second, "how long to watch Redis for broadcasts and check their channel names (0 skips)")
	healthURL := fs.String("url", "", "running cablecar's base URL for /health (default http://127.0.0.1:<port of CABLECAR_ADDR>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *listen < 0 {
		return fmt.Errorf("%w: cablecar doctor [--listen 5s] [--url URL] [--json]", errUsage)
	}
	// A bad value is reported as a failed check; the rest is still checked
	// with whatever did parse.
	cfg, loadErr := loadConfig(nil)
	goredis.SetLogger(quietRedis{}) // this process only runs doctor
	dcfg := diag.Config{
		LoadErr:       loadErr,
		Auth:          cfg.Auth,
		Redis:         cfg.Redis,
		Postgres:      cfg.Postgres,
		SolidCable:    cfg.SolidCable,
		ChannelPrefix: cfg.Redis.ChannelPrefix,
		Listen:        *listen,
		HealthURL:     baseURL(*healthURL, cfg.Proxy.Addr),
	}
	if !*asJSON {
		dcfg.Progress = stdout
	}
	jobCfg, closeJobs := doctorJobs(cfg)
	defer closeJobs()
	dcfg.Jobs = jobCfg
	report := diag.Run(ctx, dcfg)
	var err error
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if n := report.Count(diag.Fail); n > 0 {
		if n == 1 {
			return errors.New("1 check failed")
		}
		return fmt.Errorf("%d checks failed", n)
	}
	return nil
}

// doctorJobs builds the job watchers to check, without running them.
func doctorJobs(cfg config) (diag.Jobs, func()) {
	var j diag.Jobs
	watchers, err := newWatchers(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		j.WatchersErr = err
		return j, func() {}
	}
	j.Watchers = watchers
	j.Mapping, j.MappingErr = jobs.ParseMapping(cfg.Jobs.Streams, cfg.Jobs.StreamsFile, cfg.Auth.GIDApp)
	if cfg.Admin.Enabled() {
		addr := cfg.Admin.Addr
		if addr == "" {
			addr = admin.DefaultAddr
		}
		j.AdminURL, j.AdminToken = "http://"+addr, cfg.Admin.Token
	}
	return j, func() {
		for _, w := range watchers {
			_ = w.Close()
		}
	}
}
