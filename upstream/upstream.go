// Package upstream is cablecar's sidecar proxy mode: with
// CABLECAR_UPSTREAM_URL set, cablecar is the app's front door on one port.
// The cable path, /health and /_broadcast stay cablecar's; every other
// request, other WebSocket upgrades included, is reverse-proxied to the app.
package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Config holds the proxy mode's settings; env tags carry no prefix
// (cmd/cablecar reads CABLECAR_<tag>).
type Config struct {
	// URL is the app behind cablecar, e.g. http://127.0.0.1:3000; empty
	// turns proxy mode off (default: off).
	URL string `env:"UPSTREAM_URL"`
	// Timeout bounds the wait for the app's response headers; a streaming
	// body may then take as long as it needs (default 60s).
	Timeout time.Duration `env:"UPSTREAM_TIMEOUT"`
}

// DefaultTimeout is the default wait for the app's response headers.
const DefaultTimeout = 60 * time.Second

// Enabled reports whether proxy mode is on.
func (c Config) Enabled() bool { return c.URL != "" }

// Handler returns the reverse proxy to the app. It keeps the client's Host
// header (as nginx's proxy_set_header Host $host does, so the app's host
// checks and URL helpers see its own name), sets X-Forwarded-For, -Host and
// -Proto, streams responses as they come (server-sent events, chunked
// downloads) and passes WebSocket upgrades through.
func Handler(cfg Config, log *slog.Logger) (http.Handler, error) {
	target, err := url.Parse(cfg.URL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("CABLECAR_UPSTREAM_URL %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("CABLECAR_UPSTREAM_TIMEOUT: %s must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := &http.Transport{
		Proxy:                 nil, // never via an environment proxy: the app is next door
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, what := http.StatusBadGateway, "the app did not answer"
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				status, what = http.StatusGatewayTimeout, "the app took too long to answer"
			}
			log.Warn("upstream: "+what, "method", r.Method, "path", r.URL.Path, "upstream", target.Host, "err", err)
			http.Error(w, what, status)
		},
	}, nil
}
