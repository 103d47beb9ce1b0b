// duro, configured as its README describes: defaults (pool of 10, group commit), a WorkflowQueue
// with workerConcurrency 100 (dispatch is pushed on enqueue; the poll is only a safety net).
import { Duro, DuroClient, WorkflowQueue } from "duro";
import {
  Counter, StartSignal, SIZES, drainTime, latencyStats, measureEnqueue, measureStartLatency, now, perSecond, query, quietLogger, round,
} from "../common.mjs";

export const name = "duro";
export const config = "defaults (poolSize 10, group commit); WorkflowQueue workerConcurrency 100; enqueueMany for batches";

const QUEUE = "bench";

const countSucceeded = (url) => async () =>
  Number((await query(url, "SELECT count(*) AS n FROM duro.workflow_status WHERE status = 'SUCCESS' AND queue_name = $1", [QUEUE])).rows[0].n);

function threeStepApp(url, queue) {
  const duro = new Duro({ databaseUrl: url, logger: quietLogger });
  const step = duro.registerStep("step", async (x) => x + 1);
  const counter = new Counter();
  const threeSteps = duro.registerWorkflow("threeSteps", async (x) => {
    const r = await step(await step(await step(x)));
    counter.bump();
    return r;
  });
  if (queue) new WorkflowQueue(duro, QUEUE, { workerConcurrency: queue.workerConcurrency });
  return { duro, threeSteps, counter };
}

export async function sequential({ url }) {
  const { warmup, runs } = SIZES.sequential;
  const { duro, threeSteps } = threeStepApp(url);
  await duro.launch();
  for (let i = 0; i < warmup; i++) await threeSteps(i);
  const latencies = [];
  for (let i = 0; i < runs; i++) {
    const t = now();
    await threeSteps(i);
    latencies.push(now() - t);
  }
  await duro.shutdown();
  return latencyStats(latencies);
}

export async function concurrent({ url }) {
  const { warmup, runs, callers } = SIZES.concurrent;
  const { duro, threeSteps } = threeStepApp(url);
  await duro.launch();
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
  await duro.shutdown();
  return { callers, workflows: runs, workflowsPerSecond: perSecond(runs, ms) };
}

export async function queue({ url }) {
  const { warmup, workflows, workerConcurrency } = SIZES.queue;
  const { duro, threeSteps, counter } = threeStepApp(url, { workerConcurrency });
  await duro.launch();
  const wf = threeSteps.with({ queueName: QUEUE });
  const args = (n) => Array.from({ length: n }, (_, i) => [i]);
  await duro.enqueueMany(wf, args(warmup));
  await drainTime(now(), counter, warmup, countSucceeded(url));
  const t0 = now();
  await duro.enqueueMany(wf, args(workflows));
  const enqueueMs = now() - t0;
  const t1 = now();
  const ms = await drainTime(t1, counter, warmup + workflows, countSucceeded(url));
  await duro.shutdown();
  return { workflows, workerConcurrency, enqueueMs: round(enqueueMs, 1), drainMs: round(ms, 1), workflowsPerSecond: perSecond(workflows, ms) };
}

function noopApp(url, workerConcurrency) {
  const duro = new Duro({ databaseUrl: url, logger: quietLogger });
  const counter = new Counter();
  const started = new StartSignal();
  const noop = duro.registerWorkflow("noop", async () => {
    started.fire();
    counter.bump();
  });
  new WorkflowQueue(duro, QUEUE, { workerConcurrency });
  return { duro, noop: noop.with({ queueName: QUEUE }), counter, started };
}

export async function drain({ url }) {
  const { warmup, jobs, workerConcurrency } = SIZES.drain;
  const { duro, noop, counter } = noopApp(url, workerConcurrency);
  await duro.launch();
  const args = (n) => Array.from({ length: n }, () => []);
  await duro.enqueueMany(noop, args(warmup));
  await drainTime(now(), counter, warmup, countSucceeded(url));
  await duro.enqueueMany(noop, args(jobs));
  const ms = await drainTime(now(), counter, warmup + jobs, countSucceeded(url));
  await duro.shutdown();
  return { jobs, workerConcurrency, drainMs: round(ms, 1), jobsPerSecond: perSecond(jobs, ms) };
}

export async function latency({ url }) {
  const { warmup, samples, gapMs } = SIZES.latency;
  const { duro, noop, started } = noopApp(url, SIZES.drain.workerConcurrency);
  await duro.launch();
  const result = await measureStartLatency({ samples, warmup, gapMs, started, enqueue: () => duro.startWorkflow(noop) });
  await duro.shutdown();
  return result;
}

/** A producer with no workers: DuroClient.enqueue one at a time, then DuroClient.enqueueMany. */
export async function enqueue({ url }) {
  const { duro } = noopApp(url, 1);
  await duro.launch(); // migrates; then shut down so nothing dequeues
  await duro.shutdown();
  const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
  const options = { workflowName: "noop", queueName: QUEUE };
  const result = await measureEnqueue({
    ...SIZES.enqueue,
    enqueueOne: (i) => client.enqueue(options, i),
    enqueueBatch: (items) => client.enqueueMany(options, items.map((i) => [i])),
  });
  await client.close();
  return result;
}
