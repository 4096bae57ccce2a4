package history

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rule turns history on for the streams whose names match Pattern.
type Rule struct {
	// Pattern is a stream name where "*" matches any run of bytes
	// (":" included), as in the streams claim.
	Pattern string
	// Size is how many messages are kept per stream (Redis trims
	// approximately: a few more may stay).
	Size int
	// TTL is how long a message is kept, and how long a stream's history
	// outlives its last message.
	TTL time.Duration
}

// Rules is CABLECAR_HISTORY parsed. The first rule that matches a stream
// decides; a stream no rule matches keeps no history.
type Rules []Rule

// ParseRules reads CABLECAR_HISTORY: items "pattern:size:ttl" separated by
// "," or ";". The pattern may itself hold ":" (stream names often do), so
// the last two fields are the size and the ttl, e.g. "document:*:100:5m".
func ParseRules(s string) (Rules, error) {
	var rules Rules
	for item := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ';' }) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		rest, ttlText, ok1 := cut(item)
		pattern, sizeText, ok2 := cut(rest)
		if !ok1 || !ok2 || pattern == "" {
			return nil, fmt.Errorf("CABLECAR_HISTORY: %q is not pattern:size:ttl (e.g. document:*:100:5m)", item)
		}
		size, err := strconv.Atoi(sizeText)
		if err != nil || size <= 0 {
			return nil, fmt.Errorf("CABLECAR_HISTORY: %q: size %q is not a positive number", item, sizeText)
		}
		ttl, err := time.ParseDuration(ttlText)
		if err != nil || ttl < time.Second {
			return nil, fmt.Errorf("CABLECAR_HISTORY: %q: ttl %q is not a duration of at least 1s (e.g. 5m)", item, ttlText)
		}
		rules = append(rules, Rule{Pattern: pattern, Size: size, TTL: ttl})
	}
	return rules, nil
}

// cut splits s at its last ":".
func cut(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
}

// Match returns the rule for stream.
func (rs Rules) Match(stream string) (Rule, bool) {
	for _, r := range rs {
		if globMatch(r.Pattern, stream) {
			return r, true
		}
	}
	return Rule{}, false
}

// globMatch reports whether s matches p, "*" matching any run of bytes.
// Backtracking goes to the latest "*" only, so the cost stays at most
// len(p)·len(s).
func globMatch(p, s string) bool {
	pi, si, star, resume := 0, 0, -1, 0
	for si < len(s) {
		if pi < len(p) && p[pi] == '*' {
			star, resume = pi, si
			pi++
			continue
		}
		if pi < len(p) && p[pi] == s[si] {
			pi++
			si++
			continue
		}
		if star < 0 {
			return false
		}
		resume++
		pi, si = star+1, resume
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// RedisPattern is r's pattern as a PSUBSCRIBE pattern after prefix: "*"
// stays a wildcard, and Redis's other glob characters (?, [, ], \) are
// escaped to match themselves.
func (r Rule) RedisPattern(prefix string) string {
	var b strings.Builder
	b.WriteString(escapeGlob(prefix))
	for i := 0; i < len(r.Pattern); i++ {
		c := r.Pattern[i]
		if c != '*' && strings.IndexByte(`?[]\`, c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
