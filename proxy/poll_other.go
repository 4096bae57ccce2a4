//go:build !linux || cablecar_nopoll

package proxy

import (
	"context"
	"net"
)

// poller is Linux-only (epoll); elsewhere each connection has a reader
// goroutine of its own (readBlocking).
type poller struct{}

func newPoller(*hub) (*poller, error)       { return nil, errNoPoller }
func (*poller) run(context.Context) error   { return nil }
func (*poller) add(*conn) error             { return errNoPoller }
func (*poller) rearm(*conn) error           { return errNoPoller }
func readNow(net.Conn, []byte) (int, error) { return 0, errNoPoller }

// writeNow leaves every write to a flusher goroutine here.
func writeNow(net.Conn, []byte) (int, error) { return 0, errWouldBlock }
