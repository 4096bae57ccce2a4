package solidcable

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url                string
		kind               kind
		driver, dsn, where string
		err                string
	}{
		{url: "postgres://app:s3cret@db:5432/app_cable?sslmode=disable", kind: kindPostgres, driver: "pgx",
			dsn: "postgres://app:s3cret@db:5432/app_cable?sslmode=disable", where: "db:5432/app_cable"},
		{url: "postgresql://db/app_cable", kind: kindPostgres, driver: "pgx", dsn: "postgresql://db/app_cable", where: "db/app_cable"},
		{url: "sqlite3:///rails/storage/production_cable.sqlite3", kind: kindSQLite, driver: "sqlite",
			dsn: "file:/rails/storage/production_cable.sqlite3?mode=rw&_pragma=busy_timeout(5000)", where: "/rails/storage/production_cable.sqlite3"},
		{url: "sqlite:///tmp/a b.sqlite3", kind: kindSQLite, driver: "sqlite",
			dsn: "file:/tmp/a%20b.sqlite3?mode=rw&_pragma=busy_timeout(5000)", where: "/tmp/a b.sqlite3"},
		{url: "sqlite3:storage/production_cable.sqlite3", kind: kindSQLite, driver: "sqlite",
			dsn: "file:storage/production_cable.sqlite3?mode=rw&_pragma=busy_timeout(5000)", where: "storage/production_cable.sqlite3"},
		{url: "sqlite3://localhost/x.sqlite3", kind: kindSQLite, driver: "sqlite", dsn: "file:/x.sqlite3?mode=rw&_pragma=busy_timeout(5000)", where: "/x.sqlite3"},
		{url: "mysql://app:p%40ss@db:3307/app_cable", kind: kindMySQL, driver: "mysql", dsn: "app:p@ss@tcp(db:3307)/app_cable", where: "db:3307/app_cable"},
		{url: "mysql2://app@db/app_cable", kind: kindMySQL, driver: "mysql", dsn: "app@tcp(db:3306)/app_cable", where: "db:3306/app_cable"},
		{url: "trilogy://app@db/app_cable", kind: kindMySQL, driver: "mysql", dsn: "app@tcp(db:3306)/app_cable", where: "db:3306/app_cable"},
		{url: "", err: "CABLECAR_SOLID_CABLE_URL is not set"},
		{url: "redis://localhost:6379", err: `scheme "redis": want postgres://, sqlite3:/path or mysql://`},
		{url: "sqlite3://otherhost/x.sqlite3", err: `SQLite is a local file, not on host "otherhost"`},
		{url: "sqlite3://", err: "no SQLite file"},
		{url: "mysql://db:3306/", err: "no database name"},
		{url: "postgres://app:pw@db:bad port/x", err: "CABLECAR_SOLID_CABLE_URL: invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parseURL(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.kind != tt.kind || got.driver != tt.driver || got.dsn != tt.dsn || got.where != tt.where {
				t.Errorf("got %+v, want kind %v driver %q dsn %q where %q", got, tt.kind, tt.driver, tt.dsn, tt.where)
			}
		})
	}
}

func TestConfigDefaultsAndChecks(t *testing.T) {
	c := Config{}.withDefaults()
	if c.PollingInterval != 100*time.Millisecond || c.MessageRetention != 24*time.Hour || c.Trim || c.ChannelPrefix != "" {
		t.Errorf("defaults = %+v", c)
	}
	if (Config{}).Configured() || !(Config{URL: "sqlite3:///x"}).Configured() {
		t.Error("Configured does not follow URL")
	}
	_, err := New(Config{URL: "sqlite3:///x", PollingInterval: -time.Second, MessageRetention: -1}, nil)
	if err == nil || !strings.Contains(err.Error(), "CABLECAR_SOLID_CABLE_POLLING_INTERVAL") ||
		!strings.Contains(err.Error(), "CABLECAR_SOLID_CABLE_MESSAGE_RETENTION") {
		t.Errorf("New with negative durations = %v", err)
	}
}
