package auth

import (
	"errors"
	"fmt"

	"github.com/cablecar/cablecar/rails"
)

// Configuration errors, returned (joined) by New.
var (
	// ErrNoKeys means no JWT key is configured and anonymous connections are
	// not allowed, so no connection could ever be accepted.
	ErrNoKeys = errors.New("no JWT key configured: set CABLECAR_JWT_SECRET or CABLECAR_JWT_PUBLIC_KEY_FILE, or CABLECAR_ALLOW_ANONYMOUS=true")

	// ErrInvalidConfig is matched (with errors.Is) by every problem New
	// reports, ErrNoKeys included.
	ErrInvalidConfig = errors.New("invalid auth configuration")

	// ErrInvalidKey is matched by problems with CABLECAR_JWT_SECRET,
	// CABLECAR_JWT_PUBLIC_KEY_FILE or the Turbo key settings.
	ErrInvalidKey = errors.New("invalid key")

	// ErrInvalidRoute is matched by problems in CABLECAR_ROUTES or
	// CABLECAR_ROUTES_FILE.
	ErrInvalidRoute = errors.New("invalid route")
)

// Authentication errors, returned by Authenticate.
var (
	// ErrNoToken means the request carried no token and anonymous
	// connections are not allowed.
	ErrNoToken = errors.New("no token")

	// ErrTokenExpired means the token's exp has passed.
	ErrTokenExpired = errors.New("token expired")

	// ErrTokenNotYetValid means the token's nbf is still in the future.
	ErrTokenNotYetValid = errors.New("token not yet valid")

	// ErrBadSignature means a signature does not verify with any configured
	// key. ErrBadSignedName also matches it.
	ErrBadSignature = errors.New("bad signature")

	// ErrBadAlgorithm means the token's alg is unknown, missing or not one
	// the configured keys allow: "none", an HS* token when only public keys
	// are configured, or any token when no JWT key is configured at all.
	ErrBadAlgorithm = errors.New("algorithm not allowed")

	// ErrBadIssuer means the token's iss differs from CABLECAR_JWT_ISSUER.
	ErrBadIssuer = errors.New("wrong issuer")

	// ErrBadAudience means the token's aud does not contain
	// CABLECAR_JWT_AUDIENCE.
	ErrBadAudience = errors.New("wrong audience")

	// ErrMalformedToken means the token is not a well-formed JWT (or is over
	// 16 KiB, or the query parameter appears twice), a claim has the wrong
	// type, or the required exp claim is missing.
	ErrMalformedToken = errors.New("malformed token")
)

// Authorization errors, returned by Authorize and VerifyStreamName.
var (
	// ErrUnknownChannel means no route covers the channel.
	ErrUnknownChannel = errors.New("unknown channel")

	// ErrMissingParam means a value a route needs is absent, null or "" in
	// the identifier or the token claims.
	ErrMissingParam = rails.ErrMissingValue

	// ErrUnrenderable means a value a route needs is a float, object or array,
	// which Rails' to_param would not turn into a stable stream name.
	ErrUnrenderable = rails.ErrUnrenderable

	// ErrStreamForbidden means a stream is not matched by the token's streams
	// claim.
	ErrStreamForbidden = errors.New("stream forbidden")

	// ErrBadSignedName means a Turbo signed stream name is well formed but
	// its digest does not verify with any configured key: forged, tampered or
	// signed with another secret_key_base. It wraps ErrBadSignature.
	ErrBadSignedName = fmt.Errorf("signed stream name does not verify: %w", ErrBadSignature)

	// ErrMalformedSignedName means a Turbo signed stream name is not the
	// plain base64(json)--hexdigest form turbo-rails produces (or verifies
	// but holds something other than a non-empty JSON string, such as Rails
	// 7.1's metadata envelope): malformed rather than forged.
	ErrMalformedSignedName = errors.New("malformed signed stream name")

	// ErrNoTurboKey means a Turbo::StreamsChannel subscription arrived but
	// neither CABLECAR_TURBO_SECRET_KEY_BASE nor CABLECAR_TURBO_VERIFIER_KEY
	// is set.
	ErrNoTurboKey = errors.New("no Turbo verifier key configured (set CABLECAR_TURBO_SECRET_KEY_BASE or CABLECAR_TURBO_VERIFIER_KEY)")
)

// ErrNoSecret is returned by Mint when CABLECAR_JWT_SECRET is not set.
var ErrNoSecret = errors.New("no JWT secret configured (set CABLECAR_JWT_SECRET)")

// Reason returns a short snake_case code for an error from Authenticate,
// Authorize or VerifyStreamName, for logs and metrics: "no_token",
// "token_expired", "token_not_yet_valid", "bad_signature", "bad_algorithm",
// "bad_issuer", "bad_audience", "malformed_token", "unknown_channel",
// "missing_param", "unrenderable_param", "stream_forbidden",
// "bad_signed_stream_name", "malformed_signed_stream_name" or "no_turbo_key".
// It returns "" for nil and "other" for any other error.
func Reason(err error) string {
	// Order matters: ErrBadSignedName wraps ErrBadSignature, so it is
	// checked first.
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, ErrTokenExpired):
		return "token_expired"
	case errors.Is(err, ErrTokenNotYetValid):
		return "token_not_yet_valid"
	case errors.Is(err, ErrBadSignedName):
		return "bad_signed_stream_name"
	case errors.Is(err, ErrMalformedSignedName):
		return "malformed_signed_stream_name"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrBadAlgorithm):
		return "bad_algorithm"
	case errors.Is(err, ErrBadIssuer):
		return "bad_issuer"
	case errors.Is(err, ErrBadAudience):
		return "bad_audience"
	case errors.Is(err, ErrMalformedToken):
		return "malformed_token"
	}
	return authzReason(err)
}

// authzReason is the authorization half of Reason.
func authzReason(err error) string {
	switch {
	case errors.Is(err, ErrUnknownChannel):
		return "unknown_channel"
	case errors.Is(err, ErrMissingParam):
		return "missing_param"
	case errors.Is(err, ErrUnrenderable):
		return "unrenderable_param"
	case errors.Is(err, ErrStreamForbidden):
		return "stream_forbidden"
	case errors.Is(err, ErrNoTurboKey):
		return "no_turbo_key"
	}
	return "other"
}

// problem is one configuration problem: its message is exactly the text
// formatted (so it can start with the setting's name), while errors.Is still
// finds its kind, ErrInvalidConfig and any error wrapped with %w.
type problem struct {
	err  error
	kind error
}

func (p *problem) Error() string { return p.err.Error() }

func (p *problem) Unwrap() []error { return []error{p.err, p.kind, ErrInvalidConfig} }

// newProblem formats a configuration problem of the given kind; format may
// use %w.
func newProblem(kind error, format string, args ...any) error {
	return &problem{err: fmt.Errorf(format, args...), kind: kind}
}
