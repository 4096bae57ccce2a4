package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cablecar/cablecar/rails"
	"github.com/golang-jwt/jwt/v5"
)

// Authenticate finds the token in r and verifies it. It looks, in order, at
// the query parameter JWTParam, an "Authorization: Bearer …" header, and the
// cookie JWTCookie (only if set); the first non-empty one is used and the
// rest are ignored.
//
// Without a token it returns an anonymous Identity if AllowAnonymous is set,
// else ErrNoToken. A token that is present but does not verify is an error
// even when anonymous connections are allowed, so a client with a stale
// token learns about it. Verification pins the algorithm to the key type
// (HS* only with the secret, RS*/PS* only with RSA keys, ES* only with a key
// on the matching curve, EdDSA only with Ed25519 keys), requires exp unless
// JWTRequireExp is false, honours nbf, checks iss and aud when configured,
// and allows 5s of clock skew. Reason classifies the errors; their messages
// say where the token came from but never include it.
//
// Authenticate is safe for concurrent use.
func (a *Auth) Authenticate(r *http.Request) (*Identity, error) {
	token, from, err := a.findToken(r)
	if err != nil {
		return nil, err
	}
	if token == "" {
		if a.allowAnonymous {
			return &Identity{Anonymous: true}, nil
		}
		return nil, fmt.Errorf("%w in %s", ErrNoToken, a.describeSources())
	}
	id, err := a.verify(token)
	if err != nil {
		return nil, fmt.Errorf("token from %s: %w", from, err)
	}
	if id.ConnectionID, err = a.connectionID(id); err != nil {
		return nil, fmt.Errorf("token from %s: %w", from, err)
	}
	return id, nil
}

// findToken returns the first non-empty token and where it came from.
func (a *Auth) findToken(r *http.Request) (token, from string, err error) {
	if r.URL != nil {
		vals := r.URL.Query()[a.tokenParam()]
		if len(vals) > 1 {
			// Two tokens leave it unclear which one a log or proxy saw.
			return "", "", fmt.Errorf("query parameter %q given %d times: %w", a.tokenParam(), len(vals), ErrMalformedToken)
		}
		if len(vals) == 1 && vals[0] != "" {
			return vals[0], describeSource("query parameter", a.tokenParam()), nil
		}
	}
	scheme, rest, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") {
		if t := strings.TrimSpace(rest); t != "" {
			return t, "Authorization header", nil
		}
	}
	if a.cookie != "" {
		if c, err := r.Cookie(a.cookie); err == nil && c.Value != "" {
			return c.Value, describeSource("cookie", a.cookie), nil
		}
	}
	return "", "", nil
}

// describeSources lists where Authenticate looks, for ErrNoToken.
func (a *Auth) describeSources() string {
	s := describeSource("query parameter", a.tokenParam()) + " or Authorization: Bearer header"
	if a.cookie != "" {
		s += " or " + describeSource("cookie", a.cookie)
	}
	return s
}

// verify checks one token and builds its Identity.
func (a *Auth) verify(token string) (*Identity, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedToken, maxTokenLen)
	}
	if a.keys.empty() {
		return nil, fmt.Errorf("%w: no JWT key is configured to verify it", ErrBadAlgorithm)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.NewParser(a.parserOpts...).ParseWithClaims(token, claims, a.keyfunc)
	if err != nil {
		return nil, a.classify(parsed, claims, err)
	}
	sub, err := subject(claims["sub"])
	if err != nil {
		return nil, err
	}
	return &Identity{Subject: sub, Claims: map[string]any(claims)}, nil
}

// keyfunc hands the parser every key of the kind the token's alg needs, so
// any one of several rotated keys may verify it.
func (a *Auth) keyfunc(t *jwt.Token) (any, error) {
	keys := a.keys.forAlg(t.Method.Alg())
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key for alg %q", t.Method.Alg())
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// classify maps a golang-jwt error onto this package's sentinels.
func (a *Auth) classify(t *jwt.Token, claims jwt.MapClaims, err error) error {
	if t != nil && t.Method == nil && errors.Is(err, jwt.ErrTokenUnverifiable) {
		return fmt.Errorf("%w: unknown or missing alg (allowed: %s)", ErrBadAlgorithm, strings.Join(a.methods, ", "))
	}
	if t != nil && t.Method != nil && !slices.Contains(a.methods, t.Method.Alg()) {
		return fmt.Errorf("%w: %q (allowed: %s)", ErrBadAlgorithm, t.Method.Alg(), strings.Join(a.methods, ", "))
	}
	var kind error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		kind = ErrMalformedToken
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		kind = ErrBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		kind = ErrBadAlgorithm
	case errors.Is(err, jwt.ErrTokenExpired):
		kind = ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		kind = ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		kind = ErrBadIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		kind = ErrBadAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		kind = a.missingClaim(claims)
	default: // a claim of the wrong type, …
		kind = ErrMalformedToken
	}
	// golang-jwt's messages describe the failure, never the token's text.
	return fmt.Errorf("%w: %v", kind, err)
}

// missingClaim says which required claim is missing: a missing iss or aud
// is a wrong issuer or audience; a missing exp makes the token malformed.
func (a *Auth) missingClaim(claims jwt.MapClaims) error {
	if iss, _ := claims.GetIssuer(); a.issuer != "" && iss == "" {
		return ErrBadIssuer
	}
	if aud, _ := claims.GetAudience(); a.audience != "" && len(aud) == 0 {
		return ErrBadAudience
	}
	return ErrMalformedToken
}

// subject reads the sub claim: a string, or an integer (common in tokens
// minted by Rails apps) rendered as its digits.
func subject(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		if s, err := rails.IntegerParam(v); err == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: sub claim is %s, want a string", ErrMalformedToken, rails.JSONKind(v))
}

// Mint returns an HS256 token signed with JWTSecret, for tests, tools and
// the app side of an integration: sub (omitted when ""), the streams claim
// (omitted when streams is nil), iss and aud when configured (so Authenticate
// accepts it), iat = now and exp = now+ttl. It returns ErrNoSecret without a
// secret. Mint is safe for concurrent use.
func (a *Auth) Mint(sub string, streams []string, ttl time.Duration) (string, error) {
	if len(a.keys.secret) == 0 {
		return "", ErrNoSecret
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token for %q: ttl %v is not positive", sub, ttl)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iat": jwt.NewNumericDate(now),
		"exp": jwt.NewNumericDate(now.Add(ttl)),
	}
	if sub != "" {
		claims["sub"] = sub
	}
	if streams != nil {
		claims[a.streamsClaim] = streams
	}
	if a.issuer != "" {
		claims["iss"] = a.issuer
	}
	if a.audience != "" {
		claims["aud"] = a.audience
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.keys.secret)
	if err != nil {
		return "", fmt.Errorf("mint token for %q: %w", sub, err)
	}
	return signed, nil
}
