package auth

import (
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultJWTParam is the query parameter that carries the token.
	DefaultJWTParam = "token"
	// DefaultStreamsClaim is the claim that lists the streams a token grants.
	DefaultStreamsClaim = "streams"
	// leeway is the clock skew allowed when checking exp and nbf: enough for
	// servers whose clocks drift a little, too little to matter for replay.
	leeway = 5 * time.Second
	// minSecretLen is the shortest HS* secret New accepts: RFC 7518 §3.2
	// asks for a key at least as long as the hash output, 32 bytes for HS256.
	minSecretLen = 32
	// maxTokenLen bounds the token size Authenticate will parse.
	maxTokenLen = 16 << 10
)

// Config configures authentication and authorization. The zero value is not
// usable on its own (it has no JWT key and does not allow anonymous
// connections); New says which setting is missing. The env tags omit the
// CABLECAR_ prefix, which the command adds. A Config is plain data: New copies
// what it needs, so changing a Config after New has no effect.
type Config struct {
	// JWTSecret is the shared secret for HS256, HS384 and HS512 tokens, used
	// as raw bytes; it must be at least 32 bytes long (default: none, HS*
	// tokens are refused).
	JWTSecret string `env:"JWT_SECRET"`

	// JWTPublicKeyFiles lists PEM files holding the public keys that verify
	// RS*, PS*, ES* and EdDSA tokens. A file may hold several "PUBLIC KEY"
	// (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" blocks; every key
	// is tried, so several keys allow rotation. RSA keys must have at least
	// 2048 bits, ECDSA keys must be on P-256, P-384 or P-521; private keys
	// are refused. A certificate only carries the key: its validity dates and
	// chain are not checked (default: none).
	JWTPublicKeyFiles []string `env:"JWT_PUBLIC_KEY_FILE"`

	// JWTRequireExp says whether tokens must carry an exp claim; nil means
	// true (default true).
	JWTRequireExp *bool `env:"JWT_REQUIRE_EXP"`

	// JWTIssuer, when set, must equal the token's iss claim (default: not
	// checked).
	JWTIssuer string `env:"JWT_ISSUER"`

	// JWTAudience, when set, must appear in the token's aud claim (default:
	// not checked).
	JWTAudience string `env:"JWT_AUDIENCE"`

	// JWTParam is the query parameter that carries the token; RedactQuery
	// hides its value (default "token").
	JWTParam string `env:"JWT_PARAM"`

	// JWTCookie is the cookie that carries the token, checked after the
	// query parameter and the Authorization header; "" turns cookie tokens
	// off. Cookies ride along on cross-site WebSocket requests, so keep the
	// origin check on when you use this (default: off).
	JWTCookie string `env:"JWT_COOKIE"`

	// AllowAnonymous lets connections without any token in: they get an
	// anonymous Identity with no claims, which reaches Turbo streams, public:
	// routes and routes that read no identifier param, but never a route that
	// reads a claim. A token that is present but invalid is still refused
	// (default false).
	AllowAnonymous bool `env:"ALLOW_ANONYMOUS"`

	// StreamsClaim is the claim listing the stream patterns a token grants:
	// an array of strings, or one string of patterns separated by commas or
	// spaces; "*" matches any run of characters (default "streams").
	StreamsClaim string `env:"STREAMS_CLAIM"`

	// TurboSecretKeyBase is the Rails app's secret_key_base; the Turbo
	// signed-stream key is derived from it with PBKDF2 over both SHA256
	// (load_defaults >= 7.0) and SHA1 (older apps), and either key is
	// accepted (default: none).
	TurboSecretKeyBase string `env:"TURBO_SECRET_KEY_BASE"`

	// TurboVerifierKey is Turbo.signed_stream_verifier_key itself, used as the
	// raw bytes of the string as Rails does; a value written "hex:…" is
	// hex-decoded first. It may be combined with TurboSecretKeyBase; any
	// configured key is accepted (default: none).
	TurboVerifierKey string `env:"TURBO_VERIFIER_KEY"`

	// GIDApp is the GlobalID app name ({gid:…} placeholders render
	// gid://<GIDApp>/Model/id); Rails defaults it to the application name
	// underscored and dasherized, e.g. "my-app". Required when a route uses
	// {gid:…} (default: none).
	GIDApp string `env:"GID_APP"`

	// Routes holds routing rules separated by ";" or newlines, each
	// "[public:]ChannelClass=template[,template…]". Templates mix literal
	// text with {channel}, {params.NAME}, {claims.NAME},
	// {gid:Model:params.NAME} and {gid:Model:claims.NAME} (default: none;
	// only Turbo::StreamsChannel is routed).
	Routes string `env:"ROUTES"`

	// RoutesFile names a file of routing rules, one per line; blank lines
	// and lines starting with "#" are ignored. Its rules are added to those
	// of Routes; a channel class may be routed only once (default: none).
	RoutesFile string `env:"ROUTES_FILE"`

	// ConnectionIdentifier says how Rails identifies a connection, for
	// remote disconnects (ActionCable.server.remote_connections.where(…)
	// .disconnect): comma-separated templates over claims, one per
	// identified_by attribute, e.g. "{gid:User:claims.sub}". The rendered
	// values are sorted and joined with ":" as Rails does (default: none;
	// no remote disconnects).
	ConnectionIdentifier string `env:"CONNECTION_IDENTIFIER"`
}

// requireExp resolves the JWTRequireExp default.
func (c *Config) requireExp() bool {
	return c.JWTRequireExp == nil || *c.JWTRequireExp
}

// withDefaults returns c with every zero field that has a default filled in.
func (c Config) withDefaults() Config {
	if c.JWTParam == "" {
		c.JWTParam = DefaultJWTParam
	}
	if c.StreamsClaim == "" {
		c.StreamsClaim = DefaultStreamsClaim
	}
	return c
}

// checkNames reports settings whose value can never work.
func (c *Config) checkNames() []error {
	var probs []error
	if c.JWTCookie != "" && !isToken(c.JWTCookie) {
		probs = append(probs, newProblem(ErrInvalidConfig,
			"CABLECAR_JWT_COOKIE: %q is not a valid cookie name", c.JWTCookie))
	}
	if c.GIDApp != "" && strings.Trim(c.GIDApp, gidAppChars) != "" {
		probs = append(probs, newProblem(ErrInvalidConfig,
			"CABLECAR_GID_APP: %q may only hold letters, digits, \"-\", \"_\" and \".\"", c.GIDApp))
	}
	switch c.StreamsClaim {
	case "sub", "exp", "nbf", "iat", "iss", "aud", "jti":
		probs = append(probs, newProblem(ErrInvalidConfig,
			"CABLECAR_STREAMS_CLAIM: %q is a registered JWT claim; pick another name", c.StreamsClaim))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < minSecretLen {
		probs = append(probs, newProblem(ErrInvalidKey,
			"CABLECAR_JWT_SECRET: too short (%d bytes); use at least %d random bytes", len(c.JWTSecret), minSecretLen))
	}
	return probs
}

// gidAppChars are the bytes a GlobalID app name may hold: it is the host
// part of the gid:// URI.
const gidAppChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

// isToken reports whether s is an RFC 7230 token, the syntax of a cookie
// name.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
