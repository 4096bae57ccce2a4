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
// or Sidekiq::ActiveJob::Wrapper from Sidekiq 8.0.5) are reported as the wrapped
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
// Sidekiq records no completion, only the work lists its heartbeat writes
// every 5 s (6.x) or 10 s (7+): a job that finishes between two beats is
// never seen running, and its success is never seen at all; its failure
// is (retry and dead sets).
//
// A job that leaves no retry or dead entry when it raises (retry: false,
// dead: false, Sidekiq 7+'s :discard) is reported completed, and so is a
// job requeued by a graceful shutdown (it runs again later as a new run).
// With a fetcher that recovers the jobs of a killed process (Sidekiq Pro's
// super_fetch), a lost job may still run again later.
//
// The retry and dead reads run Settle behind Redis's clock, so Sidekiq
// hosts' clocks must agree with Redis's to within Settle.
//
// An entry stays inside the retry windows for the jitter span (about
// 10(c+1) s), so a burst of more than ReadBudget failures within that span
// is partly passed over, each poll reporting an "overflow" skip. Sidekiq
// 6.0's jitter (up to 30(c+1) s) falls outside the windows; the sweep finds
// those entries.
//
// Only a single Redis server (redis:// or rediss:// URL) is supported, as
// Sidekiq itself uses one.
package sidekiq
