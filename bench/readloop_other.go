//go:build !linux

package bench

import "errors"

// readLoops is Linux-only (epoll); elsewhere a goroutine reads each
// connection.
type readLoops struct{}

func newReadLoops(*runner, int) (*readLoops, error) {
	return nil, errors.New("read loops need epoll (Linux)")
}

func (*readLoops) tallies() []*tally { return nil }
func (*readLoops) add(*client) error { return errors.New("no read loops") }
func (*readLoops) stop()             {}
func resetSocket(int)                { panic("bench: no read loops here") }
