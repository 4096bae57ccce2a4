package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/history"
)

// closeError ends a connection with a specific close frame.
type closeError struct {
	frame  []byte
	reason string // for the log and the disconnect reason
	detail string
}

func (e *closeError) Error() string { return e.reason + ": " + e.detail }

func protocolError(detail string) error {
	return &closeError{frame: frameCloseProtocol, reason: "protocol_error", detail: detail}
}

// open does everything before the read loop: the welcome (or the
// unauthorized disconnect), the hub, the internal channel, the log line. It
// runs on the upgrading goroutine, which ends right after, so the deep
// stacks of logging and hooks are never kept by an idle reader. It reports
// whether a reader should run.
func (c *conn) open() bool {
	if c.who == nil {
		// The JS client retries an HTTP 401 forever; a disconnect frame
		// with reconnect:false makes it stop, as Rails does.
		c.finish("unauthorized", frameDisconnectUnauthorized, frameCloseNormal)
		return false
	}
	c.srv.hub.addConn(c)
	if id := c.who.ConnectionID; id != "" {
		// As Rails does before welcome: the connection's own channel, shared
		// by every connection with the same identifier (one broker
		// subscription, not one per socket).
		c.internal = &subscription{conn: c, internal: true, channel: "(internal)", streams: []string{"action_cable/" + id}}
		c.srv.hub.subscribe(c.internal)
	}
	if c.ext {
		c.send(c.extWelcome()) // may restore a session: after the internal channel, before the reader
	} else {
		c.send(frameWelcome)
	}
	c.info("connected")
	if h := c.srv.hooks.ConnOpened; h != nil {
		h(c.snapshot())
	}
	return true
}

// spend takes one command from the connection's budget, which refills at
// MaxCommandRate per second up to the burst.
func (c *conn) spend() bool {
	rate := float64(c.srv.cfg.MaxCommandRate)
	burst := max(float64(c.srv.cfg.MaxSubscriptions+16), 2*rate)
	now := c.srv.clock()
	if c.budgetAt == 0 {
		c.budget = burst
	} else {
		c.budget = min(burst, c.budget+(now-c.budgetAt).Seconds()*rate)
	}
	c.budgetAt = now
	if c.budget < 1 {
		return false
	}
	c.budget--
	return true
}

// remoteCommand handles a message on the connection's internal channel:
// ActionCable.server.remote_connections.where(…).disconnect publishes
// {"type":"disconnect"[,"reconnect":bool]} there.
func (c *conn) remoteCommand(payload []byte) {
	var cmd struct {
		Type      string `json:"type"`
		Reconnect *bool  `json:"reconnect"`
	}
	if err := json.Unmarshal(payload, &cmd); err != nil || cmd.Type != "disconnect" {
		c.debug("ignored a message on the connection's internal channel", "bytes", len(payload))
		return
	}
	frame := frameDisconnectRemote
	if cmd.Reconnect != nil && !*cmd.Reconnect {
		frame = frameDisconnectRemoteFinal
	}
	c.info("disconnected by the app (remote_connections…disconnect)", "reconnect", cmd.Reconnect == nil || *cmd.Reconnect)
	c.finish("remote", frame, frameCloseNormal)
}

// command is a client frame. identifier must be a JSON string; Rails keys
// subscriptions by that string's exact value.
type command struct {
	Command    string          `json:"command"`
	Identifier json.RawMessage `json:"identifier"`
	Data       json.RawMessage `json:"data"`
}

// handle runs one text message. Anything malformed is logged and ignored:
// the connection stays up, as with Rails.
func (c *conn) handle(msg []byte) {
	cmd, identifier, err := parseCommand(msg)
	if err != nil {
		if c.ext && cmd == "pong" { // the extended protocol's pong has no identifier
			return
		}
		c.info("ignored a frame: "+err.Error(), "bytes", len(msg), "command", cmd)
		return
	}
	if c.ext && c.handleExt(cmd, identifier, msg) {
		return
	}
	switch cmd {
	case "subscribe":
		c.subscribe(identifier)
	case "unsubscribe":
		c.unsubscribe(identifier)
	case "message":
		// cablecar runs no channel code: a perform goes to the app's
		// workers when a Performer is set (perform.go), else nowhere.
		c.perform(identifier, msg)
	default:
		c.info("ignored an unknown command", "command", cmd, "identifier", identifier)
	}
}

// parseCommand decodes a client frame into its command and identifier.
func parseCommand(msg []byte) (cmd, identifier string, err error) {
	if !utf8.Valid(msg) {
		return "", "", errors.New("not valid UTF-8")
	}
	var c command
	if err := json.Unmarshal(msg, &c); err != nil {
		return "", "", fmt.Errorf("not a JSON command: %v", err)
	}
	if err := json.Unmarshal(c.Identifier, &identifier); err != nil {
		return c.Command, "", errors.New("identifier is not a string")
	}
	return c.Command, identifier, nil
}

func (c *conn) subscribe(identifier string) { c.subscribeWith(identifier, nil) }

// subscribeWith is subscribe for an extended-protocol client, which may ask
// for the streams' history (req; nil when it does not).
func (c *conn) subscribeWith(identifier string, req *history.Request) {
	c.mu.Lock()
	_, dup := c.subs[identifier]
	count := len(c.subs)
	c.mu.Unlock()
	if dup {
		// Byte-identical duplicates are ignored, as Rails does: the JS
		// client re-sends subscribe every 500 ms until it hears back.
		c.debug("duplicate subscribe ignored", "identifier", identifier)
		return
	}
	params, channel, err := parseIdentifier(identifier)
	if err != nil {
		c.reject(identifier, channel, err)
		return
	}
	if count >= c.srv.cfg.MaxSubscriptions {
		c.reject(identifier, channel, fmt.Errorf("%w (CABLECAR_MAX_SUBSCRIPTIONS=%d)", errTooManySubscriptions, c.srv.cfg.MaxSubscriptions))
		return
	}
	streams, err := c.srv.authz.Authorize(c.who, channel, params)
	if err != nil {
		c.reject(identifier, channel, err)
		return
	}
	sub := &subscription{conn: c, identifier: identifier, quoted: quoteIdentifier(identifier), channel: channel, streams: streams}
	if c.ext {
		c.prepareHistory(sub, req)
	}
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		c.forgetHist(sub)
		return
	}
	if c.subs == nil {
		c.subs = make(map[string]*subscription, 1)
	}
	c.subs[identifier] = sub
	c.mu.Unlock()
	c.srv.hub.subscribe(sub)
}

func (c *conn) unsubscribe(identifier string) {
	c.mu.Lock()
	sub := c.subs[identifier]
	delete(c.subs, identifier)
	c.mu.Unlock()
	if sub == nil {
		c.info("ignored unsubscribe: not subscribed", "identifier", identifier)
		return
	}
	c.srv.hub.unsubscribe(sub)
	c.ended(sub)
	c.forgetHist(sub)
	c.info("unsubscribed", "channel", sub.channel, "identifier", identifier)
}

// parseIdentifier decodes the identifier's params (numbers stay
// json.Number) and returns its channel.
func parseIdentifier(identifier string) (map[string]any, string, error) {
	d := json.NewDecoder(strings.NewReader(identifier))
	d.UseNumber()
	var params map[string]any
	if err := d.Decode(&params); err != nil || params == nil {
		return nil, "", fmt.Errorf("%w: not a JSON object", errBadIdentifier)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, "", fmt.Errorf("%w: data after the JSON object", errBadIdentifier)
	}
	channel, _ := params["channel"].(string)
	if channel == "" {
		return nil, "", fmt.Errorf(`%w: no "channel"`, errBadIdentifier)
	}
	return params, channel, nil
}

// Rejections decided here rather than by the Authorizer.
var (
	errBadIdentifier        = errors.New("invalid identifier")
	errTooManySubscriptions = errors.New("too many subscriptions on one connection")
)

// rejectReason is the short code logged and counted for a rejection.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, errBadIdentifier):
		return "invalid_identifier"
	case errors.Is(err, errTooManySubscriptions):
		return "too_many_subscriptions"
	}
	return auth.Reason(err)
}

// isNetErr reports a socket-level failure (reset, closed, timeout): the
// peer went away rather than sent something wrong.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}
