// Package postgres is the broker for a Rails app whose config/cable.yml
// says adapter: postgresql: Action Cable broadcasts with NOTIFY and listens
// with LISTEN on the app's own database, and so does this broker, so
// cablecar hears what Rails broadcasts and Rails hears what cablecar
// publishes.
//
// # What goes over the wire
//
// It does what Rails' postgresql subscription adapter does. A stream's
// channel is "<ChannelPrefix>:<stream>" (the stream alone without a
// prefix), replaced by the lowercase hex SHA-1 of that name when it is
// over 63 bytes, PostgreSQL's identifier limit (see Channel for how Rails
// releases count the length). testdata/channel_names.json holds the names
// Debian's Action Cable computes, with the script that printed them.
// Publish runs SELECT pg_notify(channel, payload) on a pooled connection;
// Rails sends NOTIFY "channel", 'payload', which PostgreSQL treats alike.
// One dedicated connection per process, named cablecar-listen in
// pg_stat_activity, sends LISTEN "channel" (quoted as ruby-pg quotes
// identifiers) for every wanted stream, in batches, and UNLISTEN when the
// last stream on a channel goes. active is reported once the LISTEN has
// returned.
//
// # Limits
//
// A NOTIFY payload must be under 8000 bytes (with PostgreSQL's default 8 kB
// pages). Publish refuses a larger one with ErrPayloadTooLarge rather than
// dropping it; Rails' adapter raises PG::InvalidParameterValue alike.
// PostgreSQL text cannot hold a NUL byte or bytes that are not UTF-8, while
// cablecar streams and payloads may: such a message goes base64-encoded on
// the side channel "<ChannelPrefix>:cablecar:raw", which every cablecar
// node LISTENs to and Rails never does. Action Cable's JSON payloads never
// need it.
//
// # Failures
//
// NOTIFY is pub/sub: a notification sent while the listening connection
// is down is lost, as with Redis. When the connection fails, Run logs the
// loss once ("messages NOTIFYed until it is back are missed"), retries with
// jittered exponential backoff (BackoffMin to BackoffMax) logging each
// further attempt only at debug level, and on reconnecting LISTENs for
// every wanted stream again and reports each active again. Health says why
// while it is down, e.g. "postgres: connection refused by 127.0.0.1:5432
// (is PostgreSQL running there?)". An idle connection is checked with a
// round trip every PingInterval and replaced when that takes longer than
// PingTimeout.
//
// # Several nodes
//
// Every cablecar node (and every Rails process) LISTENing on a channel of
// the same database receives each NOTIFY, so any number of nodes can share
// one database. A connection pooler in transaction mode (PgBouncer) cannot
// carry LISTEN: point URL at PostgreSQL itself or a session-mode pool.
package postgres
