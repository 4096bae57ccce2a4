package rails

import "strings"

// ChannelName returns Rails' channel_name for a channel class: a trailing
// "Channel" is removed, "::" becomes ":", and the result is underscored the
// way ActiveSupport does it, so "Chat::RoomChannel" gives "chat:room",
// "Admin::Reports::DailyStatsChannel" gives "admin:reports:daily_stats" and
// "HTMLParserChannel" gives "html_parser".
//
// Only the default inflections are modelled: acronyms an application
// registers with inflect.acronym can change Rails' result for some names.
func ChannelName(class string) string {
	name := strings.TrimSuffix(class, "Channel")
	name = strings.ReplaceAll(name, "::", ":")
	return underscore(name)
}

// underscore follows ActiveSupport's String#underscore (Rails 7+ form, which
// gives the same results as 6.1's for every ASCII class name).
func underscore(word string) string {
	// Rails returns the word untouched, without even downcasing non-ASCII
	// letters, when it has no ASCII capital, no "-" and no "::".
	if !strings.ContainsAny(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-") && !strings.Contains(word, "::") {
		return word
	}
	word = strings.ReplaceAll(word, "::", "/")
	var b strings.Builder
	b.Grow(len(word) + 4)
	for i := 0; i < len(word); i++ {
		c := word[i]
		if i > 0 && isUpper(c) && wordBreak(word, i) {
			b.WriteByte('_')
		}
		if c == '-' {
			c = '_'
		}
		b.WriteByte(c)
	}
	return strings.ToLower(b.String())
}

// wordBreak reports whether an "_" goes before the capital at word[i]: after
// a lower-case letter or digit ("chatRoom" → "chat_Room"), or at the last
// capital of an acronym that is followed by a lower-case letter
// ("HTMLParser" → "HTML_Parser").
func wordBreak(word string, i int) bool {
	prev := word[i-1]
	if isLower(prev) || isDigit(prev) {
		return true
	}
	return isUpper(prev) && i+1 < len(word) && isLower(word[i+1])
}

// The character classes are ASCII-only, as in the Ruby regular expressions.
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
