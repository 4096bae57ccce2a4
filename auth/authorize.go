package auth

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/cablecar/cablecar/rails"
)

// Authorize returns the streams a subscription to channel with identifier
// params gets, or an error saying why not; Reason classifies it. params is
// the decoded identifier object (decoded with json.Decoder.UseNumber, so
// numbers are json.Number) and includes "channel"; keys no route uses are
// ignored. A nil id is treated as anonymous.
//
// A channel with a rule renders the rule's templates. The streams are granted
// when the rule is public:, when no template reads the identifier (only
// {channel}, literals and claims: the token vouches for those), or when the
// token's streams claim matches every stream. Turbo::StreamsChannel without a
// rule is granted the stream named by a valid params["signed_stream_name"].
// Any other channel is ErrUnknownChannel.
//
// Error messages name the channel, param or stream involved, never the token.
// Authorize is safe for concurrent use.
func (a *Auth) Authorize(id *Identity, channel string, params map[string]any) ([]string, error) {
	streams, err := a.authorize(id, channel, params)
	if err != nil {
		return nil, fmt.Errorf("channel %q: %w", channel, err)
	}
	return streams, nil
}

// authorize picks how channel is routed.
func (a *Auth) authorize(id *Identity, channel string, params map[string]any) ([]string, error) {
	if r, ok := a.routes[channel]; ok {
		return a.authorizeRoute(r, id, params)
	}
	if channel == turboChannel {
		return a.authorizeTurbo(params)
	}
	return nil, fmt.Errorf("%w: no CABLECAR_ROUTES rule for it", ErrUnknownChannel)
}

// authorizeRoute renders r and checks the result against the token.
func (a *Auth) authorizeRoute(r *route, id *Identity, params map[string]any) ([]string, error) {
	streams, err := r.streams(id, params, a.gidApp)
	if err != nil {
		return nil, err
	}
	if r.public || !r.usesParams {
		return streams, nil
	}
	// The client chose the params, so the token must vouch for the result.
	patterns, why := a.streamPatterns(id)
	for _, s := range streams {
		if !matchesAny(patterns, s) {
			return nil, fmt.Errorf("stream %q not allowed by %s: %w", s, why, ErrStreamForbidden)
		}
	}
	return streams, nil
}

// authorizeTurbo verifies a Turbo signed stream name.
func (a *Auth) authorizeTurbo(params map[string]any) ([]string, error) {
	if len(a.turboKeys) == 0 {
		return nil, ErrNoTurboKey
	}
	const param = "signed_stream_name"
	var signed string
	switch v := params[param].(type) {
	case nil:
		return nil, fmt.Errorf("identifier param %q: %w: absent or null", param, ErrMissingParam)
	case string:
		signed = v
	default:
		return nil, fmt.Errorf("identifier param %q: %w: got %s, want a string", param, ErrMalformedSignedName, rails.JSONKind(v))
	}
	if signed == "" {
		return nil, fmt.Errorf("identifier param %q: %w: empty string", param, ErrMissingParam)
	}
	name, err := VerifyStreamName(a.turboKeys, signed)
	if err != nil {
		return nil, fmt.Errorf("identifier param %q: %w", param, err)
	}
	return []string{name}, nil
}

// streamPatterns returns the patterns of the token's streams claim: an array
// of strings (other elements are ignored), or one string of patterns
// separated by commas or white space. why describes the claim for messages.
func (a *Auth) streamPatterns(id *Identity) (patterns []string, why string) {
	if id == nil || id.Anonymous {
		return nil, "an anonymous connection (it has no claims)"
	}
	why = fmt.Sprintf("token claim %q", a.streamsClaim)
	switch v := id.Claims[a.streamsClaim].(type) {
	case []any:
		for _, p := range v {
			if s, ok := p.(string); ok && s != "" {
				patterns = append(patterns, s)
			}
		}
	case []string: // claims built in Go rather than decoded
		patterns = v
	case string:
		patterns = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	}
	if len(patterns) == 0 {
		why += " (absent, empty or not a list of strings)"
	}
	return patterns, why
}

// matchesAny reports whether any pattern matches the whole of s.
func matchesAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// globMatch matches s against p, where "*" matches any run of bytes
// (including ":" and none at all) and every other byte matches itself. It
// backtracks only to the latest "*", so it runs in O(len(p)·len(s)) at worst
// and cannot be made to blow up by a hostile pattern or name.
func globMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0 // position of the latest "*" in p, and where s stood then
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			// Let the latest "*" swallow one more byte and retry.
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Replays reports whether channel's route was written with "replay:": its
// new subscriptions receive the last job state of their streams right after
// confirm_subscription (see adapters/jobs).
func (a *Auth) Replays(channel string) bool {
	r, ok := a.routes[channel]
	return ok && r.replay
}
