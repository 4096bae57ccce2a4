package solidcable

import "errors"

var (
	// ErrNotRunning is what Health reports while Run is not running.
	ErrNotRunning = errors.New("solid_cable broker not running")
	// ErrNotPolled is what Health reports after Run starts, until the first
	// poll has completed.
	ErrNotPolled = errors.New("solid_cable: no poll has completed yet")
	// ErrAlreadyRunning is returned by Run when another Run call is active.
	ErrAlreadyRunning = errors.New("solid_cable broker: Run is already running")
	// ErrClosed is returned by Run and Publish after Close.
	ErrClosed = errors.New("solid_cable broker: closed")
)
