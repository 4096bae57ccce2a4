//go:build !linux || cablecar_nopoll

package proxy

import (
	"context"
	"net"
)

// poller is Linux-only (epoll); elsewhere each connection has a reader
// goroutine of its own (readBlocking).
type poller struct{}

func newPoller(*hub) (*poller, error)           { return nil, errNoPoller }
func (*poller) run(context.Context) error       { return nil }
func (*poller) watch(*conn, *rawIO, bool) error { return errNoPoller }

// rawIO is a goroutine's scratch for non-blocking socket calls, which
// only the poller's platforms make.
type rawIO struct{ buf [readBufSize]byte }

func newRawIO() *rawIO                       { return &rawIO{} }
func (*rawIO) readNow(net.Conn) (int, error) { return 0, errNoPoller }

// Without raw writes, every write is left to a flusher goroutine here.
func shutdownSocket(nc net.Conn)                      { nc.Close() }
func socketFD(net.Conn) rawFD                         { return 0 }
func (*rawIO) writevNow(rawFD, [][]byte) (int, error) { return 0, errWouldBlock }
