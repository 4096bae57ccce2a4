// Package jsclient runs the real @rails/actioncable JavaScript client
// (through the Node driver in e2e/js) against a cable server and hands the
// test every event the driver printed.
//
// The driver needs Node 20 or later and its packages:
//
//	npm ci --prefix e2e/js
//
// Run and Start fail the test when either is missing; they never skip.
package jsclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cablecar/cablecar/internal/logbuf"
)

// Event kinds the driver prints.
const (
	KindWSOpen       = "ws_open"      // the socket opened; Protocol is the subprotocol the server chose
	KindWSClose      = "ws_close"     // the socket closed; Code, Reason, WasClean
	KindFrameIn      = "frame_in"     // a frame arrived; Data is its text as a JSON string (see Text)
	KindFrameOut     = "frame_out"    // the client sent a frame; Data as for KindFrameIn
	KindConnected    = "connected"    // a subscription was confirmed; Index, Identifier, Reconnected
	KindDisconnected = "disconnected" // the consumer lost its socket; Index, WillAttemptReconnect
	KindRejected     = "rejected"     // a subscription was rejected; Index, Identifier
	KindReceived     = "received"     // a subscription received a message; Index, Identifier, Data
	KindError        = "error"        // something failed; Message, Fatal
	KindDone         = "done"         // the driver finished; Reason is duration, exit_after or fatal
)

// Event is one line the driver printed. Fields a kind does not use are zero.
type Event struct {
	// T is the time since the driver started, in milliseconds.
	T     int64  `json:"t"`
	Event string `json:"event"`
	// Index is the position of the subscription in Options.Subscriptions.
	Index      int    `json:"index"`
	Identifier string `json:"identifier"`
	// Data is the message for received events, and the raw frame text,
	// encoded as a JSON string, for frame_in and frame_out.
	Data     json.RawMessage `json:"data"`
	Protocol string          `json:"protocol"`
	Code     int             `json:"code"`
	// Reason is the close reason for ws_close and why the driver stopped
	// for done.
	Reason               string `json:"reason"`
	WasClean             bool   `json:"wasClean"`
	Reconnected          bool   `json:"reconnected"`
	WillAttemptReconnect bool   `json:"willAttemptReconnect"`
	// Socket numbers the WebSocket a ws_*, frame_* or socket error event
	// belongs to, from 1; a reconnect opens the next one.
	Socket int `json:"socket"`
	// Binary is set on frame_in for a binary frame.
	Binary  bool   `json:"binary"`
	Message string `json:"message"`
	// Fatal marks an error that stopped the driver from doing its job.
	Fatal bool `json:"fatal"`
}

// Text returns the raw frame text of a frame_in or frame_out event, or
// Data as it is for other kinds.
func (e Event) Text() string {
	var s string
	if err := json.Unmarshal(e.Data, &s); err == nil {
		return s
	}
	return string(e.Data)
}

// ExitAfter makes the driver finish early, once Count events of kind Event
// were printed.
type ExitAfter struct {
	Event string `json:"event"`
	Count int    `json:"count"`
}

// Perform is an action the driver performs, once, when subscription Index
// is first connected. Data is sent as the action's payload; the client adds
// the "action" key to it.
type Perform struct {
	Index  int    `json:"index"`
	Action string `json:"action"`
	Data   any    `json:"data,omitempty"`
}

// Options configures one driver run.
type Options struct {
	// URL is the cable's ws:// URL, query string included.
	URL string
	// Subscriptions are the params for consumer.subscriptions.create, in
	// order; an event's Index points into this slice. encoding/json sorts
	// map keys, so the identifiers' keys come out sorted.
	Subscriptions []map[string]any
	// RawSubscriptions, when not nil, is used instead of Subscriptions:
	// each item goes to the driver as written, so the identifier keeps its
	// key order (as a Turbo element's with data- attributes would).
	RawSubscriptions []json.RawMessage
	// Duration is how long the driver runs before consumer.disconnect()
	// (default 5s).
	Duration time.Duration
	// Origin is sent as the handshake's Origin header (default: none).
	Origin    string
	ExitAfter *ExitAfter
	Perform   *Perform
	// Debug turns on the Action Cable logger; its lines are logged with
	// tb.Logf when the driver exits.
	Debug bool
}

// Client is a running driver. Its methods are safe for concurrent use,
// except that only the test's goroutine may call Wait.
type Client struct {
	tb      testing.TB
	cmd     *exec.Cmd
	timeout time.Duration
	stderr  logbuf.Buffer

	mu      sync.Mutex // guards following
	events  []Event
	exited  bool
	waitErr error
	changed chan struct{} // closed and replaced whenever the fields above change

	streamOnce sync.Once
	stream     chan Event
	stop       chan struct{} // closed by the test's cleanup
	done       chan struct{} // closed once the driver exited and every line was read
}

// Run starts the driver, waits for it to exit and returns every event it
// printed. The test fails if the driver cannot be started, crashes, or runs
// far past opts.Duration.
func Run(tb testing.TB, opts Options) []Event {
	tb.Helper()
	return Start(tb, opts).Wait()
}

// Start starts the driver and returns at once, for tests that must act
// while it runs (publish after "connected", say). The driver is killed when
// the test ends, if it still runs then.
func Start(tb testing.TB, opts Options) *Client {
	tb.Helper()
	dir := driverDir(tb)
	env, err := opts.env()
	if err != nil {
		tb.Fatalf("jsclient: %v", err)
	}
	duration := opts.Duration
	if duration <= 0 {
		duration = 5 * time.Second
	}

	c := &Client{
		tb: tb,
		// Node's start-up and the disconnect take a second or two at most.
		timeout: duration + 15*time.Second,
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.cmd = exec.Command("node", filepath.Join(dir, "client.mjs"))
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = &c.stderr
	c.cmd.WaitDelay = time.Second
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("jsclient: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("jsclient: start node: %v", err)
	}
	tb.Cleanup(func() {
		close(c.stop)
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})

	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = Event{Event: KindError, Message: fmt.Sprintf("jsclient: driver printed a line that is not an event: %q", sc.Text()), Fatal: true}
			}
			c.update(func() { c.events = append(c.events, ev) })
		}
		err := sc.Err()
		if werr := c.cmd.Wait(); err == nil {
			err = werr
		}
		c.update(func() { c.exited, c.waitErr = true, err })
	}()
	return c
}

// update applies f under the lock and wakes everyone waiting for a change.
func (c *Client) update(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Events streams every event in order, from the first one on, and is
// closed after the last. Events are also kept for WaitFor and Snapshot, so
// a test need not drain this channel.
func (c *Client) Events() <-chan Event {
	c.streamOnce.Do(func() {
		c.stream = make(chan Event)
		go c.pump()
	})
	return c.stream
}

func (c *Client) pump() {
	defer close(c.stream)
	for next := 0; ; {
		c.mu.Lock()
		events, exited, changed := c.events, c.exited, c.changed
		c.mu.Unlock()
		for ; next < len(events); next++ {
			select {
			case c.stream <- events[next]:
			case <-c.stop:
				return
			}
		}
		if exited {
			return
		}
		select {
		case <-changed:
		case <-c.stop:
			return
		}
	}
}

// Snapshot returns the events printed so far.
func (c *Client) Snapshot() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// WaitFor waits up to timeout for the first event of the given kind (the
// first one ever printed, not the next one) and reports whether it came.
func (c *Client) WaitFor(kind string, timeout time.Duration) (Event, bool) {
	return c.WaitForFunc(func(e Event) bool { return e.Event == kind }, timeout)
}

// WaitForFunc waits up to timeout for the first event for which match
// returns true and reports whether it came. It gives up early when the
// driver has exited.
func (c *Client) WaitForFunc(match func(Event) bool, timeout time.Duration) (Event, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for next := 0; ; {
		c.mu.Lock()
		events, exited, changed := c.events, c.exited, c.changed
		c.mu.Unlock()
		for ; next < len(events); next++ {
			if match(events[next]) {
				return events[next], true
			}
		}
		if exited {
			return Event{}, false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, false
		}
	}
}

// Wait waits for the driver to exit and returns every event it printed. It
// fails the test if the driver does not exit in time (it is then killed),
// exits with an error, reports a fatal error, or never printed "done".
// Non-fatal error events are logged only: a test that expects a clean run
// should check Filter(events, KindError) itself.
func (c *Client) Wait() []Event {
	c.tb.Helper()
	select {
	case <-c.done:
	case <-time.After(c.timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		c.tb.Errorf("jsclient: driver still running after %v; killed it", c.timeout)
	}
	c.mu.Lock()
	events, waitErr := append([]Event(nil), c.events...), c.waitErr
	c.mu.Unlock()

	if s := c.stderr.String(); s != "" {
		c.tb.Logf("jsclient: driver stderr:\n%s", s)
	}
	if waitErr != nil {
		c.tb.Errorf("jsclient: driver failed: %v", waitErr)
	}
	for _, e := range events {
		switch {
		case e.Event == KindError && e.Fatal:
			c.tb.Errorf("jsclient: driver error: %s", e.Message)
		case e.Event == KindError:
			c.tb.Logf("jsclient: driver reported: %s", e.Message)
		}
	}
	if _, ok := First(events, KindDone); !ok {
		c.tb.Errorf("jsclient: driver exited without printing done")
	}
	return events
}

// Filter returns the events of the given kind, in order.
func Filter(events []Event, kind string) []Event {
	var out []Event
	for _, e := range events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

// First returns the first event of the given kind.
func First(events []Event, kind string) (Event, bool) {
	for _, e := range events {
		if e.Event == kind {
			return e, true
		}
	}
	return Event{}, false
}

// FramesIn returns the text of every frame the client received, in order.
func FramesIn(events []Event) []string {
	var out []string
	for _, e := range Filter(events, KindFrameIn) {
		out = append(out, e.Text())
	}
	return out
}

// env turns opts into the driver's environment variables.
func (opts Options) env() ([]string, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("Options.URL is empty")
	}
	env := []string{"CABLE_URL=" + opts.URL}
	var subs any = opts.Subscriptions
	switch {
	case opts.RawSubscriptions != nil:
		subs = opts.RawSubscriptions
	case opts.Subscriptions == nil:
		subs = []any{}
	}
	add := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		env = append(env, name+"="+string(b))
		return nil
	}
	if err := add("SUBSCRIPTIONS", subs); err != nil {
		return nil, err
	}
	if opts.Duration > 0 {
		env = append(env, "DURATION_MS="+strconv.FormatInt(opts.Duration.Milliseconds(), 10))
	}
	if opts.Origin != "" {
		env = append(env, "ORIGIN="+opts.Origin)
	}
	if opts.Perform != nil {
		if err := add("PERFORM", opts.Perform); err != nil {
			return nil, err
		}
	}
	if opts.ExitAfter != nil {
		if err := add("EXIT_AFTER", opts.ExitAfter); err != nil {
			return nil, err
		}
	}
	if opts.Debug {
		env = append(env, "CABLE_DEBUG=1")
	}
	return env, nil
}

// driverDir finds e2e/js next to this source file and checks that Node and
// the driver's packages are there. CABLECAR_E2E_JS overrides the directory
// (for builds with -trimpath, where the source path is not a real path).
func driverDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CABLECAR_E2E_JS")
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			tb.Fatalf("jsclient: cannot locate e2e/js; set CABLECAR_E2E_JS")
		}
		dir = filepath.Join(filepath.Dir(file), "..", "js")
	}
	if _, err := os.Stat(filepath.Join(dir, "client.mjs")); err != nil {
		tb.Fatalf("jsclient: driver not found: %v (set CABLECAR_E2E_JS to the e2e/js directory)", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		tb.Fatalf("jsclient: node (v20 or later) is not installed or not in PATH; install it, then run: npm ci --prefix e2e/js")
	}
	for _, pkg := range []string{"@rails/actioncable", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			tb.Fatalf("jsclient: %s is not installed in %s; run: npm ci --prefix e2e/js", pkg, filepath.Join(dir, "node_modules"))
		}
	}
	return dir
}
