// Package sidekiq watches a Sidekiq (6, 7 or 8) through its Redis and turns
// what it finds into job events (jobs.Event): running, completed, retrying,
// dead and lost. The application's jobs need no code: the watcher reads the
// keys Sidekiq keeps for its Web UI, and writes nothing.
//
// # What it reads, and why
//
// Sidekiq keeps no log of job transitions, so each status comes from the
// key that holds it, read so that a poll's cost follows the rate of job
// changes, never the size of a set:
//
//   - "processes" (a set of process identities), "<identity>" (the
//     heartbeat hash, which Sidekiq refreshes every 5 s (6.x) or 10 s (7+)
//     and lets expire 60 s after the last beat) and "<identity>:work" (6.5
//     and later; "<identity>:workers" before): a hash of thread id to
//     {"queue", "payload", "run_at"}, payload being the job's JSON as a
//     string (an object before 6.4), rewritten at every heartbeat. A run
//     newly listed is running. A run no longer listed is completed unless
//     it turned up in the retry or dead set (see Settle). A run whose
//     process's heartbeat key expired (SIGKILL, out of memory) is lost.
//     Because the list is written only at heartbeats, a job shorter than
//     one heartbeat may never be seen running or completed.
//   - "retry", a sorted set scored by the next retry time: not by when the
//     entry was added, so no score cursor works. Sidekiq's default backoff
//     puts an entry with retry_count c at its failure time + c⁴ + 15 + up
//     to 10(c+1) s of jitter, so the entries that failed since the last
//     poll lie in one known score window per count (0 to MaxRetryCount),
//     merged where they overlap. A poll reads those windows (at most a
//     minute of failures at a time, so a watcher behind catches up over
//     several polls; at most ReadBudget entries) and keeps the entries
//     whose failed_at, or retried_at after a retry, falls in its span:
//     retrying, with next_retry_at the score. A custom
//     sidekiq_retry_in or retry_count above MaxRetryCount moves an entry
//     outside the windows; a slow background ZSCAN (SweepCount entries a
//     poll, its position in the cursor) finds those eventually, within two
//     passes over the set; one retried before the sweep reaches it is
//     never reported as retrying.
//   - "dead", a sorted set scored by the time of death: read with a score
//     cursor (ties at one score told apart by member hashes) → dead.
//   - "schedule" is not read: a job scheduled for later is not a fate.
//     ActiveJob's retry_on re-enqueues through it, so those retries are
//     seen as a new run, not as retrying.
//
// Sidekiq 6 and 7 write failed_at and retried_at as float Unix seconds,
// Sidekiq 8 as integer milliseconds; the magnitude tells them apart. Set
// scores and run_at are seconds in every version.
//
// ActiveJob jobs (class ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper,
// or Sidekiq::ActiveJob::Wrapper in Sidekiq 8) are reported as the wrapped
// class, with ActiveJob's job_id and the serialized job's arguments;
// GlobalID arguments stay {"_aj_globalid": "gid://…"} objects. Other jobs
// use Sidekiq's jid and args. Numbers are json.Number.
//
// # Cursor
//
// The cursor (JSON, small) holds the failure time up to which the retry set
// was read, the dead set's score and ties, the sweep's position and span,
// and every run seen in a work list and not yet finished, with its class,
// queue and arguments up to 1 KiB (larger arguments are left out of its
// completed and lost events). A nil cursor starts from now: jobs running
// now are reported running; failures before now are not replayed.
//
// # Limits
//
// A job that raises with retry: false leaves no trace in Redis and is
// reported completed. A job requeued by a graceful shutdown is reported
// completed (it runs again later as a new run). The retry and dead reads
// run Settle behind Redis's clock, so Sidekiq hosts' clocks must agree with
// Redis's to within Settle.
package sidekiq
