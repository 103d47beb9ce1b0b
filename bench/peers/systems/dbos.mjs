// DBOS Transact TS 5.x, functional API (DBOS.registerWorkflow / registerStep), defaults
// (system database pool of 10, LISTEN/NOTIFY on); the queue is registered with
// DBOS.registerQueue (5.x keeps queue configuration in the database) with workerConcurrency 100
// and minPollingIntervalMs 10 (default 1000), the lowest interval the bench uses for any system.
// DBOS has no batch enqueue call: its batch is DBOSClient.enqueueInTransaction, once per
// workflow, in one transaction of the caller's.
import { DBOS, DBOSClient } from "@dbos-inc/dbos-sdk";
import pg from "pg";
import {
  Counter, StartSignal, SIZES, drainTime, latencyStats, measureEnqueue, measureStartLatency, now, perSecond, query, round,
} from "../common.mjs";

export const name = "dbos";
export const POLLING_MS = Number(process.env.BENCH_PEERS_DBOS_POLLING_MS ?? 10);
export const config =
  `@dbos-inc/dbos-sdk functional API, defaults (systemDatabasePoolSize 10, LISTEN/NOTIFY); DBOS.registerQueue workerConcurrency 100, minPollingIntervalMs ${POLLING_MS}; batch = DBOSClient.enqueueInTransaction per workflow in one transaction`;

const QUEUE = "bench";
const APP = "bench";

const countSucceeded = (url) => async () =>
  Number((await query(url, "SELECT count(*) AS n FROM dbos.workflow_status WHERE status = 'SUCCESS' AND queue_name = $1", [QUEUE])).rows[0].n);

function configure(url) {
  DBOS.setConfig({ name: APP, systemDatabaseUrl: url, logLevel: "error" });
}

async function registerQueue() {
  await DBOS.registerQueue(QUEUE, { workerConcurrency: SIZES.queue.workerConcurrency, minPollingIntervalMs: POLLING_MS });
}

function threeStepApp() {
  const counter = new Counter();
  const step = DBOS.registerStep(async (x) => x + 1, { name: "step" });
  const threeSteps = DBOS.registerWorkflow(async (x) => {
    const r = await step(await step(await step(x)));
    counter.bump();
    return r;
  }, { name: "threeSteps" });
  return { threeSteps, counter };
}

export async function sequential({ url }) {
  const { warmup, runs } = SIZES.sequential;
  configure(url);
  const { threeSteps } = threeStepApp();
  await DBOS.launch();
  for (let i = 0; i < warmup; i++) await threeSteps(i);
  const latencies = [];
  for (let i = 0; i < runs; i++) {
    const t = now();
    await threeSteps(i);
    latencies.push(now() - t);
  }
  await DBOS.shutdown();
  return latencyStats(latencies);
}

export async function concurrent({ url }) {
  const { warmup, runs, callers } = SIZES.concurrent;
  configure(url);
  const { threeSteps } = threeStepApp();
  await DBOS.launch();
  const burst = async (total) => {
    let next = 0;
    await Promise.all(Array.from({ length: callers }, async () => {
      while (next < total) await threeSteps(next++);
    }));
  };
  await burst(warmup);
  const t = now();
  await burst(runs);
  const ms = now() - t;
  await DBOS.shutdown();
  return { callers, workflows: runs, workflowsPerSecond: perSecond(runs, ms) };
}

/**
 * DBOS's closest thing to a batch enqueue: enqueueInTransaction once per workflow, in one
 * transaction on one connection (opened once and reused for every batch).
 */
async function batcher(url) {
  const client = await DBOSClient.create({ systemDatabaseUrl: url, applicationName: APP });
  const conn = new pg.Client({ connectionString: url });
  await conn.connect();
  return {
    client,
    async enqueue(workflowName, argsList) {
      await conn.query("BEGIN");
      try {
        for (const args of argsList) await client.enqueueInTransaction(conn, { workflowName, queueName: QUEUE }, ...args);
        await conn.query("COMMIT");
      } catch (error) {
        await conn.query("ROLLBACK");
        throw error;
      }
    },
    async close() {
      await conn.end();
      await client.destroy();
    },
  };
}

export async function queue({ url }) {
  const { warmup, workflows, workerConcurrency } = SIZES.queue;
  configure(url);
  const { counter } = threeStepApp();
  await DBOS.launch();
  await registerQueue();
  const batch = await batcher(url);
  const args = (n) => Array.from({ length: n }, (_, i) => [i]);
  await batch.enqueue("threeSteps", args(warmup));
  await drainTime(now(), counter, warmup, countSucceeded(url));
  const t0 = now();
  await batch.enqueue("threeSteps", args(workflows));
  const enqueueMs = now() - t0;
  const ms = await drainTime(now(), counter, warmup + workflows, countSucceeded(url));
  await batch.close();
  await DBOS.shutdown();
  return { workflows, workerConcurrency, pollingMs: POLLING_MS, enqueueMs: round(enqueueMs, 1), drainMs: round(ms, 1), workflowsPerSecond: perSecond(workflows, ms) };
}

function noopApp() {
  const counter = new Counter();
  const started = new StartSignal();
  const noop = DBOS.registerWorkflow(async () => {
    started.fire();
    counter.bump();
  }, { name: "noop" });
  return { noop, counter, started };
}

export async function drain({ url }) {
  const { warmup, jobs, workerConcurrency } = SIZES.drain;
  configure(url);
  const { counter } = noopApp();
  await DBOS.launch();
  await registerQueue();
  const batch = await batcher(url);
  const args = (n) => Array.from({ length: n }, () => []);
  await batch.enqueue("noop", args(warmup));
  await drainTime(now(), counter, warmup, countSucceeded(url));
  await batch.enqueue("noop", args(jobs));
  const ms = await drainTime(now(), counter, warmup + jobs, countSucceeded(url));
  await batch.close();
  await DBOS.shutdown();
  return { jobs, workerConcurrency, pollingMs: POLLING_MS, drainMs: round(ms, 1), jobsPerSecond: perSecond(jobs, ms) };
}

export async function latency({ url }) {
  const { warmup, samples, gapMs } = SIZES.latency;
  configure(url);
  const { noop, started } = noopApp();
  await DBOS.launch();
  await registerQueue();
  const result = await measureStartLatency({ samples, warmup, gapMs, started, enqueue: () => DBOS.startWorkflow(noop, { queueName: QUEUE })() });
  await DBOS.shutdown();
  return { ...result, pollingMs: POLLING_MS };
}

/** A producer with no workers: DBOSClient.enqueue one at a time, then enqueueInTransaction batches. */
export async function enqueue({ url }) {
  configure(url);
  noopApp();
  await DBOS.launch(); // migrates and registers the queue; then shut down so nothing dequeues
  await registerQueue();
  await DBOS.shutdown();
  const batch = await batcher(url);
  const options = { workflowName: "noop", queueName: QUEUE };
  const result = await measureEnqueue({
    ...SIZES.enqueue,
    enqueueOne: (i) => batch.client.enqueue(options, i),
    enqueueBatch: (items) => batch.enqueue("noop", items.map((i) => [i])),
  });
  await batch.close();
  return result;
}
