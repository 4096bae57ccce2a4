package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/cablecar/cablecar/history"
)

// Session restore, the other half of the AnyCable extended protocol: the
// welcome of an extended connection carries a session id ("sid"); when
// the connection ends, its subscriptions are kept under that id for
// sessionTTL. A client that reconnects with ?sid=<id> (the same user, the
// connection authenticated again as usual) gets them back without
// subscribing: {"type":"welcome","sid":<new id>,"restored":true,
// "restored_ids":[…]}, no confirm_subscription, and it then asks for the
// history of each with the history command. Sessions live in the node's
// memory: a client that reconnects to another node, or after sessionTTL,
// is welcomed afresh and subscribes again, with its positions.

// sessionTTL is how long an ended extended connection's session can be
// restored.
const sessionTTL = 5 * time.Minute

// extConn is what an open extended-protocol connection has beyond a plain
// one, kept in sessionStore.live so that plain connections pay nothing.
type extConn struct {
	sid  string // this connection's session id
	prev string // the session to restore (?sid=), "" for none; used by open only
}

// sessionStore keeps open extended connections' session ids, and ended
// ones' subscriptions.
type sessionStore struct {
	mu        sync.Mutex
	live      map[uint64]*extConn // by conn.id, from serveCable until release
	m         map[string]savedSession
	lastSweep time.Time
}

// register gives connection id a session id; prev is the one it asks to
// restore.
func (s *sessionStore) register(id uint64, prev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = map[uint64]*extConn{}
	}
	s.live[id] = &extConn{sid: newSessionID(), prev: prev}
}

// opened returns connection id's session and forgets what it asked to
// restore.
func (s *sessionStore) opened(id uint64) (sid, prev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.live[id]
	if e == nil {
		return newSessionID(), ""
	}
	prev, e.prev = e.prev, ""
	return e.sid, prev
}

// drop forgets connection id and returns its session id.
func (s *sessionStore) drop(id uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.live[id]
	delete(s.live, id)
	if e == nil {
		return ""
	}
	return e.sid
}

type savedSession struct {
	user    string
	subs    []savedSub
	expires time.Time
}

type savedSub struct {
	identifier, channel string
	streams             []string // as authorized, without history's internal names
}

// save keeps subs under sid.
func (s *sessionStore) save(sid, user string, subs map[string]*subscription) {
	saved := savedSession{user: user, expires: time.Now().Add(sessionTTL)}
	for _, sub := range subs {
		streams := make([]string, len(sub.streams))
		for i, name := range sub.streams {
			streams[i] = strings.TrimPrefix(name, history.InternalPrefix)
		}
		saved.subs = append(saved.subs, savedSub{identifier: sub.identifier, channel: sub.channel, streams: streams})
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]savedSession{}
	}
	if now.Sub(s.lastSweep) > time.Second {
		s.lastSweep = now
		for id, v := range s.m {
			if now.After(v.expires) {
				delete(s.m, id)
			}
		}
	}
	s.m[sid] = saved
}

// take removes and returns sid's session if it is user's and not expired.
func (s *sessionStore) take(sid, user string) (savedSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[sid]
	if !ok || v.user != user || time.Now().After(v.expires) {
		return savedSession{}, false
	}
	delete(s.m, sid)
	return v, true
}

// newSessionID is 32 hex digits from crypto/rand.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// extWelcome restores the session the client asked for, if it can, and
// returns the welcome frame.
func (c *conn) extWelcome() []byte {
	w := struct {
		Type        string   `json:"type"`
		Sid         string   `json:"sid"`
		Restored    bool     `json:"restored,omitempty"`
		RestoredIDs []string `json:"restored_ids,omitempty"`
	}{Type: "welcome"}
	sid, prev := c.srv.sessions.opened(c.id)
	w.Sid = sid
	if prev != "" {
		w.RestoredIDs = c.restoreSession(prev)
		w.Restored = len(w.RestoredIDs) > 0
	}
	b, _ := json.Marshal(w)
	return textFrame(b)
}

// restoreSession subscribes c to the saved session's subscriptions again,
// without asking the authorizer, and returns their identifiers.
func (c *conn) restoreSession(sid string) []string {
	saved, ok := c.srv.sessions.take(sid, c.user())
	if !ok {
		c.debug("no session to restore", "sid", sid)
		return nil
	}
	ids := make([]string, 0, len(saved.subs))
	for _, s := range saved.subs {
		sub := &subscription{conn: c, identifier: s.identifier, quoted: quoteIdentifier(s.identifier),
			channel: s.channel, streams: s.streams, restored: true}
		c.prepareHistory(sub, nil)
		c.mu.Lock()
		if c.subs == nil {
			c.subs = make(map[string]*subscription, len(saved.subs))
		}
		c.subs[s.identifier] = sub
		c.mu.Unlock()
		c.srv.hub.subscribe(sub)
		ids = append(ids, s.identifier)
	}
	c.info("session restored", "subscriptions", len(ids))
	return ids
}

// saveSession keeps an ending extended connection's subscriptions.
func (c *conn) saveSession(subs map[string]*subscription) {
	if !c.ext {
		return
	}
	sid := c.srv.sessions.drop(c.id)
	if sid == "" || c.who == nil || len(subs) == 0 {
		return
	}
	c.srv.sessions.save(sid, c.user(), subs)
}
