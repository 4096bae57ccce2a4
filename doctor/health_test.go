package doctor

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/cablecar/cablecar/internal/redistest"
)

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestHealth(t *testing.T) {
	t.Parallel()
	// A real cablecar on Redis whose Redis then dies: /health says 503.
	rs := redistest.Start(t)
	broker := newRedisBroker(t, rs.URL, "myapp_production")
	down := startCablecar(t, broker)
	rs.Kill()
	waitFor(t, "broker unhealthy", func() bool { return broker.Health(context.Background()) != nil })

	closed := closedURL(t)
	for _, tc := range []struct {
		name   string
		url    string
		status Status
		text   []string
	}{
		{"running on the in-memory broker", startCablecar(t, nil), OK, []string{"/health: ok"}},
		{"trailing slash", startCablecar(t, nil) + "/", OK, []string{"/health: ok"}},
		{"nothing listening", closed, Warn, []string{"no cablecar answering at " + closed + "/health", "connection refused", "cablecar serve"}},
		{"redis gone", down, Fail, []string{down + "/health: unavailable: redis", "read its log"}},
		{"credentials masked", strings.Replace(closed, "http://", "http://admin:s3cret@", 1), Warn, []string{"admin:xxxxx@"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := checkHealthURL(context.Background(), tc.url)
			if res.Status != tc.status {
				t.Errorf("status = %s, want %s: %+v", res.Status, tc.status, res)
			}
			for _, s := range tc.text {
				if !strings.Contains(res.Message+" → "+res.Fix, s) {
					t.Errorf("want %q in %+v", s, res)
				}
			}
			if strings.Contains(res.Message, "s3cret") {
				t.Errorf("password shown: %q", res.Message)
			}
		})
	}
}
