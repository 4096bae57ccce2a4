// Package solidqueue watches Solid Queue, Rails 8's default job backend,
// whose state lives in the application's own database (PostgreSQL or
// SQLite here), and turns what it sees into jobs.Event values.
//
// Every poll runs a few indexed queries, never one per job:
//
//   - failed: solid_queue_failed_executions rows past an id cursor, joined
//     with their jobs. The error column is the JSON Solid Queue writes
//     ({"exception_class", "message", "backtrace"}).
//   - running: solid_queue_claimed_executions rows past an id cursor. A
//     claim that is made and released between two polls is never seen, so
//     running is best effort; the final fate is not.
//   - completed: solid_queue_jobs rows whose finished_at is set, read
//     through the index on finished_at with a (finished_at, id) keyset.
//     Solid Queue only keeps finished jobs when preserve_finished_jobs is
//     true (its default); with false a finished job is deleted and no
//     completed event can be seen.
//   - lost: claimed executions whose process stopped heartbeating for
//     longer than the alive threshold, or whose process row is gone. This
//     reads the whole claimed table, which holds one row per job running
//     right now, so it stays small.
//
// Ids and timestamps are not committed in order: two workers insert rows
// concurrently and the later id can commit first; Ruby stamps finished_at
// before its transaction commits. The cursor therefore remembers, for a
// short settle window, the ids it skipped over (holes) and the finished
// jobs it already reported, and looks again. Both lists are capped so the
// cursor stays small.
package solidqueue
