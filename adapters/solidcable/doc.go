// Package solidcable is the broker for Rails 8's default Action Cable
// adapter, Solid Cable: broadcasts are rows of the solid_cable_messages
// table in the app's database, and every listener polls that table. With
// it cablecar hears what Rails broadcasts without any change to cable.yml,
// on PostgreSQL, SQLite or MySQL.
//
// One goroutine (Run) polls for all subscribed streams with a single
// indexed query per interval,
//
//	SELECT id, channel, payload, created_at FROM solid_cable_messages
//	WHERE channel_hash IN (...) AND id > last AND id NOT IN (read)
//	ORDER BY id LIMIT n
//
// and matches each row's channel exactly, since hashes may collide. Ids
// are handed out at insert but rows appear at commit, so with concurrent
// writers a smaller id can appear after a larger one was read (Solid
// Cable's own listener then misses it): each poll rereads from where the
// cursor was Config.LateCommitWindow (2s) ago, leaving out the ids it
// already read there, so such a row is delivered, late, not lost. A
// stream subscribed for the first time starts after the table's largest id
// at that moment, as Solid Cable's listener does, and is reported active
// once a completed poll covers it. The cursor only moves past rows that
// were read, so a database outage loses nothing: polling resumes from the
// last id seen. Several cablecar nodes over one database each read every
// row once for their own subscribers.
//
// Publish inserts a row as Solid Cable's SolidCable::Message.broadcast does
// (created_at, channel, payload, channel_hash), so Rails' listeners hear
// cablecar's broadcasts too. Rows are deleted only when Config.Trim is set.
package solidcable
