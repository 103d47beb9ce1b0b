// graphile-worker: concurrentJobs 100 with the batching options of its performance page
// (localQueue, completeJobBatchDelay 0, failJobBatchDelay 0; the page's own run used
// localQueue.size 500). Pool of 20 connections (its docs suggest concurrentJobs + 2, which a
// server with max_connections = 100 shared by other clients cannot give; with the local queue
// workers do not hold a connection each). The `drainDefault` workload drains again without the
// batching options (graphile-worker's defaults). Enqueue uses addJob / addJobs (one add_jobs call
// per batch).
import { makeWorkerUtils, run } from "graphile-worker";
import { Counter, StartSignal, SIZES, drainTime, measureEnqueue, measureStartLatency, now, perSecond, query, round } from "../common.mjs";

export const name = "graphile";
const POOL = Number(process.env.BENCH_PEERS_GRAPHILE_POOL ?? 20);
const concurrency = SIZES.drain.workerConcurrency;
const BATCHING = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };
export const config = `graphile-worker concurrentJobs ${concurrency}, maxPoolSize ${POOL}, pollInterval 2000 (default; new jobs are announced by LISTEN/NOTIFY), localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0 (drainDefault: without these three); batch = addJobs`;

// graphile-worker's Logger, built from its factory: errors only.
async function quietLogger() {
  const { Logger } = await import("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error") console.error(message);
  });
}

const countRemaining = (url) => async () =>
  Number((await query(url, "SELECT count(*) AS n FROM graphile_worker._private_jobs")).rows[0].n);

async function startRunner(url, batching = BATCHING) {
  const counter = new Counter();
  const started = new StartSignal();
  const runner = await run({
    connectionString: url,
    concurrency,
    maxPoolSize: POOL,
    noHandleSignals: true,
    logger: await quietLogger(),
    taskList: {
      noop: async () => {
        started.fire();
        counter.bump();
      },
    },
    preset: { worker: batching },
  });
  return { runner, counter, started };
}

/** Completed jobs are deleted: all done = no job rows left. */
async function drainJobs(url, counter, target) {
  const t0 = now();
  const remaining = countRemaining(url);
  return drainTime(t0, counter, target, async () => ((await remaining()) === 0 ? target : 0));
}

export async function drain({ url }, batching = BATCHING) {
  const { warmup, jobs } = SIZES.drain;
  const { runner, counter } = await startRunner(url, batching);
  const utils = await makeWorkerUtils({ connectionString: url, logger: await quietLogger() });
  const specs = (n) => Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { i } }));
  await utils.addJobs(specs(warmup));
  await drainJobs(url, counter, warmup);
  await utils.addJobs(specs(jobs));
  const ms = await drainJobs(url, counter, warmup + jobs);
  await utils.release();
  await runner.stop();
  return { jobs, workerConcurrency: concurrency, batching: batching !== BATCHING ? "none" : "localQueue+completeJobBatchDelay", drainMs: round(ms, 1), jobsPerSecond: perSecond(jobs, ms) };
}

/** The same drain with graphile-worker's default (unbatched) job fetching and completion. */
export function drainDefault({ url }) {
  return drain({ url }, {});
}

export async function latency({ url }) {
  const { warmup, samples, gapMs } = SIZES.latency;
  const { runner, started } = await startRunner(url);
  const result = await measureStartLatency({ samples, warmup, gapMs, started, enqueue: (i) => runner.addJob("noop", { i }) });
  await runner.stop();
  return result;
}

/** A producer with no workers: addJob one at a time, then addJobs batches. */
export async function enqueue({ url }) {
  const utils = await makeWorkerUtils({ connectionString: url, logger: await quietLogger() });
  await utils.migrate();
  const result = await measureEnqueue({
    ...SIZES.enqueue,
    enqueueOne: (i) => utils.addJob("noop", { i }),
    enqueueBatch: (list) => utils.addJobs(list.map((i) => ({ identifier: "noop", payload: { i } }))),
  });
  await utils.release();
  return result;
}
