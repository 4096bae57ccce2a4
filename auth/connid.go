package auth

import (
	"fmt"
	"strings"

	"github.com/cablecar/cablecar/rails"
)

// parseConnectionIdentifier parses CABLECAR_CONNECTION_IDENTIFIER: templates
// over claims separated by commas, one per identified_by attribute.
func parseConnectionIdentifier(text, gidApp string) ([]template, []error) {
	var out []template
	var probs []error
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, err := parseTemplate(part)
		if err != nil {
			probs = append(probs, newProblem(ErrInvalidConfig, "CABLECAR_CONNECTION_IDENTIFIER: %w", err))
			continue
		}
		for _, s := range t.segs {
			switch {
			case s.kind == segChannel || (s.kind == segValue && s.src != fromClaims):
				probs = append(probs, newProblem(ErrInvalidConfig,
					"CABLECAR_CONNECTION_IDENTIFIER: %q: only {claims.…} and {gid:Model:claims.…} placeholders (a connection has no channel or params)", part))
			case s.model != "" && gidApp == "":
				probs = append(probs, newProblem(ErrInvalidConfig,
					"CABLECAR_GID_APP: must be set because CABLECAR_CONNECTION_IDENTIFIER uses a {gid:…} placeholder"))
			}
		}
		out = append(out, t)
	}
	return out, probs
}

// connectionID renders Rails' connection_identifier for id: each
// identified_by value, sorted, joined with ":". "" when none is configured.
func (a *Auth) connectionID(id *Identity) (string, error) {
	if len(a.connID) == 0 || id.Anonymous {
		return "", nil
	}
	values := make([]string, 0, len(a.connID))
	for _, t := range a.connID {
		v, err := t.render("", id, nil, a.gidApp)
		if err != nil {
			return "", fmt.Errorf("%w: CABLECAR_CONNECTION_IDENTIFIER needs %v", ErrMalformedToken, err)
		}
		values = append(values, v)
	}
	return rails.ConnectionIdentifier(values...), nil
}
