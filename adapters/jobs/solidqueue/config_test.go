package solidqueue

import (
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url, driver, dsn, display, err string
	}{
		{url: "postgres://app:secret@db:5432/app_production", driver: "pgx", dsn: "postgres://app:secret@db:5432/app_production", display: "postgres://app:xxxxx@db:5432/app_production"},
		{url: "postgresql://db/app?sslmode=require", driver: "pgx", dsn: "postgresql://db/app?sslmode=require", display: "postgresql://db/app?sslmode=require"},
		{url: "sqlite:///rails/storage/production_queue.sqlite3", driver: "sqlite", dsn: "file:/rails/storage/production_queue.sqlite3?mode=rw&_pragma=busy_timeout(5000)", display: "sqlite:/rails/storage/production_queue.sqlite3"},
		{url: "sqlite3:storage/queue.sqlite3", driver: "sqlite", dsn: "file:storage/queue.sqlite3?mode=rw&_pragma=busy_timeout(5000)", display: "sqlite:storage/queue.sqlite3"},
		{url: "sqlite3:///my dir/q.sqlite3", driver: "sqlite", dsn: "file:/my%20dir/q.sqlite3?mode=rw&_pragma=busy_timeout(5000)", display: "sqlite:/my dir/q.sqlite3"},
		{url: "sqlite://", err: "no file path"},
		{url: "mysql2://db/app", err: `unknown scheme "mysql2"`},
		{url: "just-a-path", err: "want postgres://"},
	}
	for _, c := range cases {
		src, err := parseURL(c.url)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.url, err, c.err)
			}
			continue
		}
		if err != nil || src.driver != c.driver || src.dsn != c.dsn || src.display != c.display {
			t.Errorf("%s: %+v %v, want %s %s %s", c.url, src, err, c.driver, c.dsn, c.display)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Prefix: "CABLECAR_", Environment: map[string]string{
		"CABLECAR_JOBS_SOLID_QUEUE_URL":             "postgres://db/app",
		"CABLECAR_JOBS_SOLID_QUEUE_POLL_INTERVAL":   "250ms",
		"CABLECAR_JOBS_SOLID_QUEUE_ALIVE_THRESHOLD": "2m",
		"CABLECAR_JOBS_SOLID_QUEUE_TABLE_PREFIX":    "queue.sq_",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Configured() || cfg.URL != "postgres://db/app" || cfg.PollInterval != 250*time.Millisecond ||
		cfg.AliveThreshold != 2*time.Minute || cfg.TablePrefix != "queue.sq_" {
		t.Fatalf("parsed %+v", cfg)
	}
	if err := cfg.withDefaults().validate(); err != nil {
		t.Fatal(err)
	}
	if (Config{URL: "  "}).Configured() {
		t.Error("a blank URL counts as configured")
	}
	d := Config{}.withDefaults()
	if d.PollInterval != time.Second || d.AliveThreshold != 5*time.Minute || d.TablePrefix != "solid_queue_" || d.MaxArgsBytes != 64<<10 {
		t.Errorf("defaults %+v", d)
	}
}

func TestConfigInvalid(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "postgres://db/app", TablePrefix: "x; DROP TABLE y; --"}, "CABLECAR_JOBS_SOLID_QUEUE_TABLE_PREFIX"},
		{Config{URL: "postgres://db/app", PollInterval: -time.Second}, "must not be negative"},
		{Config{URL: "redis://db"}, "unknown scheme"},
	}
	for _, c := range cases {
		_, err := New(c.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
