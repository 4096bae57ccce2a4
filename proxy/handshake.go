package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
)

// heldResponse is the ResponseWriter the WebSocket upgrader is given: its
// Hijack hands the upgrader the real connection but a writer that keeps
// the response instead of sending it. The 101 then goes out in front of
// the welcome, in the same write: one syscall and one wakeup of the client
// fewer per connection, and the client reads both in one segment.
type heldResponse struct {
	http.ResponseWriter
	held bytes.Buffer
}

// Hijack takes the connection from net/http and points the writer it
// hands over (empty: net/http flushed it) at the holding buffer.
func (h *heldResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nc, rw, err
	}
	rw.Writer.Reset(&h.held)
	return nc, rw, nil
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (h *heldResponse) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// response is what the upgrader wrote: the 101, or the refusal.
func (h *heldResponse) response() []byte { return h.held.Bytes() }
