// A real BullMQ worker for cablecar's tests (internal/jobstest/bullmq.go).
//
// It processes the queue QUEUE on the Redis at REDIS_URL, under the key
// prefix PREFIX (default "bull"). The processor does what the job's data
// asks, so each test writes its own scenario:
//
//   data.progress: a list of values, each passed to job.updateProgress in turn
//   data.fail:     a message; the job throws new Error(message) (every attempt)
//   data.failOnce: a message; the job throws only on its first attempt
//   data.result:   the return value (default null)
//
// It also adds jobs: each line on stdin is {"name", "data", "opts"} and is
// answered on stdout by {"id"} (or {"error"}), in order. One long-lived
// process for both keeps a test from paying Node's start-up per job.
// "ready" is printed once the worker is connected.
import { createInterface } from 'node:readline';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const url = process.env.REDIS_URL;
const queueName = process.env.QUEUE;
const prefix = process.env.PREFIX || 'bull';
if (!url || !queueName) {
  console.error('worker.mjs: set REDIS_URL and QUEUE');
  process.exit(2);
}

// BullMQ's workers block on Redis, so they need maxRetriesPerRequest: null.
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const queue = new Queue(queueName, { connection, prefix });

async function processor(job) {
  const data = job.data || {};
  for (const p of data.progress || []) {
    await job.updateProgress(p);
  }
  if (data.fail) {
    throw new Error(data.fail);
  }
  if (data.failOnce && job.attemptsMade === 0) {
    throw new Error(data.failOnce);
  }
  return data.result ?? null;
}

const worker = new Worker(queueName, processor, { connection, prefix, concurrency: 1 });
worker.on('error', (err) => console.error('worker error:', err.message));
await worker.waitUntilReady();
process.stdout.write('ready\n');

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    const req = JSON.parse(line);
    const job = await queue.add(req.name, req.data, req.opts || {});
    reply = { id: job.id };
  } catch (err) {
    reply = { error: String(err && err.message) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}

// stdin closed: the test is over.
await worker.close();
await queue.close();
await connection.quit();
