package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cablecar/cablecar/rails"
)

// turboChannel is routed by signed stream name unless a rule overrides it.
const turboChannel = "Turbo::StreamsChannel"

// source says where a placeholder's value comes from.
type source int

const (
	fromParams source = iota + 1 // the subscription identifier
	fromClaims                   // the verified token claims
)

// segKind is the kind of one piece of a template.
type segKind int

const (
	segLiteral segKind = iota // text copied as is
	segChannel                // {channel}
	segValue                  // {params.X}, {claims.X}, {gid:Model:…}
)

// segment is one piece of a parsed template.
type segment struct {
	kind    segKind
	literal string // segLiteral only
	src     source // segValue only
	name    string // segValue only: the param or claim name
	model   string // segValue only: the GlobalID model, "" for a plain value
}

// template is one parsed stream template.
type template struct {
	text string // as written, for messages
	segs []segment
}

// route is one parsed rule. Routes are immutable after New.
type route struct {
	class      string // channel class, as the identifier names it
	channel    string // rails.ChannelName(class), for {channel}
	public     bool   // "public:" rule: no streams-claim check
	replay     bool   // "replay:" rule: new subscriptions get the last job state
	usesParams bool   // some template reads the identifier
	usesGID    bool   // some template needs GIDApp
	where      string // where the rule was written, for messages
	templates  []template
}

// ruleText is one rule as written, with where it came from.
type ruleText struct {
	where string // e.g. `CABLECAR_ROUTES: rule 2 "Foo"`
	text  string
	class string // set by buildRoutes once the rule parses
}

// splitRoutes splits the CABLECAR_ROUTES value into rules: ";" or newlines
// separate them; blank items and "#" comments are skipped.
func splitRoutes(routes string) []ruleText {
	var out []ruleText
	items := strings.FieldsFunc(routes, func(r rune) bool { return r == ';' || r == '\n' })
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" || strings.HasPrefix(item, "#") {
			continue
		}
		where := fmt.Sprintf("CABLECAR_ROUTES: rule %d %q", len(out)+1, item)
		out = append(out, ruleText{where: where, text: item})
	}
	return out
}

// splitRoutesFile splits a routes file into rules, one per line; blank lines
// and lines starting with "#" are skipped. A "#" later in a line is part of
// the rule, since stream names may contain it.
func splitRoutesFile(path, data string) []ruleText {
	var out []ruleText
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("CABLECAR_ROUTES_FILE: %q line %d %q", path, i+1, line)
		out = append(out, ruleText{where: where, text: line})
	}
	return out
}

// buildRoutes parses every rule, reporting each bad or duplicate rule.
func buildRoutes(rules []ruleText) (map[string]*route, []error) {
	routes := make(map[string]*route, len(rules))
	var probs []error
	for i := range rules {
		rt := &rules[i]
		r, err := parseRule(rt.text)
		if err != nil {
			probs = append(probs, newProblem(ErrInvalidRoute, "%s: %v", rt.where, err))
			continue
		}
		if prev, dup := routes[r.class]; dup {
			probs = append(probs, newProblem(ErrInvalidRoute,
				"%s: duplicate route for channel %q (first routed at %s)", rt.where, r.class, prev.where))
			continue
		}
		r.where, rt.class = rt.where, r.class
		routes[r.class] = r
	}
	return routes, probs
}

// parseRule parses "[public:][replay:]ChannelClass=template[,template…]".
func parseRule(text string) (*route, error) {
	lhs, rhs, ok := strings.Cut(text, "=")
	if !ok {
		return nil, errors.New(`missing "="`)
	}
	class, public, replay := cutModifiers(strings.TrimSpace(lhs))
	if !isConstPath(class) {
		return nil, fmt.Errorf("invalid channel class %q (want a Ruby class name such as Chat::RoomChannel)", class)
	}
	r := &route{class: class, channel: rails.ChannelName(class), public: public, replay: replay}
	for i, raw := range strings.Split(rhs, ",") {
		t, err := parseTemplate(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("template %d: %w", i+1, err)
		}
		r.addTemplate(t)
	}
	return r, nil
}

// cutModifiers strips the "public:" and "replay:" prefixes, in either
// order, from a rule's left-hand side.
func cutModifiers(lhs string) (class string, public, replay bool) {
	for {
		var cut bool
		if lhs, cut = strings.CutPrefix(lhs, "public:"); cut {
			public = true
			continue
		}
		if lhs, cut = strings.CutPrefix(lhs, "replay:"); cut {
			replay = true
			continue
		}
		return strings.TrimSpace(lhs), public, replay
	}
}

// addTemplate appends t and records what it needs.
func (r *route) addTemplate(t template) {
	for _, s := range t.segs {
		if s.kind == segValue {
			r.usesParams = r.usesParams || s.src == fromParams
			r.usesGID = r.usesGID || s.model != ""
		}
	}
	r.templates = append(r.templates, t)
}

// parseTemplate splits a template into literal text and placeholders.
func parseTemplate(text string) (template, error) {
	t := template{text: text}
	if text == "" {
		return t, errors.New("empty template")
	}
	for rest := text; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, literal: rest})
			break
		}
		if rest[open] == '}' {
			return t, fmt.Errorf("%q: unbalanced \"}\"", text)
		}
		if open > 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, literal: rest[:open]})
		}
		inner := rest[open+1:]
		end := strings.IndexAny(inner, "{}")
		if end < 0 || inner[end] == '{' {
			return t, fmt.Errorf("%q: unbalanced \"{\"", text)
		}
		seg, err := parsePlaceholder(inner[:end])
		if err != nil {
			return t, fmt.Errorf("%q: %w", text, err)
		}
		t.segs = append(t.segs, seg)
		rest = inner[end+1:]
	}
	return t, nil
}

// parsePlaceholder parses the text between braces.
func parsePlaceholder(inner string) (segment, error) {
	if inner == "channel" {
		return segment{kind: segChannel}, nil
	}
	rest, isGID := strings.CutPrefix(inner, "gid:")
	if !isGID {
		return parseValueRef(inner)
	}
	// The model may hold "::" but a param or claim name never holds ":",
	// so the last ":" separates them.
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return segment{}, fmt.Errorf("placeholder {%s}: want {gid:Model:params.NAME} or {gid:Model:claims.NAME}", inner)
	}
	model := rest[:i]
	if !isConstPath(model) {
		return segment{}, fmt.Errorf("placeholder {%s}: invalid model %q (want a Ruby class name such as Chat::Room)", inner, model)
	}
	seg, err := parseValueRef(rest[i+1:])
	if err != nil {
		return segment{}, fmt.Errorf("placeholder {%s}: %w", inner, err)
	}
	seg.model = model
	return seg, nil
}

// parseValueRef parses "params.NAME" or "claims.NAME".
func parseValueRef(ref string) (segment, error) {
	seg := segment{kind: segValue}
	var ok bool
	if seg.name, ok = strings.CutPrefix(ref, "params."); ok {
		seg.src = fromParams
	} else if seg.name, ok = strings.CutPrefix(ref, "claims."); ok {
		seg.src = fromClaims
	} else {
		return seg, fmt.Errorf("unknown placeholder {%s} (known: {channel}, {params.NAME}, {claims.NAME}, {gid:Model:params.NAME}, {gid:Model:claims.NAME})", ref)
	}
	if seg.name == "" || strings.Trim(seg.name, nameChars) != "" {
		return seg, fmt.Errorf("invalid name %q in {%s} (use letters, digits, \"_\" and \"-\")", seg.name, ref)
	}
	return seg, nil
}

// nameChars are the bytes a param or claim name may hold.
const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

// isConstPath reports whether s is a Ruby constant path such as
// "Chat::RoomChannel": "::"-separated names, each an ASCII capital followed
// by letters, digits or "_".
func isConstPath(s string) bool {
	for part := range strings.SplitSeq(s, "::") {
		if part == "" || part[0] < 'A' || part[0] > 'Z' {
			return false
		}
		if strings.Trim(part, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			return false
		}
	}
	return true
}

// streams renders every template of r, dropping repeats but keeping order.
func (r *route) streams(id *Identity, params map[string]any, gidApp string) ([]string, error) {
	out := make([]string, 0, len(r.templates))
	for _, t := range r.templates {
		s, err := t.render(r.channel, id, params, gidApp)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// render fills in one template.
func (t *template) render(channel string, id *Identity, params map[string]any, gidApp string) (string, error) {
	var b strings.Builder
	for _, s := range t.segs {
		switch s.kind {
		case segLiteral:
			b.WriteString(s.literal)
		case segChannel:
			b.WriteString(channel)
		case segValue:
			v, err := s.value(id, params)
			if err != nil {
				return "", err
			}
			if s.model != "" {
				v = rails.GlobalIDParam(gidApp, s.model, v)
			}
			b.WriteString(v)
		}
	}
	return b.String(), nil
}

// value looks up and renders the param or claim a placeholder names.
func (s *segment) value(id *Identity, params map[string]any) (string, error) {
	var v any
	what := fmt.Sprintf("identifier param %q", s.name)
	if s.src == fromClaims {
		what = fmt.Sprintf("token claim %q", s.name)
		if id == nil || id.Anonymous {
			what = fmt.Sprintf("claim %q (anonymous connections have no claims)", s.name)
		} else {
			v = id.Claims[s.name]
		}
	} else {
		v = params[s.name]
	}
	out, err := rails.ToParam(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
