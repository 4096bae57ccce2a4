package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Check is what CheckServer finds, for `cablecar doctor`.
type Check struct {
	// Addr is the server's host:port; never a password.
	Addr string
	// Version is the server_version setting, e.g. "15.18 (Debian …)".
	Version string
	// RoundTrip is how long a NOTIFY took to reach a LISTEN on another
	// connection.
	RoundTrip time.Duration
	// Listeners counts the connections named cablecar-listen to this
	// database: one per running cablecar node with this broker.
	Listeners int
}

// CheckServer connects as the broker would, reads the server version,
// sends one NOTIFY on a private channel that only its own second
// connection LISTENs to (no app or cablecar node hears it), and counts the
// running cablecar nodes. Errors are in Health's words.
func CheckServer(ctx context.Context, cfg Config) (Check, error) {
	listenCfg, _, err := cfg.parse()
	if err != nil {
		return Check{}, err
	}
	c := Check{Addr: net.JoinHostPort(listenCfg.Host, strconv.Itoa(int(listenCfg.Port)))}
	listenCfg.RuntimeParams["application_name"] = "cablecar-doctor"
	listener, err := pgx.ConnectConfig(ctx, listenCfg)
	if err != nil {
		return c, describe(err, c.Addr)
	}
	defer listener.Close(context.Background())
	if err := listener.QueryRow(ctx, "SHOW server_version").Scan(&c.Version); err != nil {
		return c, describe(err, c.Addr)
	}
	if err := listener.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cablecar-listen'").Scan(&c.Listeners); err != nil {
		return c, describe(err, c.Addr)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	channel := "cablecar:doctor/" + hex.EncodeToString(id[:])
	if _, err := listener.Exec(ctx, "LISTEN "+quoteIdent(channel)); err != nil {
		return c, describe(err, c.Addr)
	}
	sender, err := pgx.ConnectConfig(ctx, listenCfg)
	if err != nil {
		return c, describe(err, c.Addr)
	}
	defer sender.Close(context.Background())
	start := time.Now()
	if _, err := sender.Exec(ctx, "SELECT pg_notify($1, 'probe')", channel); err != nil {
		return c, describe(err, c.Addr)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		return c, fmt.Errorf("postgres: the NOTIFY on %s never reached its LISTEN: %w", channel, describe(err, c.Addr))
	}
	if n.Channel != channel {
		return c, fmt.Errorf("postgres: a LISTEN on %s heard channel %q", channel, n.Channel)
	}
	c.RoundTrip = time.Since(start)
	return c, nil
}
