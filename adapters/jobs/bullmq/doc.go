// Package bullmq watches BullMQ queues and turns what happens to their jobs
// into jobs.Events, without any change to the application's job code.
//
// # What it reads
//
// BullMQ's Lua scripts append every state change of a job to the queue's
// events stream, <prefix>:<queue>:events (XADD, fields "event", "jobId" and
// a few more). The watcher reads those streams with XREAD BLOCK from the
// ids in its cursor, so a restart or a lease handover to another node picks
// up exactly where the last committed batch ended. The job's name, data and
// failure live in the job hash <prefix>:<queue>:<jobId>; the watcher reads
// the hashes of a batch's jobs in one MULTI/EXEC round trip, together with
// the stream entries written since the batch, so each event is described
// as of its own moment in the stream (see attempts below).
//
// Verified against the npm package bullmq 6.7.6 (its commands/*.lua):
//
//   - active (jobId, prev): a worker took the job → Running.
//   - progress (jobId, data): job.updateProgress; data is the JSON value →
//     Progress with Event.Progress = data.
//   - completed (jobId, returnvalue, prev) → Completed.
//   - failed (jobId, failedReason, prev): BullMQ writes it only for a final
//     failure (attempts used up, UnrecoverableError, stalled too often);
//     it is followed by retries-exhausted (jobId, attemptsMade) when the
//     attempts ran out → Failed. retries-exhausted itself adds nothing and
//     is not reported again.
//   - A failure that will be retried writes no failed event: the job goes
//     to delayed (event delayed, jobId, delay = the retry's Unix ms) when
//     it has a backoff, or straight back to wait (event waiting, prev
//     active) without one. The watcher reports such an event as Retrying
//     when the job hash carries a failedReason; NextRetryAt is the delay
//     timestamp, or the event's own time for an immediate retry. A job that
//     failed once and is later moved to delayed or wait for another reason
//     (DelayedError, a rate limit) is reported as retrying too: BullMQ's
//     stream does not tell these apart.
//   - stalled (jobId): the worker stopped renewing the job's lock (it died
//     or blocked its event loop); BullMQ has already put the job back in
//     wait, where it runs again, or fails with "job stalled more than
//     allowable limit" (a later failed event). The watcher reports Retrying
//     (the job's fate is to run again), not Lost, with ErrorMessage saying
//     it stalled; the waiting event written just before it is not reported.
//   - added, waiting (new jobs), drained, removed, duplicated, … are not a
//     job's fate and are ignored.
//
// Class is the job's name, Args is [data] (the job's data decoded with
// json.Number), so a stream mapping can say {args.0.document_id}.
// ErrorMessage is failedReason. BullMQ keeps no error class, only the
// stacks (the stacktrace field, a JSON list); ErrorClass is the name V8
// wrote at the head of the newest stack ("TypeError" in "TypeError: msg")
// when that line is exactly name + ": " + failedReason, else empty. Custom
// error classes show as "Error" unless they set their name. RetryCount is
// the number of retries made when the event happened: attemptsMade − 1
// (the job hash's "atm" counts attempts, the first run included), for
// Retrying and Failed. A job already removed (removeOnComplete,
// removeOnFail) is still reported, with what the stream holds: no class,
// no arguments, for a failure no error class, and its retries from the
// retries-exhausted entry when there is one.
//
// # What can be lost
//
// BullMQ trims each events stream to about 10,000 entries (the queue's
// meta field opts.maxLenEvents). A watcher that stays behind by more than
// that (every node down long enough on a busy queue) loses the trimmed
// events. Poll notices when the oldest entry left in a stream is newer than
// its cursor (trimming cuts from the head), reports a jobs.Skip with reason
// "events_trimmed" once, and goes on from the oldest entry left.
//
// A nil cursor starts at each stream's current last id, recorded
// concretely, so a first start does not replay history and the following
// Poll is deterministic.
package bullmq
