// Shared by the peer benchmark: the server URL, databases, timing and statistics.
import pg from "pg";

/** The PostgreSQL server every system runs against (trust auth). */
export const SERVER_URL = process.env.BENCH_PEERS_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The URL of database `name` on the same server. */
export function databaseUrl(name) {
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(sql) {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database (dropped first if a previous run left it behind). */
export async function createDatabase(name) {
  await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin(`CREATE DATABASE "${name}"`);
  // Every system starts with the previous workload's dirty pages written out, so that no one
  // measures commits while a checkpoint of another system's writes is under way.
  await admin("CHECKPOINT");
}

export async function dropDatabase(name) {
  await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/** One query against a database, on a connection of its own. */
export async function queryOnce(url, sql, params = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

const checkers = new Map();
/**
 * A query on one connection per database kept open for the whole child process (for the
 * completion checks, so that they do not pay a connection set-up each time).
 */
export async function query(url, sql, params = []) {
  let client = checkers.get(url);
  if (!client) {
    client = new pg.Client({ connectionString: url });
    checkers.set(url, client);
    await client.connect();
  }
  return client.query(sql, params);
}

export async function closeQueries() {
  for (const client of checkers.values()) await client.end().catch(() => {});
  checkers.clear();
}

export const now = () => performance.now();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const round = (x, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** mean / p50 / p99 / max of a list of milliseconds. */
export function latencyStats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    samples: sorted.length,
    meanMs: round(mean, 3),
    p50Ms: round(percentile(sorted, 50), 3),
    p99Ms: round(percentile(sorted, 99), 3),
    maxMs: round(sorted[sorted.length - 1] ?? 0, 3),
  };
}

export const perSecond = (count, ms) => Math.round(count / (ms / 1000));

/**
 * A counter that handlers bump when a job or workflow body runs, and that a driver can wait on.
 * `until(n)` resolves once the counter reaches n.
 */
export class Counter {
  n = 0;
  waiters = [];
  bump() {
    this.n++;
    if (this.waiters.length) {
      this.waiters = this.waiters.filter((w) => {
        if (this.n >= w.target) w.resolve();
        return this.n < w.target;
      });
    }
  }
  until(target, timeoutMs = 300_000) {
    if (this.n >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${target} (at ${this.n})`)), timeoutMs);
      this.waiters.push({
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/**
 * Polls `countDone()` every few ms until it reports at least `target`; for confirming, once the
 * handlers have all run, that the system has also recorded every completion. Polling starts only
 * after the last handler ran, so it adds no load while the work drains.
 */
export async function confirm(countDone, target, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await countDone();
    if (done >= target) return;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${target} recorded as completed`);
    await sleep(2);
  }
}

/** Measures a drain: resolves with the elapsed ms from `t0` until every job is recorded done. */
export async function drainTime(t0, counter, target, countDone) {
  await counter.until(target);
  await confirm(countDone, target);
  return now() - t0;
}

/** Enqueue→start latency: `samples` times, enqueue one job on an idle queue and time until it starts. */
export async function measureStartLatency({ samples, warmup, gapMs = 20, enqueue, started }) {
  const latencies = [];
  for (let i = 0; i < warmup + samples; i++) {
    const begun = started.next();
    const t0 = now();
    await enqueue(i);
    const t1 = await begun;
    if (i >= warmup) latencies.push(t1 - t0);
    await sleep(gapMs); // let the job complete and the worker go idle again
  }
  return latencyStats(latencies);
}

/** Hands the start time of the next job to whoever waits for it. */
export class StartSignal {
  pending = [];
  next() {
    return new Promise((resolve) => this.pending.push(resolve));
  }
  fire() {
    const t = now();
    const resolve = this.pending.shift();
    if (resolve) resolve(t);
  }
}

/**
 * Single and batch enqueue rates, one caller, each call awaited before the next. Single enqueues
 * are timed twice: the first `single` of the process (`firstPerSecond`: V8 is still compiling
 * the hot path, on the cores the server needs too), then, after `warmup` more, `single` again
 * (`perSecond`: the steady state a long-running producer sees, which the ratios compare).
 */
export async function measureEnqueue({ single, batches, batchSize, warmup, enqueueOne, enqueueBatch }) {
  let t = now();
  for (let i = 0; i < single; i++) await enqueueOne(-1 - i);
  const firstMs = now() - t;
  for (let i = 0; i < warmup; i++) await enqueueOne(-1 - single - i);
  t = now();
  for (let i = 0; i < single; i++) await enqueueOne(i);
  const singleMs = now() - t;
  for (let b = 0; b < 2; b++) await enqueueBatch(Array.from({ length: batchSize }, (_, i) => -1 - i)); // warm-up
  t = now();
  for (let b = 0; b < batches; b++) await enqueueBatch(Array.from({ length: batchSize }, (_, i) => b * batchSize + i));
  const batchMs = now() - t;
  return {
    single: { enqueues: single, perSecond: perSecond(single, singleMs), meanMs: round(singleMs / single, 3), firstPerSecond: perSecond(single, firstMs) },
    batch: { batches, batchSize, enqueues: batches * batchSize, perSecond: perSecond(batches * batchSize, batchMs) },
  };
}

/** Workload sizes; BENCH_PEERS_SCALE (default 1) multiplies every count. */
const scale = Number(process.env.BENCH_PEERS_SCALE ?? 1);
const n = (x) => Math.max(1, Math.round(x * scale));
export const SIZES = {
  sequential: { warmup: n(500), runs: n(1000) },
  concurrent: { warmup: n(200), runs: n(3000), callers: 100 },
  queue: { warmup: n(100), workflows: n(3000), workerConcurrency: 100 },
  drain: { warmup: n(200), jobs: n(10_000), workerConcurrency: 100 },
  latency: { warmup: 20, samples: n(200), gapMs: 20 },
  enqueue: { warmup: n(1000), single: n(3000), batches: n(20), batchSize: 1000 },
};

export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };
