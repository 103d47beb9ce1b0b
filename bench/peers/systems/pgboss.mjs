// pg-boss 12: one instance (pool max 10, the default), useListenNotify on and the queue created
// with notify: true (its documented way to start work without waiting for a poll), and one
// worker fetching batches (batchSize 100 = 100 jobs in flight, burstWhenBatchFull so it fetches
// again at once while batches come back full, polling 0.5 s, the minimum pg-boss allows). The
// per-job variant (localConcurrency 100, batchSize 1) can be chosen with
// BENCH_PEERS_PGBOSS_MODE=perjob; any other work options with BENCH_PEERS_PGBOSS_WORK (JSON).
import { PgBoss } from "pg-boss";
import { Counter, StartSignal, SIZES, drainTime, measureEnqueue, measureStartLatency, now, perSecond, query, round } from "../common.mjs";

export const name = "pgboss";
const MODE = process.env.BENCH_PEERS_PGBOSS_MODE ?? "batch";
const QUEUE = "bench";
const concurrency = SIZES.drain.workerConcurrency;
const WORK_OPTIONS = process.env.BENCH_PEERS_PGBOSS_WORK ? JSON.parse(process.env.BENCH_PEERS_PGBOSS_WORK) : MODE === "perjob"
  ? { localConcurrency: concurrency, batchSize: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }
  : { batchSize: concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 };
export const config = `pg-boss max 10 connections, useListenNotify + queue notify; work(${JSON.stringify(WORK_OPTIONS)}); batch = insert()`;

const countCompleted = (url) => async () =>
  Number((await query(url, "SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'", [QUEUE])).rows[0].n);

async function open(url) {
  const boss = new PgBoss({ connectionString: url, useListenNotify: true });
  boss.on("error", (e) => console.error("pg-boss error:", e?.message ?? e));
  await boss.start();
  await boss.createQueue(QUEUE, { notify: true });
  return boss;
}

async function startWorker(boss) {
  const counter = new Counter();
  const started = new StartSignal();
  await boss.work(QUEUE, WORK_OPTIONS, async (jobs) => {
    for (let i = 0; i < jobs.length; i++) {
      started.fire();
      counter.bump();
    }
  });
  return { counter, started };
}

const items = (n) => Array.from({ length: n }, (_, i) => ({ data: { i } }));

export async function drain({ url }) {
  const { warmup, jobs } = SIZES.drain;
  const boss = await open(url);
  const { counter } = await startWorker(boss);
  await boss.insert(QUEUE, items(warmup));
  await drainTime(now(), counter, warmup, countCompleted(url));
  await boss.insert(QUEUE, items(jobs));
  const ms = await drainTime(now(), counter, warmup + jobs, countCompleted(url));
  await boss.stop({ graceful: false });
  return { jobs, workerConcurrency: concurrency, mode: MODE, drainMs: round(ms, 1), jobsPerSecond: perSecond(jobs, ms) };
}

export async function latency({ url }) {
  const { warmup, samples, gapMs } = SIZES.latency;
  const boss = await open(url);
  const { started } = await startWorker(boss);
  const result = await measureStartLatency({ samples, warmup, gapMs, started, enqueue: (i) => boss.send(QUEUE, { i }) });
  await boss.stop({ graceful: false });
  return { ...result, mode: MODE };
}

/** A producer with no workers: send() one at a time, then insert() batches. */
export async function enqueue({ url }) {
  const boss = await open(url);
  const result = await measureEnqueue({
    ...SIZES.enqueue,
    enqueueOne: (i) => boss.send(QUEUE, { i }),
    enqueueBatch: (list) => boss.insert(QUEUE, list.map((i) => ({ data: { i } }))),
  });
  await boss.stop({ graceful: false });
  return result;
}
