package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Helpers for TestConformance: the real Action Cable server under Puma, a
// raw WebSocket peer that records every frame, and the transcript diff.

// conformanceOrigin is the page origin both servers allow and every
// conformance client sends.
const conformanceOrigin = "http://app.example"

// debianPuma is Debian's puma (package puma), which runs Debian's Ruby and
// so sees ruby-actioncable; a gem-installed puma earlier in PATH may not.
const debianPuma = "/usr/bin/puma"

// startRailsCable starts e2e/ruby/cable_server.ru on Debian's Puma, bound
// to a free loopback port, and returns its host:port at once (see
// waitRailsCable).
func startRailsCable(t *testing.T, redisURL string) (string, *background) {
	t.Helper()
	if _, err := os.Stat(debianPuma); err != nil {
		t.Fatalf("puma is not installed: %v; %s", err, installHint)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(debianPuma, "-b", "tcp://"+addr, "-t", "4:4", "cable_server.ru")
	cmd.Dir = repoDir(t, "e2e/ruby")
	cmd.Env = append(cmd.Environ(), "REDIS_URL="+redisURL, "ALLOWED_ORIGIN="+conformanceOrigin, "RACK_ENV=production")
	b := startBackground(t, "puma", cmd, 10*time.Second)
	// Puma exits 0 on SIGINT; on the SIGTERM startBackground sends it
	// re-raises the signal. This cleanup runs first.
	t.Cleanup(func() {
		if !b.exited() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-b.done:
			case <-time.After(10 * time.Second):
			}
		}
	})
	return addr, b
}

// waitRailsCable waits until the Puma started by startRailsCable answers
// a plain GET /cable (Action Cable's 404).
func waitRailsCable(t *testing.T, addr string, b *background) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/cable")
		if err == nil {
			resp.Body.Close()
			return
		}
		if b.exited() {
			t.Fatalf("puma exited early: %v\n%s", b.err, b.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("puma not answering after 20s:\n%s", b.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawFrame is one frame a rawPeer received.
type rawFrame struct {
	at   time.Time
	op   ws.OpCode
	data string
}

// text renders a frame for a transcript: text frames as they are, others
// by kind.
func (f rawFrame) text() string {
	switch f.op {
	case ws.OpText:
		return f.data
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData([]byte(f.data))
		return fmt.Sprintf("<close %d %q>", code, reason)
	default:
		return fmt.Sprintf("<%v frame %q>", f.op, f.data)
	}
}

// isPing reports whether a text frame is an Action Cable ping.
func isPing(frame string) bool {
	return strings.HasPrefix(frame, `{"type":"ping",`)
}

// rawPeer is a hand-driven WebSocket client connection; a goroutine reads
// every frame into frames, which is closed at EOF.
type rawPeer struct {
	name   string
	conn   net.Conn
	frames chan rawFrame
	pings  []rawFrame // pings taken out of collected steps
	opened time.Time
}

// handshake is what the server answered to an upgrade request.
type handshake struct {
	status   int    // 101, or the HTTP status of a refusal
	protocol string // the chosen subprotocol
	body     string // a refusal's body
	ctype    string // a refusal's media type (without parameters)
}

// dialRaw opens a WebSocket to url from the page origin, offering
// protocols; extraHeader lines ("Name: value\r\n") are added to the
// request. A refused or failed upgrade returns a nil peer and the refusal
// (status 0 and the error in body when there was no HTTP answer). It may
// run on any goroutine.
func dialRaw(t *testing.T, name, url, origin string, protocols []string, extraHeader string) (*rawPeer, handshake) {
	t.Helper()
	var hs handshake
	d := ws.Dialer{
		Protocols: protocols,
		Timeout:   5 * time.Second,
		Header:    ws.HandshakeHeaderString("Origin: " + origin + "\r\n" + extraHeader),
		OnStatusError: func(status int, reason []byte, resp io.Reader) {
			hs.status = status
			r, err := http.ReadResponse(bufio.NewReader(resp), nil)
			if err != nil {
				hs.body = "unreadable response: " + err.Error()
				return
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
			hs.body = string(b)
			hs.ctype, _, _ = mime.ParseMediaType(r.Header.Get("Content-Type"))
		},
	}
	conn, br, got, err := d.Dial(context.Background(), url)
	if err != nil {
		if hs.status == 0 {
			hs.body = "dial failed: " + err.Error()
		}
		return nil, hs
	}
	hs.status, hs.protocol = 101, got.Protocol
	p := &rawPeer{name: name, conn: conn, frames: make(chan rawFrame, 1024), opened: time.Now()}
	var r io.Reader = conn
	if br != nil {
		// Frames that came with the handshake response: copy them out
		// before br is recycled.
		buffered, _ := br.Peek(br.Buffered())
		r = io.MultiReader(strings.NewReader(string(buffered)), conn)
		ws.PutReader(br)
	}
	go func() {
		defer close(p.frames)
		for {
			f, err := ws.ReadFrame(r)
			if err != nil {
				return
			}
			p.frames <- rawFrame{at: time.Now(), op: f.Header.OpCode, data: string(f.Payload)}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return p, hs
}

// sendText sends one masked text frame. The send methods may run on any
// goroutine: they report failures with t.Errorf.
func (p *rawPeer) sendText(t *testing.T, s string) {
	t.Helper()
	if err := wsutil.WriteClientText(p.conn, []byte(s)); err != nil {
		t.Errorf("%s: send %q: %v", p.name, s, err)
	}
}

// sendBinary sends one masked binary frame.
func (p *rawPeer) sendBinary(t *testing.T, b []byte) {
	t.Helper()
	if err := wsutil.WriteClientBinary(p.conn, b); err != nil {
		t.Errorf("%s: send binary: %v", p.name, err)
	}
}

// sendClose sends a masked close frame with code 1000.
func (p *rawPeer) sendClose(t *testing.T) {
	t.Helper()
	f := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if err := ws.WriteFrame(p.conn, f); err != nil {
		t.Errorf("%s: send close: %v", p.name, err)
	}
}

// collect returns the frames that arrive, waiting up to max for the first
// min of them and then until nothing but pings has come for quiet (or the
// socket ends). Pings are kept aside in p.pings for the cadence check.
func (p *rawPeer) collect(min int, quiet, max time.Duration) []string {
	var out []string
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	quietTimer := time.NewTimer(quiet)
	defer quietTimer.Stop()
	for {
		var q <-chan time.Time
		if len(out) >= min {
			quietTimer.Reset(quiet) // Go ≥ 1.23: Reset drops a stale tick
			q = quietTimer.C
		}
		select {
		case f, ok := <-p.frames:
			if !ok {
				return append(out, "<socket closed without a close frame>")
			}
			if f.op == ws.OpText && isPing(f.data) {
				p.pings = append(p.pings, f)
				continue // (and the quiet window starts again)
			}
			out = append(out, f.text())
			if f.op == ws.OpClose {
				return out // nothing may follow a close frame
			}
		case <-q:
			return out
		case <-deadline.C:
			return out
		}
	}
}

// conformanceStep is one step of a script run against both servers.
type conformanceStep struct {
	name      string
	sent      []string
	rails     []string
	cablecar  []string
	unordered bool // compare the received frames as a set
}

// allowedDifference is a step where the servers differ by design: each
// side must produce exactly the frames listed, so that a change on either
// side is noticed too.
type allowedDifference struct {
	step     string
	rails    []string
	cablecar []string
	reason   string
}

// compareSteps fails t with a readable diff for every step whose frames
// differ, unless the difference is listed in allowed, in which case each
// side must match its listed frames. Every allowed difference must be seen.
func compareSteps(t *testing.T, steps []conformanceStep, allowed []allowedDifference) {
	t.Helper()
	byStep := map[string]allowedDifference{}
	for _, d := range allowed {
		byStep[d.step] = d
	}
	seen := map[string]bool{}
	for _, s := range steps {
		rails, cablecar := s.rails, s.cablecar
		if s.unordered {
			rails, cablecar = sorted(rails), sorted(cablecar)
		}
		if testing.Verbose() {
			t.Logf("step %q:\n%s", s.name, renderStep(s, rails, cablecar))
		}
		if d, ok := byStep[s.name]; ok {
			seen[s.name] = true
			if !slices.Equal(rails, d.rails) || !slices.Equal(cablecar, d.cablecar) {
				t.Errorf("step %q is an allowed difference (%s), but the frames are not the listed ones:\n%s\nlisted:\n  rails:    %s\n  cablecar: %s",
					s.name, d.reason, renderStep(s, rails, cablecar), quoteAll(d.rails), quoteAll(d.cablecar))
			}
			continue
		}
		if !slices.Equal(rails, cablecar) {
			t.Errorf("step %q: cablecar differs from Rails:\n%s", s.name, renderStep(s, rails, cablecar))
		}
	}
	for _, d := range allowed {
		if !seen[d.step] {
			t.Errorf("allowed difference %q names no step of this script", d.step)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func quoteAll(frames []string) string {
	if len(frames) == 0 {
		return "(nothing)"
	}
	return strings.Join(frames, "\n            ")
}

// renderStep shows what was sent and a line diff of what each server sent
// back ("-" only Rails, "+" only cablecar, " " both).
func renderStep(s conformanceStep, rails, cablecar []string) string {
	var b strings.Builder
	for _, f := range s.sent {
		fmt.Fprintf(&b, "  sent     %s\n", f)
	}
	i, j := 0, 0
	for i < len(rails) || j < len(cablecar) {
		switch {
		case i < len(rails) && j < len(cablecar) && rails[i] == cablecar[j]:
			fmt.Fprintf(&b, "           %s\n", rails[i])
			i, j = i+1, j+1
		case i < len(rails) && !slices.Contains(cablecar[j:], rails[i]):
			fmt.Fprintf(&b, "  - rails  %s\n", rails[i])
			i++
		case j < len(cablecar):
			fmt.Fprintf(&b, "  + cablecar %s\n", cablecar[j])
			j++
		default:
			fmt.Fprintf(&b, "  - rails  %s\n", rails[i])
			i++
		}
	}
	if len(rails) == 0 && len(cablecar) == 0 {
		b.WriteString("  (nothing from either)\n")
	}
	return b.String()
}

// both runs f for the Rails peer and the cablecar peer at once and returns
// their results in that order.
func both[T any](f func(i int) T) (T, T) {
	var r [2]T
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r[i] = f(i)
		}()
	}
	wg.Wait()
	return r[0], r[1]
}

// normalizePing turns {"type":"ping","message":<n>} into message 0, after
// checking that n is the server's Unix time in seconds.
func normalizePing(t *testing.T, who string, f rawFrame) string {
	t.Helper()
	var p struct {
		Type    string `json:"type"`
		Message json.Number
	}
	d := json.NewDecoder(strings.NewReader(f.data))
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		t.Errorf("%s: ping %q: %v", who, f.data, err)
		return f.data
	}
	n, err := p.Message.Int64()
	if err != nil || n < f.at.Unix()-5 || n > f.at.Unix()+5 {
		t.Errorf("%s: ping message %s is not the Unix time in seconds (%d)", who, p.Message, f.at.Unix())
	}
	return strings.Replace(f.data, string(p.Message), "0", 1)
}
