package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrNotRunning is what Health reports while Run is not running.
	ErrNotRunning = errors.New("postgres broker not running")
	// ErrNotConnected is what Health reports after Run starts, until the
	// listening connection has LISTENed for every stream.
	ErrNotConnected = errors.New("postgres: not connected yet")
	// ErrAlreadyRunning is returned by Run when another Run call is active.
	ErrAlreadyRunning = errors.New("postgres broker: Run is already running")
	// ErrClosed is returned by Run and Publish after Close.
	ErrClosed = errors.New("postgres broker: closed")
	// ErrPayloadTooLarge is wrapped by Publish's error for a payload
	// PostgreSQL's NOTIFY refuses (8000 bytes or more). Rails' postgresql
	// adapter fails on it too (PG::InvalidParameterValue).
	ErrPayloadTooLarge = errors.New("payload too large for PostgreSQL NOTIFY")
)

// describe turns a driver error into words an operator can act on, always
// starting "postgres: ". addr is the server's host:port.
func describe(err error, addr string) error {
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("postgres: connection refused by %s (is PostgreSQL running there?)", addr)
	case errors.As(err, &pgErr):
		return fmt.Errorf("postgres: %s: %s (SQLSTATE %s)", pgErr.Severity, pgErr.Message, pgErr.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("postgres: connection to %s closed by the server or network", addr)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("postgres: no answer from %s in time", addr)
	}
	return fmt.Errorf("postgres: %w", err)
}
