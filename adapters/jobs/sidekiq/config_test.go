package sidekiq

import (
	"strings"
	"testing"

	"github.com/cablecar/cablecar/adapters/jobs"
)

// TestNew: New refuses a bad configuration with the setting's name (and
// never the URL, which may hold a password), and accepts a good one.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // part of the error; "" for none
	}{
		{"no URL", Config{}, "CABLECAR_JOBS_SIDEKIQ_URL is not set"},
		{"not redis", Config{URL: "http://user:hunter2@host:6379"}, "CABLECAR_JOBS_SIDEKIQ_URL: want redis://"},
		{"skip verify", Config{URL: "rediss://:hunter2@host:6380/0?skip_verify=true"}, "skip_verify is refused"},
		{"sweep", Config{URL: "redis://host:6379", SweepCount: -2}, "CABLECAR_JOBS_SIDEKIQ_SWEEP_COUNT: -2"},
		{"retry count", Config{URL: "redis://host:6379", MaxRetryCount: -1}, "CABLECAR_JOBS_SIDEKIQ_RETRY_MAX_COUNT: -1"},
		{"poll interval", Config{URL: "redis://host:6379", PollInterval: -1}, "CABLECAR_JOBS_SIDEKIQ_POLL_INTERVAL"},
		{"good", Config{URL: "redis://:hunter2@127.0.0.1:6379/3", Namespace: "app"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(tc.cfg, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				defer w.Close()
				if w.Backend() != jobs.Sidekiq || !tc.cfg.Configured() {
					t.Errorf("Backend %q, Configured %v", w.Backend(), tc.cfg.Configured())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if (Config{}).Configured() {
		t.Error("an empty Config is Configured")
	}
}
