package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// originRule is one parsed CABLECAR_ALLOWED_ORIGINS entry.
type originRule struct {
	any    bool   // "*"
	scheme string // lower case
	host   string // lower case; for wildcards, the part after "*."
	port   string // explicit or the scheme's default
	suffix bool   // "*.example.com": subdomains of host only
}

// parseOrigins turns the configured list into rules, rejecting entries a
// browser can never send (paths, missing scheme, wildcards mid-name).
func parseOrigins(list []string) ([]originRule, error) {
	var rules []originRule
	var errs []error
	for _, raw := range list {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		if s == "*" {
			rules = append(rules, originRule{any: true})
			continue
		}
		r, err := parseOriginRule(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

func parseOriginRule(s string) (originRule, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" {
		return originRule{}, fmt.Errorf("origin %q: want scheme://host[:port]", s)
	}
	if strings.ContainsAny(rest, "/?#@") {
		return originRule{}, fmt.Errorf("origin %q: an origin has no path, query or user", s)
	}
	r := originRule{scheme: strings.ToLower(scheme)}
	host, port := splitHostPort(rest, r.scheme)
	if h, ok := strings.CutPrefix(host, "*."); ok {
		host, r.suffix = h, true
	}
	if host == "" || strings.Contains(host, "*") {
		return originRule{}, fmt.Errorf("origin %q: '*' is only allowed as a whole leading label (https://*.example.com)", s)
	}
	r.host, r.port = strings.ToLower(host), port
	return r, nil
}

// splitHostPort splits "host[:port]" and fills in the scheme's default port.
func splitHostPort(hostport, scheme string) (host, port string) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		h, p = hostport, ""
	}
	if p == "" {
		switch scheme {
		case "https", "wss":
			p = "443"
		case "http", "ws":
			p = "80"
		}
	}
	return strings.Trim(h, "[]"), p
}

// matches reports whether the browser origin (scheme, host, port) is allowed.
func (r originRule) matches(scheme, host, port string) bool {
	switch {
	case r.any:
		return true
	case scheme != r.scheme || port != r.port:
		return false
	case r.suffix:
		// A subdomain only: "a.example.com" yes; "example.com" and
		// "evilexample.com" no.
		return strings.HasSuffix(host, "."+r.host) && len(host) > len(r.host)+1
	default:
		return host == r.host
	}
}

// checkOrigin returns nil when the request may upgrade, else why not.
// Without rules, the Origin's host and port must equal the Host header
// (scheme ignored, so TLS-terminating proxies work), as Rails does.
func checkOrigin(rules []originRule, origin, reqHost string) error {
	if origin == "" {
		return nil // not a browser
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("origin %q is not a valid origin", origin)
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := splitHostPort(u.Host, scheme)
	host = strings.ToLower(host)
	if len(rules) == 0 {
		rh, rp := splitHostPort(reqHost, scheme)
		if host == strings.ToLower(rh) && port == rp {
			return nil
		}
		return fmt.Errorf("origin %q does not match host %q (set CABLECAR_ALLOWED_ORIGINS)", origin, reqHost)
	}
	for _, r := range rules {
		if r.matches(scheme, host, port) {
			return nil
		}
	}
	return fmt.Errorf("origin %q is not in CABLECAR_ALLOWED_ORIGINS", origin)
}
