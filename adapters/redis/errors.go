package redis

import "errors"

var (
	// ErrNotRunning is what Health reports while Run is not running.
	ErrNotRunning = errors.New("redis broker not running")
	// ErrNotConnected is what Health reports after Run starts, until the
	// first probe has made the round trip through Redis.
	ErrNotConnected = errors.New("redis: not connected yet")
	// ErrProbeLate is wrapped by Health's error when a probe published on
	// this node's private channel did not come back in time: the
	// subscriber connection is wedged or the network path is broken.
	ErrProbeLate = errors.New("redis: pub/sub probe not received")
	// ErrAlreadyRunning is returned by Run when another Run call is active.
	ErrAlreadyRunning = errors.New("redis broker: Run is already running")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("redis broker: closed")
)
