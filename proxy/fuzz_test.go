package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"testing"
)

// FuzzParseCommand: any bytes a client sends are either a command with a
// string identifier or a clear error; never a panic.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"command":"subscribe","identifier":"{\"channel\":\"Chat::RoomChannel\",\"room\":\"lobby\"}"}`,
		`{"command":"message","identifier":"{\"channel\":\"X\"}","data":"{\"action\":\"speak\"}"}`,
		`{"command":"subscribe","identifier":{"channel":"X"}}`,
		`{"command":1}`, `not json`, "\xff\xfe", `[[[[[[[[]]]]]]]]`, `{"identifier":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cmd, identifier, err := parseCommand(msg)
		if err != nil {
			return
		}
		// What parsed must survive the round trip Rails relies on: the
		// identifier echoed in frames decodes to the same string.
		q := quoteIdentifier(identifier)
		var back string
		if jerr := json.Unmarshal(q, &back); jerr != nil || back != identifier {
			t.Fatalf("identifier %q did not round-trip through %s", identifier, q)
		}
		_ = cmd
		if params, channel, perr := parseIdentifier(identifier); perr == nil && (params == nil || channel == "") {
			t.Fatalf("parseIdentifier(%q) accepted without params or channel", identifier)
		}
	})
}

// FuzzReadMessage feeds arbitrary bytes to the frame reader: it returns
// messages within the size limit, a close error, or an I/O error; it never
// panics or hangs.
func FuzzReadMessage(f *testing.F) {
	mask := []byte{1, 2, 3, 4}
	frame := func(b0 byte, payload []byte) []byte {
		out := []byte{b0, 0x80 | byte(len(payload))}
		out = append(out, mask...)
		for i, c := range payload {
			out = append(out, c^mask[i%4])
		}
		return out
	}
	f.Add(frame(0x81, []byte(`{"command":"subscribe","identifier":"{}"}`)))
	f.Add(append(frame(0x01, []byte("ab")), frame(0x80, []byte("cd"))...))
	f.Add(append(frame(0x01, []byte("ab")), append(frame(0x89, []byte("p")), frame(0x80, []byte("cd"))...)...))
	f.Add(frame(0x88, []byte{3, 232}))
	f.Add([]byte{0x81, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add(binary.BigEndian.AppendUint16([]byte{0x81, 0xFE}, 1000))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := &Server{cfg: Config{MaxMessageSize: 256}.withDefaults(), log: slog.New(slog.DiscardHandler)}
		srv.hub = newHub(nil, srv.log, &srv.stats, &srv.hooks)
		server, client := net.Pipe()
		defer client.Close()
		go io.Copy(io.Discard, client) // pongs and close frames
		go func() { client.Write(data); client.Close() }()
		c := &conn{nc: server, srv: srv}
		for i := 0; i < 100; i++ {
			op, msg, err := c.readMessage()
			if err != nil {
				return
			}
			if len(msg) > srv.cfg.MaxMessageSize {
				t.Fatalf("message of %d bytes passed a %d limit", len(msg), srv.cfg.MaxMessageSize)
			}
			if op == 0x8 {
				return
			}
			_ = bytes.TrimSpace(msg)
		}
	})
}
