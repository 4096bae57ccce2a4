// Package rails reproduces the naming rules a Rails application uses for
// Action Cable, so that cablecar subscribes to exactly the Redis channels the
// Rails side publishes to.
//
// It covers Channel.channel_name, GlobalID#to_gid_param,
// Channel.broadcasting_for, the Redis adapter's channel_prefix and
// Connection#connection_identifier. Each function is checked byte for byte
// against vectors recorded from Action Cable 6.1.7.10 and 8.1.3; where the two
// differ, this package follows 8.1.
//
// All functions are pure: they keep no state and are safe for concurrent use.
package rails
