package jobs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cablecar/cablecar/rails"
)

// Mapping turns a job into the streams its events go to. It is built from
// `ClassName=template[,template…]` rules (CABLECAR_JOB_STREAMS, separated by
// ";" or newlines, or CABLECAR_JOB_STREAMS_FILE, one per line, "#"
// comments), and `*=template` for every class without a rule of its own.
// Placeholders render exactly as in CABLECAR_ROUTES:
//
//	{job_id} {class} {queue} {backend}      the job's fields
//	{args.N} {args.N.key.key}               an argument, or a key inside one
//	{gid:Model:args.N}                      the GlobalID param of that record
//
// so `ProcessDocumentJob=document:{gid:Document:args.0}` gives the stream
// `DocumentChannel.broadcast_to(document)` uses. A Mapping is immutable.
type Mapping struct {
	rules    map[string][]jobTemplate
	fallback []jobTemplate // from "*=", or nil
	gidApp   string
}

// jobTemplate is one parsed template: literal text and placeholders.
type jobTemplate struct {
	text string
	segs []jobSegment
}

// jobSegment is a literal (path == nil, field == "") or a placeholder.
type jobSegment struct {
	literal string
	field   string   // job_id, class, queue, backend; "" for args
	path    []string // for args: index, then keys
	model   string   // {gid:Model:…}
}

// ErrUnmapped means no rule covers the job's class and there is no "*"
// rule: its events go nowhere, and the runner counts and names it.
var ErrUnmapped = errors.New("no CABLECAR_JOB_STREAMS rule for the class")

// ParseMapping reads the rules from text (CABLECAR_JOB_STREAMS) and file
// (CABLECAR_JOB_STREAMS_FILE, may be ""). gidApp is CABLECAR_GID_APP, for
// plain-id arguments rendered with {gid:…}.
func ParseMapping(text, file, gidApp string) (*Mapping, error) {
	m := &Mapping{rules: map[string][]jobTemplate{}, gidApp: gidApp}
	var probs []error
	add := func(where, rule string) {
		if err := m.addRule(rule); err != nil {
			probs = append(probs, fmt.Errorf("%s %q: %w", where, rule, err))
		}
	}
	for i, rule := range strings.FieldsFunc(text, func(r rune) bool { return r == ';' || r == '\n' }) {
		if rule = strings.TrimSpace(rule); rule != "" && !strings.HasPrefix(rule, "#") {
			add(fmt.Sprintf("CABLECAR_JOB_STREAMS: rule %d", i+1), rule)
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("CABLECAR_JOB_STREAMS_FILE: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				add(fmt.Sprintf("CABLECAR_JOB_STREAMS_FILE %s line %d", file, i+1), line)
			}
		}
	}
	return m, errors.Join(probs...)
}

// Empty reports whether no rule at all is configured.
func (m *Mapping) Empty() bool { return len(m.rules) == 0 && m.fallback == nil }

// HasFallback reports whether a "*" rule covers every other class.
func (m *Mapping) HasFallback() bool { return m.fallback != nil }

// Classes lists the classes with a rule of their own.
func (m *Mapping) Classes() []string {
	out := make([]string, 0, len(m.rules))
	for c := range m.rules {
		out = append(out, c)
	}
	return out
}

func (m *Mapping) addRule(rule string) error {
	lhs, rhs, ok := strings.Cut(rule, "=")
	if !ok {
		return errors.New(`missing "="`)
	}
	class := strings.TrimSpace(lhs)
	if class == "" {
		return errors.New("missing job class before \"=\"")
	}
	var ts []jobTemplate
	for i, raw := range strings.Split(rhs, ",") {
		t, err := parseJobTemplate(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("template %d: %w", i+1, err)
		}
		ts = append(ts, t)
	}
	if class == "*" {
		if m.fallback != nil {
			return errors.New(`a second "*" rule`)
		}
		m.fallback = ts
		return nil
	}
	if _, dup := m.rules[class]; dup {
		return fmt.Errorf("a second rule for %s", class)
	}
	m.rules[class] = ts
	return nil
}

func parseJobTemplate(text string) (jobTemplate, error) {
	t := jobTemplate{text: text}
	if text == "" {
		return t, errors.New("empty template")
	}
	for rest := text; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.segs = append(t.segs, jobSegment{literal: rest})
			break
		}
		if rest[open] == '}' {
			return t, fmt.Errorf("%q: unbalanced \"}\"", text)
		}
		if open > 0 {
			t.segs = append(t.segs, jobSegment{literal: rest[:open]})
		}
		inner := rest[open+1:]
		end := strings.IndexAny(inner, "{}")
		if end < 0 || inner[end] == '{' {
			return t, fmt.Errorf("%q: unbalanced \"{\"", text)
		}
		seg, err := parseJobPlaceholder(inner[:end])
		if err != nil {
			return t, fmt.Errorf("%q: %w", text, err)
		}
		t.segs = append(t.segs, seg)
		rest = inner[end+1:]
	}
	return t, nil
}

func parseJobPlaceholder(inner string) (jobSegment, error) {
	switch inner {
	case "job_id", "class", "queue", "backend":
		return jobSegment{field: inner}, nil
	}
	var seg jobSegment
	ref := inner
	if rest, ok := strings.CutPrefix(inner, "gid:"); ok {
		model, r, ok := strings.Cut(rest, ":args.")
		if !ok || model == "" {
			return seg, fmt.Errorf("placeholder {%s}: want {gid:Model:args.N}", inner)
		}
		seg.model, ref = model, "args."+r
	}
	path, ok := strings.CutPrefix(ref, "args.")
	if !ok {
		return seg, fmt.Errorf("unknown placeholder {%s} (known: {job_id}, {class}, {queue}, {backend}, {args.N}, {args.N.key}, {gid:Model:args.N})", inner)
	}
	seg.path = strings.Split(path, ".")
	if _, err := strconv.Atoi(seg.path[0]); err != nil || seg.path[0][0] == '-' {
		return seg, fmt.Errorf("placeholder {%s}: %q is not an argument index", inner, seg.path[0])
	}
	for _, k := range seg.path[1:] {
		if k == "" {
			return seg, fmt.Errorf("placeholder {%s}: empty key", inner)
		}
	}
	return seg, nil
}

// Streams renders the templates for ev's class (or the "*" rule). It
// returns ErrUnmapped when neither exists, and a rendering error naming the
// template when the job lacks a value it needs.
func (m *Mapping) Streams(ev *Event) ([]string, error) {
	ts, ok := m.rules[ev.Class]
	if !ok {
		if ts = m.fallback; ts == nil {
			return nil, ErrUnmapped
		}
	}
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		s, err := t.render(ev, m.gidApp)
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", t.text, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (t *jobTemplate) render(ev *Event, gidApp string) (string, error) {
	var b strings.Builder
	for _, s := range t.segs {
		v, err := s.render(ev, gidApp)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (s *jobSegment) render(ev *Event, gidApp string) (string, error) {
	switch s.field {
	case "job_id":
		return rails.ToParam(ev.JobID)
	case "class":
		return rails.ToParam(ev.Class)
	case "queue":
		return rails.ToParam(ev.Queue)
	case "backend":
		return ev.Backend, nil
	}
	if s.path == nil {
		return s.literal, nil
	}
	v, err := argAt(ev.Args, s.path)
	if err != nil {
		return "", err
	}
	if uri, ok := globalID(v); ok {
		if s.model == "" {
			return "", fmt.Errorf("args.%s is a GlobalID (%s): use {gid:Model:args.%[1]s}", strings.Join(s.path, "."), uri)
		}
		if !strings.HasPrefix(uri, "gid://") || gidModel(uri) != s.model {
			return "", fmt.Errorf("args.%s is %s, not a %s", strings.Join(s.path, "."), uri, s.model)
		}
		// The record was serialized by its GlobalID: its param is the
		// Base64 of exactly that URI, whatever the app name.
		return base64.RawURLEncoding.EncodeToString([]byte(uri)), nil
	}
	p, err := rails.ToParam(v)
	if err != nil {
		return "", fmt.Errorf("args.%s: %w", strings.Join(s.path, "."), err)
	}
	if s.model != "" {
		if gidApp == "" {
			return "", errors.New("{gid:…} of a plain id needs CABLECAR_GID_APP")
		}
		return rails.GlobalIDParam(gidApp, s.model, p), nil
	}
	return p, nil
}

// argAt walks args by index, then object keys.
func argAt(args []any, path []string) (any, error) {
	i, _ := strconv.Atoi(path[0])
	if i >= len(args) {
		return nil, fmt.Errorf("args.%d: %w: the job has %d arguments", i, rails.ErrMissingValue, len(args))
	}
	v := args[i]
	for n, k := range path[1:] {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("args.%s: %w: %s is %s, not an object", strings.Join(path, "."), rails.ErrMissingValue,
				strings.Join(path[:n+1], "."), rails.JSONKind(v))
		}
		v = obj[k]
	}
	return v, nil
}

// globalID recognises ActiveJob's serialized record, {"_aj_globalid": uri}.
func globalID(v any) (string, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	uri, ok := obj["_aj_globalid"].(string)
	return uri, ok
}

// gidModel is the model part of gid://app/Model/id.
func gidModel(uri string) string {
	parts := strings.SplitN(strings.TrimPrefix(uri, "gid://"), "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}
