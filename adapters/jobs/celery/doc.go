// Package celery watches Celery's Redis result backend and turns the states
// it records into jobs.Events, without any change to the tasks.
//
// # What it reads
//
// Celery's Redis backend (verified against Debian's python3-celery 5.2.6,
// celery/backends/redis.py and base.py) keeps each task's latest state as a
// JSON string under celery-task-meta-<task_id> (SET, or SETEX with
// result_expires, one day by default) and PUBLISHes the same JSON, in the
// same pipeline, to the channel of the same name, for result.get(). The
// JSON holds "status", "result", "traceback", "children", "date_done" (an
// isoformat UTC time, set for SUCCESS, FAILURE and REVOKED only) and
// "task_id"; with result_extended = True also "name", "args", "kwargs",
// "worker", "retries" and "queue" (the routing key). The key is
// overwritten on each state change, and a SUCCESS is never overwritten.
//
// The mapping: STARTED → Running (Celery writes it only with
// task_track_started = True); PROGRESS, the state name Celery's
// documentation uses with update_state → Progress, Event.Progress being
// the state's meta ("result"); SUCCESS → Completed; RETRY → Retrying;
// FAILURE and REVOKED → Failed. PENDING, RECEIVED, REJECTED, IGNORED and
// other custom states are not reported. With the JSON serializer an
// exception is stored as {"exc_type": the class's __qualname__,
// "exc_message": its args, "exc_module": …}: ErrorClass is exc_type (without
// the module), ErrorMessage the single string argument, or the arguments as
// JSON. RetryCount is "retries", the retries made before this run (0 at the
// first RETRY). Celery does not store when a retry runs, so NextRetryAt
// stays zero. Class is "name", Queue "queue" and Args "args" (numbers as
// json.Number) when result_extended is on; without it they are empty and
// stream mappings that need args cannot route the task. kwargs are not
// passed on: Event.Args is positional. At is date_done for finished
// states, else the time this node received the state. Results must be JSON
// (result_serializer = 'json', the default); others are skipped as
// malformed.
//
// # How it reads: a subscription and a sweep
//
// Celery's Redis keeps no log of state changes: the key holds only the
// latest state, keyspace notifications are off by default, and the
// publications reach only those listening at that moment. So the watcher
// combines two readers:
//
//   - While it is polled, it holds a PSUBSCRIBE to <KeyPrefix>*, which
//     sees every state, in order, as it is written. The subscription
//     starts with the first Poll (confirmed by Redis before Poll goes on)
//     and ends when no Poll came for IdleStop (10s), as when this node lost
//     the lease, or on Close.
//   - Each Poll also makes one SCAN step (COUNT SweepCount, 1000) over the
//     result keys, its position kept in the cursor, and reads the values
//     with MGET. It reports the finished results (SUCCESS, FAILURE,
//     REVOKED) that nobody reported, so results written while no node
//     listened (a restart, a handover, a dropped connection) are still
//     reported, within one pass over the keys. It leaves results younger
//     than Grace (5s) to the subscription, which keeps a task's states in
//     order.
//
// The cursor remembers the finished results reported, as (task_id, status,
// date_done), so neither reader reports one twice. It stays bounded by a
// floor: when a SCAN pass completes, every result finished before the
// pass began (less Skew, 1 minute, for the workers' clocks) has been
// visited, so the floor moves there and older entries are dropped; at most
// SeenMax (10000, about 160 KB) are kept. A nil cursor sets the floor to
// now, so a first start does not report history.
//
// What can still be lost: intermediate states (STARTED, RETRY, PROGRESS)
// published while no node listened, since the key has moved on by the time
// a sweep reads it; the finished state is reported. A result that expired
// (result_expires) before the sweep reached it. A finished result read
// while more than SeenMax newer ones were reported within one pass could
// be reported twice.
//
// Poll answers a repeated cursor (the runner could not commit) with the
// same batch; after the subscription ended, or for a cursor it did not
// produce, it starts afresh from the cursor, and the sweep finds the
// finished results the subscription's buffer held. Bad results (malformed
// JSON, missing status or task_id, a bad date_done, over MaxValue, 64 KiB)
// are reported as jobs.Skip by the subscription; the sweep passes over them
// silently, since it meets them again on every pass.
package celery
