package bench

import "errors"

// ErrRemoteTarget refuses a target that is not on this machine unless
// Config.AllowRemote is set: a load test aimed at the wrong host is an
// outage.
var ErrRemoteTarget = errors.New("not a loopback address")

// ErrTooManyConnections means the run would need more file descriptors than
// this process may open; the message names the limit.
var ErrTooManyConnections = errors.New("too many connections for the open-file limit")
