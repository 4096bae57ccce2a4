package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/cablecar/cablecar/adapters/memory"
	"github.com/cablecar/cablecar/adapters/postgres"
	"github.com/cablecar/cablecar/adapters/redis"
	"github.com/cablecar/cablecar/adapters/solidcable"
	"github.com/cablecar/cablecar/admin"
	"github.com/cablecar/cablecar/auth"
	"github.com/cablecar/cablecar/console"
	"github.com/cablecar/cablecar/proxy"
	"github.com/cablecar/cablecar/upstream"
)

// Interface guards: the adapters satisfy proxy.Broker without importing it.
var (
	_ proxy.Broker        = (*memory.Broker)(nil)
	_ proxy.Broker        = (*redis.Broker)(nil)
	_ proxy.Broker        = (*postgres.Broker)(nil)
	_ proxy.Broker        = (*solidcable.Broker)(nil)
	_ proxy.Authenticator = (*auth.Auth)(nil)
	_ proxy.Authorizer    = (*auth.Auth)(nil)
)

// devAddr is where `cablecar dev` listens unless CABLECAR_ADDR says
// otherwise (and that must be loopback too).
const devAddr = "127.0.0.1:8080"

// devRoute lets the console subscribe to any stream by name.
const devRoute = "public:StreamChannel={params.stream}"

// serve runs the sidecar until ctx is done.
func serve(ctx context.Context, dev bool, stderr io.Writer) error {
	cfg, err := loadConfig(nil)
	if err != nil {
		return err
	}
	log, level, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	if dev {
		if err := devConfig(&cfg); err != nil {
			return err
		}
	}
	a, err := auth.New(cfg.Auth)
	if err != nil {
		return err
	}
	broker, closeBroker, err := newBroker(cfg, dev, log)
	if err != nil {
		return err
	}
	defer closeBroker()
	srv, err := proxy.New(cfg.Proxy, broker, a, a, log)
	if err != nil {
		return err
	}
	closePerformer, err := setPerformer(cfg, srv, log)
	if err != nil {
		return err
	}
	defer closePerformer()
	historyStopped, err := startHistory(ctx, cfg.History, broker, srv, log)
	if err != nil {
		return err
	}
	defer historyStopped()
	jw, err := newJobWatch(cfg, broker, a, log)
	if err != nil {
		return err
	}
	if jw != nil {
		defer jw.close()
		srv.SetReplayer(jw.replayer)
		jw.run(ctx)
	}
	switch {
	case cfg.Upstream.Enabled():
		app, err := upstream.Handler(cfg.Upstream, log)
		if err != nil {
			return err
		}
		srv.Handle("/", app) // everything but the cable, /health and /_broadcast
		log.Info("proxy mode: other requests go to the app", "upstream", cfg.Upstream.URL)
	case dev:
		srv.Handle("/", console.Handler(srv.Config().Path))
	}
	ln, err := proxy.Listen(ctx, srv.Config())
	if err != nil {
		return fmt.Errorf("listen on CABLECAR_ADDR %s: %w", srv.Config().Addr, err)
	}
	go toggleDebugOnSIGUSR1(ctx, level, log)
	if cfg.Admin.Enabled() {
		adm := admin.New(cfg.Admin, admin.Source{Server: srv, Broker: broker, BrokerName: brokerName(cfg, dev),
			BrokerReconnects: reconnects(broker), BrokerSeries: brokerSeries(broker), BrokerDetail: brokerDetail(broker),
			Jobs: jw.stats(), Level: level, Page: statusPage(), Version: version()}, log)
		if err := startAdmin(ctx, adm, srv, log); err != nil {
			if !dev {
				ln.Close()
				return err
			}
			log.Warn("dev: no admin listener", "err", err) // a second dev server, say
		}
	}
	if dev {
		log.Warn("DEVELOPMENT MODE: anonymous connections allowed, /_broadcast needs no key, in-memory broker; never expose this",
			"console", "http://"+ln.Addr().String()+"/")
	}
	log.Info("cablecar listening", "addr", ln.Addr().String(), "path", srv.Config().Path, "broker", brokerName(cfg, dev), "pid", os.Getpid())
	return srv.Serve(ctx, ln)
}

// startAdmin binds the admin listener and serves it until ctx is done.
func startAdmin(ctx context.Context, adm *admin.Admin, srv *proxy.Server, log *slog.Logger) error {
	aln, err := net.Listen("tcp", adm.Config().Addr)
	if err != nil {
		return fmt.Errorf("listen on CABLECAR_ADMIN_ADDR %s: %w (set CABLECAR_ADMIN_ADDR=off to disable it)", adm.Config().Addr, err)
	}
	srv.SetHooks(adm.Hooks())
	go func() {
		if err := adm.Serve(ctx, aln); err != nil {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	log.Info("admin listener", "addr", aln.Addr().String(), "metrics", "/metrics", "status", "/")
	return nil
}

// devConfig turns a config into the development one: loopback only,
// anonymous, open /_broadcast, a route for the console.
func devConfig(cfg *config) error {
	if cfg.Proxy.Addr == "" {
		cfg.Proxy.Addr = devAddr
	}
	host, _, err := net.SplitHostPort(cfg.Proxy.Addr)
	if err != nil {
		return fmt.Errorf("CABLECAR_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("CABLECAR_ADDR %s: dev mode serves loopback only (127.0.0.1, ::1 or localhost); use `cablecar serve` with real auth for anything else", cfg.Proxy.Addr)
	}
	cfg.Auth.AllowAnonymous = true
	cfg.Proxy.OpenBroadcast = true
	if strings.TrimSpace(cfg.Auth.Routes) == "" && cfg.Auth.RoutesFile == "" {
		cfg.Auth.Routes = devRoute
	}
	return nil
}

// newBroker picks the broker the settings name: Redis, PostgreSQL
// (LISTEN/NOTIFY) or Solid Cable, at most one of them; with none, or in
// dev, the in-memory broker.
func newBroker(cfg config, dev bool, log *slog.Logger) (proxy.Broker, func(), error) {
	name, err := pickBroker(cfg, dev)
	if err != nil {
		return nil, nil, err
	}
	switch name {
	case "postgres":
		b, err := postgres.New(cfg.Postgres, log)
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = b.Close() }, nil
	case "solid_cable":
		b, err := solidcable.New(cfg.SolidCable, log)
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = b.Close() }, nil
	case "redis":
		b, err := redis.New(cfg.Redis, log)
		if err != nil {
			return nil, nil, err
		}
		redis.RouteClientLogs(log) // this process serves only this broker
		return b, func() { _ = b.Close() }, nil
	}
	return memory.New(), func() {}, nil
}

// pickBroker names the configured broker, or says that several are.
func pickBroker(cfg config, dev bool) (string, error) {
	if dev {
		return "memory", nil
	}
	var set []string
	if cfg.Redis.Configured() {
		set = append(set, "redis")
	}
	if cfg.Postgres.Configured() {
		set = append(set, "postgres")
	}
	if cfg.SolidCable.Configured() {
		set = append(set, "solid_cable")
	}
	switch len(set) {
	case 0:
		return "memory", nil
	case 1:
		return set[0], nil
	}
	return "", fmt.Errorf("more than one broker is configured (%s): cablecar reads broadcasts from one, the adapter of the app's config/cable.yml; set only one of CABLECAR_REDIS_URL (or the other CABLECAR_REDIS_* servers), CABLECAR_POSTGRES_URL and CABLECAR_SOLID_CABLE_URL", strings.Join(set, ", "))
}

// brokerName names the broker for logs, metrics and the status page.
func brokerName(cfg config, dev bool) string {
	name, _ := pickBroker(cfg, dev)
	return name
}

// errUsage marks a command-line mistake.
var errUsage = errors.New("usage")
