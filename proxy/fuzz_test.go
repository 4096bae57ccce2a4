package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/cablecar/cablecar/auth"
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

// FuzzConsume feeds arbitrary bytes to the frame parser whole, split in
// two at any point, and one byte at a time: it never panics, and how the
// bytes arrive changes nothing the client sees (frames sent, close reason).
func FuzzConsume(f *testing.F) {
	mask := []byte{1, 2, 3, 4}
	frame := func(b0 byte, payload []byte) []byte {
		out := []byte{b0, 0x80 | byte(len(payload))}
		out = append(out, mask...)
		for i, c := range payload {
			out = append(out, c^mask[i%4])
		}
		return out
	}
	f.Add(frame(0x81, []byte(`{"command":"subscribe","identifier":"{\"channel\":\"BenchChannel\",\"stream\":\"x\"}"}`)), 7)
	f.Add(frame(0x81, []byte(`{"command":"subscribe","identifier":"{}"}`)), 3)
	f.Add(append(frame(0x01, []byte("ab")), frame(0x80, []byte("cd"))...), 3)
	f.Add(append(frame(0x01, []byte("ab")), append(frame(0x89, []byte("p")), frame(0x80, []byte("cd"))...)...), 3)
	f.Add(frame(0x88, []byte{3, 232}), 3)
	f.Add([]byte{0x81, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, 3)
	f.Add(binary.BigEndian.AppendUint16([]byte{0x81, 0xFE}, 1000), 3)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		whole, wholeWhy := consumeChunks(t, data)
		split = int(uint(split) % uint(len(data)+1))
		halves, halvesWhy := consumeChunks(t, data[:split], data[split:])
		var bytewise [][]byte
		for i := range data {
			bytewise = append(bytewise, data[i:i+1])
		}
		single, singleWhy := consumeChunks(t, bytewise...)
		if !bytes.Equal(whole, halves) || wholeWhy != halvesWhy {
			t.Fatalf("split at %d: sent %q (%s), whole: %q (%s)", split, halves, halvesWhy, whole, wholeWhy)
		}
		if !bytes.Equal(whole, single) || wholeWhy != singleWhy {
			t.Fatalf("byte by byte: sent %q (%s), whole: %q (%s)", single, singleWhy, whole, wholeWhy)
		}
	})
}

// consumeChunks runs the parser over chunks as successive reads, as the
// readers do, and returns what the client received and why the connection
// closed ("" if it did not).
func consumeChunks(t *testing.T, chunks ...[]byte) ([]byte, string) {
	t.Helper()
	a, err := auth.New(auth.Config{AllowAnonymous: true, Routes: "public:BenchChannel={params.stream}"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{MaxMessageSize: 256, MaxSubscriptions: 4}, nopBroker{}, a, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	who, err := a.Authenticate(httptest.NewRequest("GET", "/cable", nil))
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(client); got <- b }()
	c := &conn{id: 1, nc: server, srv: srv, who: who, reading: true}
	for _, chunk := range chunks {
		// A reader's buffer is reused: the parser must not keep it.
		if !c.consume(bytes.Clone(chunk)) {
			break
		}
	}
	c.closeSocket("")
	return <-got, c.closeReason()
}
