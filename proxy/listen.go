package proxy

import (
	"context"
	"net"
	"syscall"
	"time"
)

// Listen opens the main listener with settings that find half-open
// connections (a peer that vanished without a FIN): TCP keepalives, and on
// Linux TCP_USER_TIMEOUT, so data the peer never acknowledges — the 3 s
// pings at least — fails the socket after userTimeout(cfg) instead of the
// kernel's ~15 minutes of retransmissions. cfg.Addr is where it listens.
func Listen(ctx context.Context, cfg Config) (net.Listener, error) {
	cfg = cfg.withDefaults()
	lc := net.ListenConfig{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = setUserTimeout(fd, userTimeout(cfg)) })
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(ctx, "tcp", cfg.Addr)
}

// userTimeout is how long unacknowledged data may wait: four write
// timeouts (20 s by default), long enough for a busy but live client, short
// enough to reap dead ones quickly.
func userTimeout(cfg Config) time.Duration {
	return 4 * cfg.WriteTimeout
}
