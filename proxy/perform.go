package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Action is one client perform (Action Cable's "message" command) on a
// confirmed subscription, as handed to a Performer. A Performer must not
// modify it: Claims is shared with the connection.
type Action struct {
	// Conn is the connection's number, unique within this process.
	Conn uint64
	// User is the token's "sub" claim; "" for an anonymous connection or a
	// token without one.
	User string
	// Anonymous is true for a connection admitted without a token.
	Anonymous bool
	// Claims are the verified token claims (numbers as json.Number); nil
	// when anonymous.
	Claims map[string]any
	// ConnectionID is Rails' connection identifier for the connection
	// (CABLECAR_CONNECTION_IDENTIFIER), "" when none is configured.
	ConnectionID string
	// Identifier is the subscription's identifier exactly as the client
	// sent it; Channel is its "channel".
	Identifier string
	Channel    string
	// Streams are the streams the subscription was authorized for.
	Streams []string
	// Name is the action: the data's "action" key, or "receive" when that
	// is missing or empty, as Rails dispatches it.
	Name string
	// Data is the JSON object the client sent as the command's data,
	// byte for byte ("action" key included).
	Data json.RawMessage
	// At is when cablecar read the command.
	At time.Time
}

// Performer forwards client actions to the app's workers (adapters/perform).
// Perform runs on one of the server's perform workers, never on a
// connection's reader; it should still return within seconds, since the
// actions queued behind it wait.
type Performer interface {
	Perform(ctx context.Context, a Action) error
}

// PerformCauser is implemented by errors that name their cause with a short
// code ("timeout", "http_503"), under which failures are logged once.
type PerformCauser interface {
	PerformCause() string
}

// PerformOptions size the perform queue.
type PerformOptions struct {
	// Workers is how many actions are forwarded at once (default 4). The
	// actions of one connection always go to the same worker, in order.
	Workers int
	// Queue is how many actions may wait, over all workers; past it they
	// are dropped (default 1024).
	Queue int
}

// Defaults of PerformOptions.
const (
	DefaultPerformWorkers = 4
	DefaultPerformQueue   = 1024
)

// PerformStats counts client performs by what became of them; the names
// are the result label of cablecar_performs_total.
type PerformStats struct {
	Forwarded   atomic.Int64 // handed to the Performer, which returned nil
	DroppedFull atomic.Int64 // the queue was full
	Failed      atomic.Int64 // the Performer returned an error, or shutdown came first
	Invalid     atomic.Int64 // data not a JSON object with a string action
	Ignored     atomic.Int64 // no Performer, or no confirmed subscription with that identifier
}

// performer is the server's queue in front of a Performer.
type performer struct {
	p      Performer
	queues []chan Action // one per worker
	log    *slog.Logger
	stats  *PerformStats
	logged sync.Map // cause → struct{}: warned once already
}

// SetPerformer makes client performs go to p through a bounded queue run
// by Serve. Call it before Serve. Without it performs are ignored.
func (s *Server) SetPerformer(p Performer, opts PerformOptions) {
	if opts.Workers <= 0 {
		opts.Workers = DefaultPerformWorkers
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultPerformQueue
	}
	pf := &performer{p: p, log: s.log, stats: &s.performStats}
	per := max(1, opts.Queue/opts.Workers)
	for range opts.Workers {
		pf.queues = append(pf.queues, make(chan Action, per))
	}
	s.performer = pf
}

// PerformStats returns the perform counters.
func (s *Server) PerformStats() *PerformStats { return &s.performStats }

// runPerformers starts the perform workers; they forward until ctx is
// done. The returned function waits for them.
func (s *Server) runPerformers(ctx context.Context) (wait func()) {
	pf := s.performer
	if pf == nil {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, q := range pf.queues {
		wg.Go(func() { pf.work(ctx, q) })
	}
	return wg.Wait
}

// work forwards the actions of q in order. Actions still queued when ctx
// ends are counted as failed: forwarding is at most once.
func (pf *performer) work(ctx context.Context, q chan Action) {
	for {
		select {
		case a := <-q:
			pf.forward(ctx, a)
		case <-ctx.Done():
			if n := len(q); n > 0 {
				pf.stats.Failed.Add(int64(n))
				pf.log.Warn("client actions not forwarded: shutting down", "actions", n)
			}
			return
		}
	}
}

func (pf *performer) forward(ctx context.Context, a Action) {
	err := pf.p.Perform(ctx, a)
	if err == nil {
		pf.stats.Forwarded.Add(1)
		return
	}
	// Logged before counted, so whoever sees the count finds the line.
	pf.once(performCause(err), "client action not forwarded: "+err.Error(), "conn", a.Conn, "channel", a.Channel, "action", a.Name)
	pf.stats.Failed.Add(1)
}

// once logs at warn the first time a cause comes up, at debug after: a
// failing hook must not flood the log with one line per action.
func (pf *performer) once(cause, msg string, args ...any) {
	level := slog.LevelDebug
	if _, seen := pf.logged.LoadOrStore(cause, struct{}{}); !seen {
		level = slog.LevelWarn
		msg += " (logged once per cause; see cablecar_performs_total)"
	}
	pf.log.Log(context.Background(), level, msg, append(args, "cause", cause)...)
}

func performCause(err error) string {
	var pc PerformCauser
	switch {
	case errors.As(err, &pc):
		return pc.PerformCause()
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// perform handles a "message" command: on a confirmed subscription, with
// valid data, the action is queued for the Performer. It never blocks: a
// full queue drops the action.
func (c *conn) perform(identifier string, msg []byte) {
	st := &c.srv.performStats
	pf := c.srv.performer
	if pf == nil {
		c.debug("message command ignored: no CABLECAR_PERFORM_STREAM or CABLECAR_PERFORM_URL", "identifier", identifier)
		st.Ignored.Add(1)
		return
	}
	c.mu.Lock()
	sub := c.subs[identifier]
	confirmed := sub != nil && sub.confirmed
	c.mu.Unlock()
	if !confirmed {
		c.debug("message command ignored: no confirmed subscription with that identifier", "identifier", identifier)
		st.Ignored.Add(1)
		return
	}
	name, data, err := parsePerformData(msg)
	if err != nil {
		c.info("message command ignored: "+err.Error(), "identifier", identifier, "reason", "invalid")
		st.Invalid.Add(1)
		return
	}
	a := Action{Conn: c.id, Identifier: identifier, Channel: sub.channel, Streams: slices.Clone(sub.streams),
		Name: name, Data: data, At: time.Now().UTC()}
	if w := c.who; w != nil {
		a.User, a.Anonymous, a.Claims, a.ConnectionID = w.Subject, w.Anonymous, w.Claims, w.ConnectionID
	}
	select {
	case pf.queues[c.id%uint64(len(pf.queues))] <- a:
	default:
		pf.once("queue_full", "client action dropped: the perform queue is full (CABLECAR_PERFORM_QUEUE)", "conn", c.id, "channel", a.Channel, "action", name)
		st.DroppedFull.Add(1)
	}
}

// parsePerformData returns the action and the JSON object of a message
// command's data, which Rails' client sends as a JSON string.
func parsePerformData(msg []byte) (string, json.RawMessage, error) {
	var cmd struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(msg, &cmd); err != nil {
		return "", nil, fmt.Errorf("not a JSON command: %v", err)
	}
	var text string
	if err := json.Unmarshal(cmd.Data, &text); err != nil {
		return "", nil, errors.New("data is not a JSON string")
	}
	d := json.NewDecoder(strings.NewReader(text))
	var fields map[string]json.RawMessage
	if err := d.Decode(&fields); err != nil || fields == nil {
		return "", nil, errors.New("data is not a JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return "", nil, errors.New("data has more after its JSON object")
	}
	name := "receive" // Rails: a missing or empty action calls the channel's receive
	if raw, ok := fields["action"]; ok && string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", nil, errors.New(`data's "action" is not a string`)
		}
		if s != "" {
			name = s
		}
	}
	return name, json.RawMessage(text), nil
}
