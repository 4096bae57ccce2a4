package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cablecar/cablecar/proxy"
)

// rawHandshake sends a WebSocket upgrade request for /cable with the given
// version header and returns the connection.
func rawHandshake(t *testing.T, addr, version string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /cable HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " + version + "\r\n" +
		"Sec-WebSocket-Protocol: actioncable-v1-json\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return nc
}

// The 101 and the welcome arrive in that order, the welcome right after
// the response's blank line, as a client reading the handshake expects.
func TestHandshakeThenWelcome(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	nc := rawHandshake(t, ts.addr, "13")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the 101: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-Websocket-Protocol") != "actioncable-v1-json" {
		t.Fatalf("response %s %v", resp.Status, resp.Header)
	}
	want := `{"type":"welcome"}`
	head := make([]byte, 2+len(want))
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("read the welcome: %v", err)
	}
	if head[0] != 0x81 || int(head[1]) != len(want) || string(head[2:]) != want {
		t.Errorf("first frame % x (%q), want a text frame %s", head[:2], head[2:], want)
	}
}

// A refused handshake gets its status and then the socket is closed: the
// hijacked connection is not left open with no deadline.
func TestRefusedHandshakeIsClosed(t *testing.T) {
	ts := startServer(t, proxy.Config{}, anonymous(), nil)
	for _, tt := range []struct{ version, status string }{
		{"12", "HTTP/1.1 426 "},
		{"", "HTTP/1.1 400 "},
	} {
		nc := rawHandshake(t, ts.addr, tt.version)
		got, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("version %q: the server did not close the socket: %v (read %q)", tt.version, err, got)
		}
		if !strings.HasPrefix(string(got), tt.status) {
			t.Errorf("version %q: response %q, want %s…", tt.version, got, tt.status)
		}
	}
}
