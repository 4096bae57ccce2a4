package outage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func TestDoubling(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},
		{60, time.Second},
	} {
		if got := Doubling(lo, hi, tc.failures); got != tc.want {
			t.Errorf("Doubling(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
	// An interval above the cap is kept, not cut down.
	if got := Doubling(3*time.Second, time.Second, 2); got != 3*time.Second {
		t.Errorf("Doubling above the cap = %v, want 3s", got)
	}
}

func TestBackoffJitterStaysWithinHalf(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for failures := range 10 {
		full := Doubling(lo, hi, failures)
		for range 50 {
			if got := Backoff(lo, hi, failures); got < full/2 || got > full {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", failures, got, full/2, full)
			}
		}
	}
	if got := Backoff(1, 1, 3); got != 1 {
		t.Errorf("Backoff of 1ns = %v, want 1ns", got)
	}
}

// The waits a broker with the default 100 ms to 5 s bounds sees.
func TestBackoffSequence(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for failures, top := range []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000} {
		top *= time.Millisecond
		for range 20 {
			if d := Backoff(lo, hi, failures); d < top/2 || d > top {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", failures, d, top/2, top)
			}
		}
	}
	if d := Backoff(lo, hi, 1000); d > 5*time.Second {
		t.Errorf("Backoff(1000) = %v", d)
	}
}

// Retry counts failures in a row, starts again after a session that was
// up, and returns once ctx is done.
func TestRetry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ups := []bool{false, false, true, false}
	var got []int
	calls := 0
	Retry(ctx, time.Microsecond, time.Millisecond, func(context.Context) (bool, error) {
		calls++
		if calls > len(ups) {
			cancel()
			return false, nil
		}
		return ups[calls-1], errors.New("down")
	}, func(err error, wasUp bool, failures int, _ time.Duration) {
		if err == nil || wasUp != ups[len(got)] {
			t.Errorf("note %d: err %v, wasUp %v", len(got), err, wasUp)
		}
		got = append(got, failures)
	})
	if want := []int{1, 2, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("failure counts %v, want %v", got, want)
	}
}

func TestLogOncePerOutage(t *testing.T) {
	m := Messages{Lost: "conn lost", CannotConnect: "cannot connect", Retry: "retry failed"}
	reason := errors.New("refused")
	for _, tc := range []struct {
		name string
		a    Attempt
		want string
	}{
		{"lost", Attempt{Reason: reason, WasUp: true, Failures: 1, RetryIn: time.Second, Streams: 3},
			"level=ERROR msg=\"conn lost\" err=refused streams=3 retry_in=1s\n"},
		{"first", Attempt{Reason: reason, First: true, Failures: 1, RetryIn: time.Second},
			"level=ERROR msg=\"cannot connect\" err=refused retry_in=1s\n"},
		{"retry", Attempt{Reason: reason, Failures: 4, RetryIn: 2 * time.Second},
			"level=DEBUG msg=\"retry failed\" err=refused attempt=4 retry_in=2s\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				}}))
			m.Log(log, tc.a)
			if got := buf.String(); got != tc.want {
				t.Errorf("logged %q, want %q", got, tc.want)
			}
		})
	}
}
