package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cablecar/cablecar/adapters/jobs"
	"github.com/cablecar/cablecar/proxy"
)

// Source is what the admin listener observes.
type Source struct {
	Server     *proxy.Server
	Broker     proxy.Broker
	BrokerName string // "memory", "redis", "postgres" or "solid_cable"
	// BrokerReconnects, when set, reports reconnects for the metric.
	BrokerReconnects func() int64
	// BrokerSeries are the broker's own metrics (e.g. Solid Cable's
	// polls), registered beside the others (default none).
	BrokerSeries []prometheus.Collector
	// BrokerDetail, when set, adds its fields to /api/status's "broker"
	// object (e.g. Solid Cable's "lag_seconds").
	BrokerDetail func() map[string]any
	// Jobs are the job watchers' counters, one per watched backend.
	Jobs []*jobs.Stats
	// Level is the process log level, changed by PUT /loglevel.
	Level *slog.LevelVar
	// Page, when set, is served at "/" (the live status page).
	Page    http.Handler
	Version string
}

// Admin serves metrics, the status API and the log level. Create it with
// New, install Hooks on the proxy before it serves, then run Serve.
type Admin struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	metrics *metrics
	feed    *feed
	started time.Time
	mux     *http.ServeMux
}

// New builds the admin listener; it starts nothing.
func New(cfg Config, src Source, logger *slog.Logger) *Admin {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Admin{cfg: cfg.withDefaults(), src: src, log: logger, metrics: newMetrics(src), feed: newFeed(), started: time.Now()}
	a.mux = http.NewServeMux()
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("GET /api/status", a.serveStatus)
	a.mux.HandleFunc("GET /api/events", a.serveEvents)
	a.mux.HandleFunc("GET /loglevel", a.serveLevel)
	a.mux.HandleFunc("PUT /loglevel", a.setLevel)
	// Profiles, for finding what a busy or large node spends its CPU and
	// memory on; behind the same token as everything here.
	a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	a.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if src.Page != nil {
		a.mux.Handle("/", src.Page)
	}
	return a
}

// Config returns the effective configuration.
func (a *Admin) Config() Config { return a.cfg }

// Hooks returns the proxy hooks that feed the metrics and the status page.
func (a *Admin) Hooks() proxy.Hooks { return joinHooks(a.metrics.hooks(), a.feed.hooks()) }

// Handler returns the admin HTTP handler, token check included.
func (a *Admin) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Token != "" && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cablecar admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (CABLECAR_ADMIN_TOKEN)"})
			return
		}
		a.mux.ServeHTTP(w, r)
	})
}

func (a *Admin) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("admin_token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) == 1
}

// Serve runs the listener and a broker watcher until ctx is done.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	go a.watchBroker(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx) // event streams end when their requests do
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener %s: %w", ln.Addr(), err)
	}
	return nil
}

// watchBroker turns broker health changes into events.
func (a *Admin) watchBroker(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		up, reason := a.brokerState(ctx)
		state := fmt.Sprint(up, reason)
		if state != last {
			last = state
			a.feed.record("broker", brokerRecord{At: time.Now(), Up: up, Reason: reason}, nil)
		}
	}
}

func (a *Admin) brokerState(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := a.src.Broker.Health(ctx); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// Limits of the status snapshot.
const (
	connsListed   = 1000
	streamsListed = 1000
)

// brokerStatus is /api/status's "broker" object.
func (a *Admin) brokerStatus(up bool, reason string) map[string]any {
	m := map[string]any{"name": a.src.BrokerName, "up": up, "reason": reason}
	if a.src.BrokerDetail != nil {
		for k, v := range a.src.BrokerDetail() {
			if _, taken := m[k]; !taken {
				m[k] = v
			}
		}
	}
	return m
}

func (a *Admin) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := a.src.Server.Stats()
	up, reason := a.brokerState(r.Context())
	b, rej, af := a.feed.recent()
	writeJSON(w, http.StatusOK, map[string]any{
		"version":    a.src.Version,
		"started_at": a.started.UTC(),
		"broker":     a.brokerStatus(up, reason),
		"log_level":  levelName(a.src.Level),
		"counters": map[string]int64{
			"connections_open": st.ConnsOpen.Load(), "connections_total": st.ConnsTotal.Load(),
			"auth_failures": st.AuthFailures.Load(), "subscriptions_confirmed": st.SubsConfirmed.Load(),
			"subscriptions_rejected": st.SubsRejected.Load(), "broadcasts_received": st.BroadcastsReceived.Load(),
			"invalid_payloads": st.InvalidPayloads.Load(), "dropped_closed": st.DroppedClosed.Load(),
			"disconnects_slow": st.DisconnectsSlow.Load(),
		},
		"connections":          nonNil(a.src.Server.Conns(connsListed)),
		"streams":              nonNil(a.src.Server.Streams(streamsListed)),
		"recent_broadcasts":    b,
		"recent_rejections":    rej,
		"recent_auth_failures": af,
		"jobs":                 a.jobSnapshots(),
	})
}

// jobSnapshots describes each watched job backend.
func (a *Admin) jobSnapshots() []jobs.Snapshot {
	out := make([]jobs.Snapshot, len(a.src.Jobs))
	for i, st := range a.src.Jobs {
		out[i] = st.Snapshot()
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// serveEvents streams events as Server-Sent Events until the client goes.
func (a *Admin) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch := a.feed.subscribe()
	defer a.feed.unsubscribe(ch)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			_, _ = io.WriteString(w, ": ping\n\n")
		case ev := <-ch:
			_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (a *Admin) serveLevel(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"level": levelName(a.src.Level)})
}

// setLevel changes the log level at run time: verbose cable logging is
// something you turn on for ten minutes, not redeploy for.
func (a *Admin) setLevel(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 256))
	text := strings.TrimSpace(string(body))
	var j struct{ Level string }
	if strings.HasPrefix(text, "{") && json.Unmarshal(body, &j) == nil {
		text = j.Level
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(text)); err != nil || a.src.Level == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("level %q: want debug, info, warn or error", text)})
		return
	}
	a.src.Level.Set(lvl)
	a.log.Warn("log level changed", "level", levelName(a.src.Level), "by", "PUT /loglevel", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"level": levelName(a.src.Level)})
}

func levelName(l *slog.LevelVar) string {
	if l == nil {
		return "info"
	}
	return strings.ToLower(l.Level().String())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// joinHooks runs both observers' hooks.
func joinHooks(a, b proxy.Hooks) proxy.Hooks {
	return proxy.Hooks{
		ConnOpened:   join1(a.ConnOpened, b.ConnOpened),
		ConnClosed:   join2(a.ConnClosed, b.ConnClosed),
		AuthFailed:   join3(a.AuthFailed, b.AuthFailed),
		Confirmed:    join2(a.Confirmed, b.Confirmed),
		Rejected:     join5(a.Rejected, b.Rejected),
		Unsubscribed: join2(a.Unsubscribed, b.Unsubscribed),
		Broadcast:    join4(a.Broadcast, b.Broadcast),
		Dropped:      join2(a.Dropped, b.Dropped),
	}
}

func join1[A any](f, g func(A)) func(A) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(x A) { f(x); g(x) }
}

func join2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(x A, y B) { f(x, y); g(x, y) }
}

func join3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(x A, y B, z C) { f(x, y, z); g(x, y, z) }
}

func join4[A, B, C, D any](f, g func(A, B, C, D)) func(A, B, C, D) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(x A, y B, z C, u D) { f(x, y, z, u); g(x, y, z, u) }
}

func join5[A, B, C, D, E any](f, g func(A, B, C, D, E)) func(A, B, C, D, E) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(x A, y B, z C, u D, v E) { f(x, y, z, u, v); g(x, y, z, u, v) }
}
