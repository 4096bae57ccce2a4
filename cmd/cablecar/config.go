package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/adapters/perform"
	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/admin"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/proxy"
	"github.com/cablecar/cablecar/upstream"
)

// envPrefix starts every setting's name.
const envPrefix = "CABLECAR_"

// config is every setting, read from CABLECAR_* variables.
type config struct {
	Proxy proxy.Config
	Auth  auth.Config
	Redis redis.Config
	// Postgres selects Action Cable's postgresql adapter (LISTEN/NOTIFY).
	Postgres postgres.Config
	// SolidCable reads broadcasts from Solid Cable's table (Rails 8).
	SolidCable solidcable.Config
	Admin      admin.Config
	// Upstream turns on sidecar proxy mode.
	Upstream upstream.Config
	// Jobs is what every job-backend watcher shares (CABLECAR_JOB_*).
	Jobs jobs.Config
	// JobBackends are the watched backends (CABLECAR_JOBS_<BACKEND>_*).
	JobBackends jobBackendsConfig
	// Perform forwards client actions (CABLECAR_PERFORM_*).
	Perform perform.Config
	// History keeps stream history for AnyCable extended-protocol clients.
	History historyConfig
	Log     logConfig
}

// logConfig sets up log/slog.
type logConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `env:"LOG_LEVEL" envDefault:"info"`
	// Format is text or json (default text).
	Format string `env:"LOG_FORMAT" envDefault:"text"`
}

// loadConfig reads the environment. A bad value is reported with the
// variable's name.
func loadConfig(environ map[string]string) (config, error) {
	var cfg config
	opts := env.Options{Prefix: envPrefix}
	if environ != nil {
		opts.Environment = environ
	}
	if err := env.ParseWithOptions(&cfg, opts); err != nil {
		return cfg, nameVariables(err, &cfg)
	}
	cfg.Proxy.AllowedOrigins = trimList(cfg.Proxy.AllowedOrigins)
	cfg.Auth.JWTPublicKeyFiles = trimList(cfg.Auth.JWTPublicKeyFiles)
	return cfg, nil
}

// nameVariables rewrites env's per-field errors to name the variable a
// person would set, e.g. "CABLECAR_PING_INTERVAL: invalid duration". env
// reports only the field's name; where several structs share it (URL,
// PollInterval), every variable it may be is named.
func nameVariables(err error, cfg *config) error {
	vars := map[string][]string{}
	for _, v := range envVars(reflect.TypeOf(cfg).Elem()) {
		vars[v.field] = append(vars[v.field], v.name)
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && len(vars[pe.Name]) > 0 {
			e = fmt.Errorf("%s: %w", strings.Join(vars[pe.Name], " or "), pe.Err)
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// envVar is one setting: the struct field that holds it and its variable.
type envVar struct{ field, name string }

// envVars lists every setting of t, nested structs included.
func envVars(t reflect.Type) []envVar {
	var out []envVar
	for f := range t.Fields() {
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			out = append(out, envVars(f.Type)...)
			continue
		}
		if tag, _, _ := strings.Cut(f.Tag.Get("env"), ","); tag != "" {
			out = append(out, envVar{field: f.Name, name: envPrefix + tag})
		}
	}
	return out
}

func trimList(list []string) []string {
	out := list[:0]
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// newLogger builds the process logger; level can change at run time.
func newLogger(c logConfig, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("CABLECAR_LOG_LEVEL: %q is not one of debug, info, warn, error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.Format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), level, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), level, nil
	}
	return nil, nil, fmt.Errorf("CABLECAR_LOG_FORMAT: %q is not text or json", c.Format)
}
