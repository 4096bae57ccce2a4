// Package servetest runs a cablecar proxy.Server on a loopback port for
// the length of a test, as the proxy, bench and doctor tests need.
package servetest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cablecar/cablecar/proxy"
)

// StopTimeout bounds how long Serve may take to return after it is
// cancelled (its drain included) before stop reports it stuck.
const StopTimeout = 20 * time.Second

// Serve runs srv on 127.0.0.1 at a free port and returns the address and
// stop. stop cancels Serve, waits for it and returns its result; later
// calls return the same. Serve is stopped when the test ends if it was not
// before, and an error it returns then fails the test.
func Serve(tb testing.TB, srv *proxy.Server) (addr string, stop func() error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(StopTimeout):
				result = errors.New("Serve did not return within 20s of cancel")
			}
		})
		return result
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), stop
}
