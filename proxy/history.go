package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/cablecar/cablecar/history"
)

// The AnyCable extended protocol (actioncable-v1-ext-json), the part that
// carries stream history:
//
//   - a message on a recorded stream carries its position:
//     {"identifier":…,"message":…,"stream_id":"<stream>","epoch":"<epoch>","offset":<n>};
//   - subscribe may carry "history":{"since":<unix s>,"streams":{"<stream>":{"epoch":…,"offset":…}}},
//     and the "history" command asks the same of a subscription later;
//     the answer, after confirm_subscription, is the missed messages in
//     order, then {"type":"confirm_history"}, or {"type":"reject_history"}
//     when the history kept does not reach back that far;
//   - the "pong" command answers a ping (accepted and ignored).
//
// Plain actioncable-v1-json connections never take these paths: their
// subscriptions receive the stream as published, frames shared as before.
//
// An extended connection's subscription gets a recorded stream S through
// the broker stream history.InternalPrefix+S, whose messages are the
// recorded copies with their positions (see package history). Until the
// answer to a history request is queued, such messages are held back, then
// queued after the history, those already sent in it skipped: every
// message arrives once, in order.

// extProtocol is the AnyCable extended protocol's WebSocket subprotocol.
const extProtocol = "actioncable-v1-ext-json"

// historyTimeout bounds reading the history for one request.
const historyTimeout = 2 * time.Second

// historySupport is what the server needs to answer history requests.
type historySupport struct {
	reader history.Reader
	rules  history.Rules
}

// SetHistory turns stream history on for extended-protocol clients: the
// streams rules cover reach them with their positions, and their history
// requests are answered from r. The broker must deliver the recorded
// copies (adapters/redis History, or the memory broker's SetHistory).
// Call it before Serve.
func (s *Server) SetHistory(r history.Reader, rules history.Rules) {
	s.history = &historySupport{reader: r, rules: rules}
	s.hub.recorded = true
}

// subHistory is an extended subscription's history state, guarded by
// conn.mu. It lives in Server.hists, not in the subscription, so that
// plain subscriptions stay a 96-byte allocation.
type subHistory struct {
	req      *history.Request            // a request to answer once the subscription is live
	catching bool                        // live recorded messages wait in held until the answer is queued
	held     []heldFrame                 // those messages
	heldSize int                         // their bytes
	last     map[string]history.Position // per stream, the newest message queued
}

// heldFrame is a recorded message's frame waiting for a history answer.
type heldFrame struct {
	frame  []byte
	stream string
	pos    history.Position
}

// hist returns sub's history state; nil for plain subscriptions and
// extended ones that neither asked for history nor get a recorded stream.
func (s *Server) hist(sub *subscription) *subHistory {
	v, ok := s.hists.Load(sub)
	if !ok {
		return nil
	}
	return v.(*subHistory)
}

// forgetHist drops sub's history state once it has left the hub.
func (c *conn) forgetHist(sub *subscription) {
	if c.ext {
		c.srv.hists.Delete(sub)
	}
}

// historyRequest reads the "history" field of an extended client's command.
func historyRequest(msg []byte) *history.Request {
	var c struct {
		History *history.Request `json:"history"`
	}
	if json.Unmarshal(msg, &c) != nil || c.History == nil {
		return nil
	}
	if c.History.Since <= 0 && len(c.History.Streams) == 0 {
		return nil
	}
	return c.History
}

// handleExt runs the extended protocol's commands and its subscribe; it
// reports whether it took cmd.
func (c *conn) handleExt(cmd, identifier string, msg []byte) bool {
	switch cmd {
	case "subscribe":
		c.subscribeWith(identifier, historyRequest(msg))
	case "history":
		c.historyCommand(identifier, historyRequest(msg))
	case "pong":
		// Only a sign of life (one without an identifier never gets
		// here: handle drops it first).
	default:
		return false
	}
	return true
}

// prepareHistory points an extended subscription's recorded streams at
// their annotated copies and notes its history request. It runs before
// the hub sees sub.
func (c *conn) prepareHistory(sub *subscription, req *history.Request) {
	hs := c.srv.history
	if hs == nil {
		if req != nil {
			// Nothing is recorded: an empty answer.
			c.srv.hists.Store(sub, &subHistory{req: req, last: map[string]history.Position{}})
		}
		return
	}
	var streams []string
	for i, name := range sub.streams {
		if _, ok := hs.rules.Match(name); !ok {
			continue
		}
		if streams == nil {
			streams = append([]string(nil), sub.streams...)
		}
		streams[i] = history.InternalPrefix + name
	}
	if streams == nil && req == nil {
		return
	}
	if streams != nil {
		sub.streams = streams
	}
	c.srv.hists.Store(sub, &subHistory{req: req, catching: req != nil, last: map[string]history.Position{}})
}

// historyCommand answers the "history" command for a live subscription.
func (c *conn) historyCommand(identifier string, req *history.Request) {
	if req == nil {
		c.info("ignored a history command without a request", "identifier", identifier)
		return
	}
	c.mu.Lock()
	sub := c.subs[identifier]
	if sub == nil {
		c.mu.Unlock()
		c.info("ignored a history command: not subscribed", "identifier", identifier)
		return
	}
	hs := c.srv.hist(sub)
	if hs == nil {
		hs = &subHistory{last: map[string]history.Position{}}
		c.srv.hists.Store(sub, hs)
	}
	if hs.req != nil {
		c.mu.Unlock()
		c.debug("history command ignored: a request is being answered", "identifier", identifier)
		return
	}
	hs.req, hs.catching = req, true
	live := sub.confirmed
	c.mu.Unlock()
	if live { // else confirm starts it
		go c.answerHistory(sub)
	}
}

// recordedPart is the answer for one stream.
type recordedPart struct {
	stream  string
	epoch   string
	entries []history.Entry
}

// answerHistory reads what sub's request asks for and queues it, then the
// messages held meanwhile, then confirm_history; or reject_history. It
// runs on a goroutine of its own once every stream of sub is live, so
// whatever the store lacks arrives live and is held.
func (c *conn) answerHistory(sub *subscription) {
	hs := c.srv.hist(sub)
	if hs == nil { // unsubscribed meanwhile
		return
	}
	c.mu.Lock()
	req := hs.req
	c.mu.Unlock()
	parts, err := c.readHistory(sub.streams, req)
	if err != nil {
		c.info("history request rejected: "+err.Error(), "identifier", sub.identifier)
	}
	c.mu.Lock()
	hs.req, hs.catching = nil, false
	held := hs.held
	hs.held, hs.heldSize = nil, 0
	if c.subs[sub.identifier] != sub || c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	var frames [][]byte
	if err != nil {
		frames = append(frames, identifierFrame(sub.quoted, "reject_history"))
	} else {
		for _, p := range parts {
			quotedStream := quoteIdentifier(p.stream)
			for _, e := range p.entries {
				pos := history.Position{Epoch: p.epoch, Offset: e.Offset}
				if hs.advance(p.stream, pos) {
					frames = append(frames, recordedFrame(sub.quoted, e.Data, quotedStream, pos))
				}
			}
		}
		frames = append(frames, identifierFrame(sub.quoted, "confirm_history"))
	}
	for _, h := range held {
		if hs.advance(h.stream, h.pos) {
			frames = append(frames, h.frame)
		}
	}
	claimed := false
	for _, f := range frames {
		claimed = c.queueLocked(f) || claimed
	}
	c.mu.Unlock()
	if claimed {
		c.srv.writers.schedule(c)
	}
}

// readHistory selects what req asks for on each recorded stream.
func (c *conn) readHistory(streams []string, req *history.Request) ([]recordedPart, error) {
	hs := c.srv.history
	if hs == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	var parts []recordedPart
	for _, name := range streams {
		stream, ok := strings.CutPrefix(name, history.InternalPrefix)
		if !ok {
			continue
		}
		rule, _ := hs.rules.Match(stream)
		snap, err := hs.reader.Snapshot(ctx, stream)
		if err != nil {
			return nil, err
		}
		entries, err := history.Select(snap, stream, *req, time.Now(), rule.TTL)
		if err != nil {
			return nil, err
		}
		parts = append(parts, recordedPart{stream: stream, epoch: snap.Epoch, entries: entries})
	}
	return parts, nil
}

// advance records pos as queued on stream and reports whether it is new:
// past the last one queued, or in another epoch.
func (hs *subHistory) advance(stream string, pos history.Position) bool {
	last, ok := hs.last[stream]
	if ok && last.Epoch == pos.Epoch && pos.Offset <= last.Offset {
		return false
	}
	hs.last[stream] = pos
	return true
}

// sendRecorded is sendBatched for a recorded message on an extended
// subscription: held while a history answer is pending, skipped when that
// answer already had it.
func (c *conn) sendRecorded(sub *subscription, frame []byte, stream string, pos history.Position, b *flushBatch) *flushBatch {
	hs := c.srv.hist(sub)
	c.mu.Lock()
	claimed := false
	switch {
	case hs == nil: // a plain subscription to an internal stream's name
		claimed = c.queueLocked(frame)
	case hs.catching:
		hs.held = append(hs.held, heldFrame{frame: frame, stream: stream, pos: pos})
		hs.heldSize += len(frame)
		if c.pending+hs.heldSize > c.srv.cfg.MaxPendingBytes {
			hs.held, hs.heldSize = nil, 0
			c.srv.stats.DisconnectsSlow.Add(1)
			c.finishLocked("too_slow", frameDisconnectTooSlow, frameCloseNormal)
		}
	case hs.advance(stream, pos):
		claimed = c.queueLocked(frame)
	}
	c.mu.Unlock()
	if claimed {
		b = c.srv.writers.add(b, c)
	}
	return b
}

// deliverRecorded fans a recorded message's annotated copy out to the
// extended subscriptions of its stream, one frame per identifier.
func (h *hub) deliverRecorded(name string, payload []byte) {
	stream := name[len(history.InternalPrefix):]
	epoch, offset, data, err := history.ParseAnnotated(payload)
	if err == nil && !json.Valid(data) {
		err = errInvalidRecorded
	}
	if err != nil {
		h.stats.InvalidPayloads.Add(1)
		h.log.Warn("recorded broadcast dropped: "+err.Error(), "stream", stream, "bytes", len(payload))
		return
	}
	pos := history.Position{Epoch: epoch, Offset: offset}
	s := h.streamShard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.m[name]
	if st == nil {
		return
	}
	quotedStream := quoteIdentifier(stream)
	for _, g := range st.groups {
		frame := recordedFrame(g.quoted, data, quotedStream, pos)
		var batch *flushBatch
		for sub := range g.subs {
			batch = sub.conn.sendRecorded(sub, frame, stream, pos, batch)
		}
		h.writers.submit(batch)
	}
}

var errInvalidRecorded = errors.New("payload is not valid JSON")

// recordedFrame builds a message frame with the stream's position:
// {"identifier":<quoted>,"message":<payload>,"stream_id":<stream>,"epoch":<epoch>,"offset":<n>}.
func recordedFrame(quoted, payload, quotedStream []byte, pos history.Position) []byte {
	p := make([]byte, 0, 64+len(quoted)+len(payload)+len(quotedStream)+len(pos.Epoch))
	p = append(p, `{"identifier":`...)
	p = append(p, quoted...)
	p = append(p, `,"message":`...)
	p = append(p, payload...)
	p = append(p, `,"stream_id":`...)
	p = append(p, quotedStream...)
	p = append(p, `,"epoch":`...)
	p = append(p, quoteIdentifier(pos.Epoch)...)
	p = append(p, `,"offset":`...)
	p = strconv.AppendUint(p, pos.Offset, 10)
	p = append(p, '}')
	return textFrame(p)
}
