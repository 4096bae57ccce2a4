package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/cablecar/cablecar/auth"
)

// Authenticator decides who a connecting client is. *auth.Auth implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (*auth.Identity, error)
	RedactQuery(rawQuery string) string
}

// Authorizer decides which streams a subscription gets. *auth.Auth
// implements it.
type Authorizer interface {
	Authorize(id *auth.Identity, channel string, params map[string]any) ([]string, error)
}

// Server is the cable endpoint plus /health and /_broadcast. Create it with
// New and run it with Serve; it is safe for concurrent use.
type Server struct {
	cfg     Config
	broker  Broker
	authn   Authenticator
	authz   Authorizer
	log     *slog.Logger
	origins []originRule
	hub     *hub
	stats   Stats
	hooks   Hooks
	mux     *http.ServeMux
	// replayer, when set before Serve, sends new subscriptions their
	// streams' last state; read-only after.
	replayer Replayer
	// performer, when set before Serve, forwards client performs
	// (perform.go); read-only after.
	performer    *performer
	performStats PerformStats
	// history, when set before Serve, serves extended-protocol clients
	// their streams' history (history.go); read-only after.
	history *historySupport
	// sessions keeps ended extended connections' subscriptions
	// (session.go).
	sessions sessionStore
	// hists holds extended subscriptions' history state
	// (*subscription → *subHistory; history.go).
	hists sync.Map

	// poller reads idle connections without a goroutine each; nil where
	// epoll is unavailable or before Serve. Set before the HTTP server
	// starts, read-only after.
	poller  *poller
	rawIOs  sync.Pool   // *rawIO, lent to one goroutine at a time
	writers *writerPool // run by Serve; nil in a Server not made by New

	started  time.Time // monotonic origin of clock
	nextID   atomic.Uint64
	draining atomic.Bool
	// connsMu orders conns.Add against the drain's conns.Wait: a
	// WaitGroup must not be added to while it may be waited on at zero.
	connsMu sync.Mutex
	drained bool           // guarded by connsMu: no new readers after this
	conns   sync.WaitGroup // one per opened connection, done by its end
}

// New checks cfg and builds a server. It starts nothing.
func New(cfg Config, broker Broker, authn Authenticator, authz Authorizer, logger *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	origins, _ := parseOrigins(cfg.AllowedOrigins) // validated above
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, broker: broker, authn: authn, authz: authz, log: logger, origins: origins, started: time.Now()}
	s.rawIOs.New = func() any { return newRawIO() }
	s.writers = newWriterPool()
	s.hub = newHub(broker, logger, &s.stats, &s.hooks)
	s.hub.writers = s.writers
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(cfg.Path, s.serveCable)
	s.mux.HandleFunc("/health", s.serveHealth)
	s.mux.HandleFunc("/_broadcast", s.serveBroadcast)
	return s, nil
}

// clock is monotonic time since New, never 0 after it: 8 bytes where a
// connection would otherwise keep a 24-byte time.Time.
func (s *Server) clock() time.Duration { return max(time.Since(s.started), 1) }

// Handle adds another handler on the main listener (the dev console).
// Call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Stats returns the live counters.
func (s *Server) Stats() *Stats { return &s.stats }

// SetHooks installs the observer's hooks. Call it before Serve.
func (s *Server) SetHooks(h Hooks) { s.hooks = h }

// Conns lists up to limit open connections.
func (s *Server) Conns(limit int) []ConnInfo {
	var out []ConnInfo
	s.hub.eachConn(func(c *conn) {
		if len(out) < limit {
			out = append(out, c.snapshot())
		}
	})
	return out
}

// Streams lists up to limit streams that have local subscribers.
func (s *Server) Streams(limit int) []StreamInfo { return s.hub.streamList(limit) }

// StreamCount reports how many streams have local subscribers.
func (s *Server) StreamCount() int { return s.hub.streamCount() }

// Config returns the effective configuration, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Serve runs the broker, the heartbeat and the HTTP server on ln until ctx
// is done, then drains: every client gets server_restart and a close
// frame within ShutdownTimeout. It returns nil after a clean drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- s.broker.Run(brokerCtx, s.hub.deliver, s.hub.activate) }()

	pollCtx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPoll()
	pollDone := s.startPoller(pollCtx)

	// The writers outlive the drain, which writes every client's last
	// frames.
	writeCtx, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	writersDone := make(chan struct{})
	go func() { s.writers.run(writeCtx); close(writersDone) }()
	defer func() { stopWriters(); <-writersDone }()

	// The perform workers outlive the drain too: actions read before the
	// clients were told to go are still forwarded.
	performCtx, stopPerform := context.WithCancel(context.WithoutCancel(ctx))
	waitPerform := s.runPerformers(performCtx)
	defer func() { stopPerform(); waitPerform() }()

	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState: growHandshakeStack}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go s.heartbeat(pingCtx)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case err := <-brokerDone:
		return fmt.Errorf("broker stopped: %w", err)
	case err := <-pollDone:
		return fmt.Errorf("poller stopped: %w", err)
	}
	s.drain(hs)
	stopPoll()
	if s.poller != nil {
		<-pollDone
	}
	stopBroker()
	<-brokerDone
	return nil
}

// startPoller creates the epoll poller and runs it until ctx is done; the
// channel reports why it stopped. Without one (not Linux, or epoll
// failed), every connection gets a reader goroutine and the channel never
// fires.
func (s *Server) startPoller(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	p, err := newPoller(s.hub)
	if err != nil {
		level := slog.LevelWarn // on Linux: idle connections will cost more memory
		if errors.Is(err, errNoPoller) {
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "reading each connection with a goroutine of its own: "+err.Error())
		return done
	}
	s.poller = p
	go func() { done <- p.run(ctx) }()
	return done
}

// drain stops accepting, then closes every connection with server_restart.
func (s *Server) drain(hs *http.Server) {
	s.draining.Store(true)
	s.connsMu.Lock()
	s.drained = true
	s.connsMu.Unlock()
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_ = hs.Shutdown(sctx) // stops the listener; hijacked conns are ours
	n := s.stats.ConnsOpen.Load()
	s.log.Info("shutting down: disconnecting clients", "connections", n, "timeout", s.cfg.ShutdownTimeout)
	s.hub.eachConn(func(c *conn) { c.finish("server_restart", frameDisconnectRestart, frameCloseNormal) })
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		s.log.Info("shutdown complete", "connections", n)
	case <-sctx.Done():
		s.log.Warn("shutdown timeout: closing remaining connections", "open", s.stats.ConnsOpen.Load())
		var left []*conn
		s.hub.eachConn(func(c *conn) { left = append(left, c) })
		for _, c := range left { // outside the hub lock: closing may end c
			c.forceClose()
		}
	}
}

// pingSlices is how many groups of connections take turns at the pings.
// Group k (the connection shards i with i mod pingSlices = k) is pinged
// PingInterval/pingSlices after group k-1, so every connection still
// hears a ping every PingInterval, as from Rails, but never all at once:
// a ping to each of 5,000 connections is 25 ms of writes, and the
// broadcasts that queued behind it made the fan-out's p99.
const pingSlices = 8

// heartbeat pings every open connection each PingInterval, one slice of
// them at a time (pingSlices), with a frame built once per slice. The
// writer pool puts it on the sockets, so pinging idle connections starts
// no goroutine per connection.
func (s *Server) heartbeat(ctx context.Context) {
	t := time.NewTicker(max(s.cfg.PingInterval/pingSlices, 1))
	defer t.Stop()
	for slice := 0; ; slice = (slice + 1) % pingSlices {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			frame := pingFrame(now.Unix())
			var batch *flushBatch
			n := s.hub.eachConnIn(slice, pingSlices, func(c *conn) { batch = c.sendBatched(frame, batch) })
			s.writers.submit(batch)
			s.stats.PingsSent.Add(int64(n))
		}
	}
}

// serveCable checks the origin, authenticates, upgrades and hands the
// socket to its reader (see read.go), so the HTTP server's buffers and
// this goroutine are freed.
func (s *Server) serveCable(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		notFound(w)
		return
	}
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := checkOrigin(s.origins, r.Header.Get("Origin"), r.Host); err != nil {
		// Rails answers 404 here; the log says why.
		s.log.Info("connection refused: "+err.Error(), "remote", r.RemoteAddr, "reason", "origin")
		if h := s.hooks.AuthFailed; h != nil {
			h(r.RemoteAddr, "origin", err.Error())
		}
		notFound(w)
		return
	}
	who, authErr := s.authn.Authenticate(r)
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "actioncable-v1-json" || p == extProtocol }}
	hw := &heldResponse{ResponseWriter: w}
	nc, rw, hs, err := u.Upgrade(r, hw)
	if err != nil {
		s.log.Debug("upgrade failed", "remote", r.RemoteAddr, "err", err)
		if nc != nil { // hijacked: the refusal (400, 426…) is ours to send, and the socket to close
			_, _ = nc.Write(hw.response())
			nc.Close()
		}
		return
	}
	if rw.Reader.Buffered() > 0 {
		// The client spoke before the handshake finished.
		s.log.Info("connection refused: data before the handshake completed", "remote", r.RemoteAddr)
		nc.Close()
		return
	}
	// reading: this goroutine holds the connection until startReading.
	// The 101 waits in the queue for the welcome (heldResponse).
	resp := hw.response()
	c := &conn{id: s.nextID.Add(1), nc: nc, fd: socketFD(nc), srv: s, who: who, remote: r.RemoteAddr, since: time.Now().UnixNano(), reading: true,
		ext: hs.Protocol == extProtocol, queue: [][]byte{resp}, pending: len(resp)}
	s.stats.ConnsTotal.Add(1)
	if authErr != nil {
		c.who = nil
		s.stats.AuthFailures.Add(1)
		s.log.Info("connection refused: "+authErr.Error(), "remote", r.RemoteAddr, "reason", auth.Reason(authErr),
			"path", r.URL.Path, "query", s.authn.RedactQuery(r.URL.RawQuery))
		if h := s.hooks.AuthFailed; h != nil {
			h(r.RemoteAddr, auth.Reason(authErr), authErr.Error())
		}
	}
	s.connsMu.Lock()
	if s.drained { // upgraded while shutdown began
		s.connsMu.Unlock()
		c.finish("server_restart", frameDisconnectRestart, frameCloseNormal)
		return
	}
	if c.ext && c.who != nil { // open will succeed, and end will drop it
		s.sessions.register(c.id, r.URL.Query().Get("sid"))
	}
	// open only queues frames and registers the conn: cheap enough to run
	// under connsMu, so a drain that starts now sees this conn in the hub.
	ok := c.open()
	if ok {
		s.conns.Add(1)
	}
	s.connsMu.Unlock()
	if ok {
		c.startReading()
	}
}

func isUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("Page not found"))
}

// errDraining is the health reason during shutdown.
var errDraining = errors.New("shutting down")
