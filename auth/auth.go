package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is who a connection is. It is created by Authenticate and must
// not be modified afterwards; it is then safe to share between goroutines.
type Identity struct {
	// Subject is the token's "sub" claim ("" when absent; an integer sub is
	// rendered as its digits).
	Subject string

	// Anonymous is true for a connection without a token, admitted because
	// CABLECAR_ALLOW_ANONYMOUS is on.
	Anonymous bool

	// Claims holds the verified token claims, numbers as json.Number; nil
	// when anonymous.
	Claims map[string]any

	// ConnectionID is Rails' connection_identifier for this connection,
	// from CABLECAR_CONNECTION_IDENTIFIER; "" when none is configured.
	ConnectionID string
}

// String returns what logs show: the subject, "anonymous", or "(no sub)" for
// a verified token without a subject. It never includes token material or
// other claims.
func (id *Identity) String() string {
	switch {
	case id == nil || id.Anonymous:
		return "anonymous"
	case id.Subject == "":
		return "(no sub)"
	}
	return id.Subject
}

// LogValue makes slog log an Identity as String does, so claims never reach
// the logs even when the whole value is logged.
func (id *Identity) LogValue() slog.Value {
	return slog.StringValue(id.String())
}

// Auth authenticates connections and authorizes subscriptions. Build it with
// New; a zero Auth refuses every token and every channel. An Auth is
// immutable and safe for concurrent use.
type Auth struct {
	param          string // query parameter carrying the token
	cookie         string // cookie carrying the token; "" = off
	allowAnonymous bool
	streamsClaim   string
	issuer         string // "" = not checked
	audience       string // "" = not checked
	gidApp         string

	keys       keySet
	methods    []string // algorithms keys allows; never nil
	parserOpts []jwt.ParserOption

	turboKeys [][]byte
	routes    map[string]*route // by channel class
	connID    []template        // CABLECAR_CONNECTION_IDENTIFIER
}

// New validates cfg, reads the key and routes files, parses the routes and
// derives the Turbo keys. It reports every problem at once, joined, each
// naming its CABLECAR_ setting (e.g. `CABLECAR_ROUTES: rule 2 "Foo": missing
// "="`); each matches ErrInvalidConfig with errors.Is. With no JWT key and
// AllowAnonymous false the result includes ErrNoKeys.
func New(cfg Config) (*Auth, error) {
	cfg = cfg.withDefaults()
	a := &Auth{
		param:          cfg.JWTParam,
		cookie:         cfg.JWTCookie,
		allowAnonymous: cfg.AllowAnonymous,
		streamsClaim:   cfg.StreamsClaim,
		issuer:         cfg.JWTIssuer,
		audience:       cfg.JWTAudience,
		gidApp:         cfg.GIDApp,
	}
	probs := cfg.checkNames()
	probs = append(probs, a.loadJWTKeys(&cfg)...)
	probs = append(probs, a.loadTurboKeys(&cfg)...)
	probs = append(probs, a.loadRoutes(&cfg)...)
	var connProbs []error
	a.connID, connProbs = parseConnectionIdentifier(cfg.ConnectionIdentifier, cfg.GIDApp)
	probs = append(probs, connProbs...)
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}
	a.methods = a.keys.methods()
	a.parserOpts = parserOptions(&cfg, a.methods)
	return a, nil
}

// parserOptions pins everything Authenticate checks besides the key.
func parserOptions(cfg *Config, methods []string) []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithJSONNumber(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(), // one token, one encoding: no malleable bits
	}
	if cfg.requireExp() {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	return opts
}

// loadJWTKeys reads the secret and the public key files.
func (a *Auth) loadJWTKeys(cfg *Config) []error {
	var probs []error
	if cfg.JWTSecret != "" {
		a.keys.secret = []byte(cfg.JWTSecret)
	}
	files := 0
	for _, path := range cfg.JWTPublicKeyFiles {
		path = strings.TrimSpace(path)
		if path == "" {
			continue
		}
		files++
		if err := a.keys.loadKeyFile(path); err != nil {
			probs = append(probs, newProblem(ErrInvalidKey, "CABLECAR_JWT_PUBLIC_KEY_FILE: %q: %w", path, err))
		}
	}
	// A key file that failed to load is reported above; ErrNoKeys is only
	// for a configuration that names no key at all.
	if cfg.JWTSecret == "" && files == 0 && !cfg.AllowAnonymous {
		probs = append(probs, &problem{err: ErrNoKeys, kind: ErrNoKeys})
	}
	return probs
}

// loadTurboKeys collects the Turbo verifier keys: the explicit key first,
// then the SHA256- and SHA1-derived ones.
func (a *Auth) loadTurboKeys(cfg *Config) []error {
	if v := cfg.TurboVerifierKey; v != "" {
		key := []byte(v)
		if h, isHex := strings.CutPrefix(v, "hex:"); isHex {
			var err error
			if key, err = hex.DecodeString(h); err != nil || len(key) == 0 {
				return []error{newProblem(ErrInvalidKey, "CABLECAR_TURBO_VERIFIER_KEY: value after \"hex:\" is not non-empty hex")}
			}
		}
		a.turboKeys = append(a.turboKeys, key)
	}
	if base := cfg.TurboSecretKeyBase; base != "" {
		for _, sha1 := range []bool{false, true} {
			if key := TurboKey(base, sha1); len(key) > 0 {
				a.turboKeys = append(a.turboKeys, key)
			}
		}
		if len(a.turboKeys) == 0 {
			return []error{newProblem(ErrInvalidKey, "CABLECAR_TURBO_SECRET_KEY_BASE: key derivation failed")}
		}
	}
	return nil
}

// loadRoutes parses Routes and RoutesFile together, so a class routed in both
// is reported as a duplicate.
func (a *Auth) loadRoutes(cfg *Config) []error {
	rules := splitRoutes(cfg.Routes)
	if path := cfg.RoutesFile; path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return []error{newProblem(ErrInvalidRoute, "CABLECAR_ROUTES_FILE: %w", err)}
		}
		rules = append(rules, splitRoutesFile(path, string(data))...)
	}
	routes, probs := buildRoutes(rules)
	a.routes = routes
	if cfg.GIDApp != "" {
		return probs
	}
	for _, rt := range rules { // in rule order, for a stable message order
		if r := routes[rt.class]; r != nil && r.where == rt.where && r.usesGID {
			probs = append(probs, newProblem(ErrInvalidConfig,
				"CABLECAR_GID_APP: must be set because %s uses a {gid:…} placeholder", rt.where))
		}
	}
	return probs
}

// RedactQuery returns rawQuery with every value of the token query parameter
// (JWTParam) replaced by "REDACTED", for logging request URLs. Pairs split by
// "&" or ";" are both checked, and names are compared after unescaping, so no
// spelling of the parameter slips through.
func (a *Auth) RedactQuery(rawQuery string) string {
	var b strings.Builder
	b.Grow(len(rawQuery))
	start := 0
	for i := 0; i <= len(rawQuery); i++ {
		if i < len(rawQuery) && rawQuery[i] != '&' && rawQuery[i] != ';' {
			continue
		}
		b.WriteString(a.redactPair(rawQuery[start:i]))
		if i < len(rawQuery) {
			b.WriteByte(rawQuery[i])
		}
		start = i + 1
	}
	return b.String()
}

// redactPair redacts one name=value pair if it names the token parameter.
func (a *Auth) redactPair(pair string) string {
	name, _, hasValue := strings.Cut(pair, "=")
	if !hasValue {
		return pair
	}
	unescaped, err := url.QueryUnescape(name)
	if name != a.tokenParam() && (err != nil || unescaped != a.tokenParam()) {
		return pair
	}
	return name + "=REDACTED"
}

// tokenParam is the token query parameter, defaulted even on a zero Auth.
func (a *Auth) tokenParam() string {
	if a.param == "" {
		return DefaultJWTParam
	}
	return a.param
}

// describeSource names where a token came from, for error messages.
func describeSource(kind, name string) string {
	if name == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, name)
}
