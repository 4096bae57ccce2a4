package proxy

import (
	"net"
	"net/http"
	"runtime"
)

// stackReserve is how much stack growStack leaves a goroutine: what the
// handshake and the command path (HTTP parsing, hijack, JSON, subscribe,
// replies) were seen to reach.
const stackReserve = 12 << 10

// growStack grows the calling goroutine's stack to hold stackReserve more
// bytes while the goroutine is still shallow. A new goroutine starts small
// and doubles its stack when a call runs out; each doubling copies the
// stack and walks every frame on it, and done deep in the handshake or the
// command path that walk was 12–15% of the server's CPU while clients
// connected (profile in docs/benchmarks.md). Growing once, up front, costs
// one copy of a frame or two.
//
//go:noinline
func growStack() {
	var reserve [stackReserve]byte
	runtime.KeepAlive(&reserve)
}

// growHandshakeStack is the HTTP server's ConnState hook: net/http calls it
// with StateActive on the goroutine that serves the connection, once a
// request has been read and before the handler runs, so the upgrade, the
// authentication and the welcome run on a stack already large enough.
func growHandshakeStack(_ net.Conn, state http.ConnState) {
	if state == http.StateActive {
		growStack()
	}
}
