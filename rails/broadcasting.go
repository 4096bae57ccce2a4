package rails

import (
	"slices"
	"strings"
)

// Broadcasting returns what Channel.broadcasting_for gives: ChannelName(class)
// followed by each part, joined with ":". Parts must already be rendered the
// way Rails renders them (a record as its GlobalIDParam, a symbol or string as
// itself, an integer as its digits); nested arrays are simply more parts.
//
// With no parts the result is the bare channel name, which is what Rails 8.1
// gives for a nil argument (Rails 6.1 appended a trailing ":").
func Broadcasting(class string, parts ...string) string {
	name := ChannelName(class)
	if len(parts) == 0 {
		return name
	}
	return name + ":" + strings.Join(parts, ":")
}

// RedisChannel returns the Redis Pub/Sub channel the Rails Redis adapter uses
// for stream: prefix and stream joined with ":", or stream alone when prefix
// is "". (Rails treats a nil channel_prefix as no prefix but an explicit empty
// one as a prefix that yields a leading ":"; this function cannot tell the two
// apart and maps "" to no prefix, the common case.)
func RedisChannel(prefix, stream string) string {
	if prefix == "" {
		return stream
	}
	return prefix + ":" + stream
}

// ConnectionIdentifier returns Rails' Connection#connection_identifier for the
// given identified_by values, each already rendered (a record as its
// GlobalIDParam, anything else as its to_s): the values sorted bytewise and
// joined with ":". It returns "" for no values, in which case Rails subscribes
// to no internal channel. The argument slice is not modified.
func ConnectionIdentifier(values ...string) string {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return strings.Join(sorted, ":")
}
