package proxy

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// Rails frames recorded from real 6.1 and 8.1 servers (testdata/frames.json).
type railsFrames struct {
	Versions map[string]struct {
		ServerToClient map[string]*string `json:"server_to_client"`
	} `json:"versions"`
}

func loadFrames(t *testing.T) railsFrames {
	t.Helper()
	raw, err := os.ReadFile("testdata/frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var f railsFrames
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// payload strips the header from a frame built here, checking it is one
// final unmasked text frame of the right length.
func payload(t *testing.T, frame []byte) []byte {
	t.Helper()
	if frame[0] != 0x81 {
		t.Fatalf("first byte %#x, want 0x81 (FIN, text)", frame[0])
	}
	n, hl := int(frame[1]), 2
	switch n {
	case 126:
		n, hl = int(frame[2])<<8|int(frame[3]), 4
	case 127:
		t.Fatal("unexpected 64-bit length in a small frame")
	}
	if len(frame)-hl != n {
		t.Fatalf("header says %d bytes, frame carries %d", n, len(frame)-hl)
	}
	return frame[hl:]
}

func TestFramesMatchRails(t *testing.T) {
	f := loadFrames(t)
	lobby := `{"channel":"Chat::RoomChannel","room":"lobby"}`
	cases := []struct {
		key   string
		frame []byte
	}{
		{"welcome", frameWelcome},
		{"confirm_subscription", identifierFrame(quoteIdentifier(lobby), "confirm_subscription")},
		{"reject_subscription", identifierFrame(quoteIdentifier(`{"channel":"RejectingChannel"}`), "reject_subscription")},
		{"disconnect_unauthorized", frameDisconnectUnauthorized},
		{"disconnect_server_restart", frameDisconnectRestart},
		{"confirm_with_html_escaped_identifier", identifierFrame(quoteIdentifier(`{"channel":"Chat::RoomChannel","room":"<é&>"}`), "confirm_subscription")},
	}
	for version, v := range f.Versions {
		for _, c := range cases {
			t.Run(version+"/"+c.key, func(t *testing.T) {
				want := v.ServerToClient[c.key]
				if want == nil {
					t.Fatalf("no %s frame recorded", c.key)
				}
				if got := payload(t, c.frame); string(got) != *want {
					t.Errorf("frame\n got %s\nwant %s", got, *want)
				}
			})
		}
	}
}

// Message frames: the recorded identifier and payload, spliced by
// messageFrame, must give back the recorded bytes exactly.
func TestMessageFramesMatchRails(t *testing.T) {
	f := loadFrames(t)
	for version, v := range f.Versions {
		for _, key := range []string{"message_hash_via_redis", "message_string_via_redis", "message_turbo_stream_html"} {
			want := v.ServerToClient[key]
			if want == nil {
				t.Fatalf("%s: no %s frame", version, key)
			}
			var m struct {
				Identifier string          `json:"identifier"`
				Message    json.RawMessage `json:"message"`
			}
			if err := json.Unmarshal([]byte(*want), &m); err != nil {
				t.Fatal(err)
			}
			if got := payload(t, messageFrame(quoteIdentifier(m.Identifier), m.Message)); string(got) != *want {
				t.Errorf("%s %s:\n got %s\nwant %s", version, key, got, *want)
			}
		}
	}
}

func TestRemoteDisconnectFramesMatchRails81(t *testing.T) {
	v := loadFrames(t).Versions["8.1.3"].ServerToClient
	for key, frame := range map[string][]byte{
		"disconnect_remote":              frameDisconnectRemote,
		"disconnect_remote_no_reconnect": frameDisconnectRemoteFinal,
	} {
		if got := payload(t, frame); v[key] == nil || string(got) != *v[key] {
			t.Errorf("%s: got %s want %v", key, got, v[key])
		}
	}
}

func TestPingFrameShape(t *testing.T) {
	f := loadFrames(t)
	for version, v := range f.Versions {
		want := *v.ServerToClient["ping"]
		var p struct{ Message int64 }
		if err := json.Unmarshal([]byte(want), &p); err != nil {
			t.Fatal(err)
		}
		if got := payload(t, pingFrame(p.Message)); string(got) != want {
			t.Errorf("%s: got %s want %s", version, got, want)
		}
	}
}

func TestHeaderLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 20} {
		h := appendHeader(nil, 0x1, n)
		if len(h) != headerLen(n) {
			t.Errorf("n=%d: header %d bytes, headerLen says %d", n, len(h), headerLen(n))
		}
		f := textFrame(bytes.Repeat([]byte{'x'}, n))
		if len(f) != headerLen(n)+n {
			t.Errorf("n=%d: frame %d bytes", n, len(f))
		}
	}
	if got := closeFrame(1000); !bytes.Equal(got, []byte{0x88, 0x02, 0x03, 0xe8}) {
		t.Errorf("close 1000 = % x, want 88 02 03 e8 (what Rails sends)", got)
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	q := quoteIdentifier(`{"channel":"DocumentChannel","id":123}`)
	p := []byte(`{"status":"complete","progress":100}`)
	b.ReportAllocs()
	for b.Loop() {
		messageFrame(q, p)
	}
}
