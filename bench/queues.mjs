// Queue throughput and latency. Prints one JSON line. Usage: node bench/queues.mjs [sqlite|postgres]
//
//   singleEnqueue   sequential DuroClient.enqueue, enqueues/s: firstPerSecond over the process's
//                   first 3,000 (V8 still compiling), perSecond over 3,000 more after 1,000 to warm up
//   batchEnqueue    DuroClient.enqueueMany of 1,000 at a time, enqueues/s (after two to warm up)
//   drain           10,000 no-op workflows already queued, workerConcurrency 100: workflows/s from
//                   the moment the executor starts serving the queue until every one is SUCCESS
//   latency         enqueue→start on an idle queue, to the body's first line: p50Ms/p99Ms from the
//                   moment the enqueue is durable (its commit returned; in one process the body can
//                   start before startWorkflow's caller resumes), fromCall* from calling
//                   startWorkflow (includes the commit), fromClient* from a DuroClient's enqueue
//                   resolving (another instance: woken by NOTIFY / data_version)
//   threeStepDrain  the drain with a 3-step workflow
//
// Each phase gets a fresh database. The enqueue phases run a DuroClient with no executor, so
// they measure the enqueue alone.
import { Duro, DuroClient, WorkflowQueue } from "../dist/index.js";
import { dropDatabase, freshUrl, percentile, quiet, round } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const SINGLE = Number(process.env.BENCH_QUEUE_SINGLE ?? 3000);
const BATCHES = Number(process.env.BENCH_QUEUE_BATCHES ?? 20);
const BATCH_SIZE = 1000;
const DRAIN = Number(process.env.BENCH_QUEUE_DRAIN ?? 10_000);
const LATENCY_SAMPLES = Number(process.env.BENCH_QUEUE_LATENCY ?? 300);
const WORKER_CONCURRENCY = 100;

const urls = [];
function fresh() {
  const url = freshUrl(backend);
  urls.push(url);
  return url;
}

/** An executor on `url` with `queueName` declared (unless `declare` is false) and the bench workflows. */
function executor(url, { queueName = "q", queueOptions = {}, declare = true } = {}) {
  const duro = new Duro({ databaseUrl: url, logger: quiet, executorId: "bench", appVersion: "bench" });
  const starts = new Map();
  duro.registerWorkflow("noop", async () => undefined);
  const timed = duro.registerWorkflow("timed", async (i) => {
    starts.set(i, performance.now());
  });
  const step = duro.registerStep("step", async (x) => x + 1);
  duro.registerWorkflow("threeSteps", async (x) => step(await step(await step(x))));
  if (declare) new WorkflowQueue(duro, queueName, queueOptions);
  return { duro, timed, starts };
}

/** A producer alone: a DuroClient with no executor running, so only the enqueue is timed. */
async function producer() {
  const client = new DuroClient({ databaseUrl: fresh(), logger: quiet });
  return { client, options: { workflowName: "noop", queueName: "q" } };
}

async function singleEnqueue() {
  const { client, options } = await producer();
  const timed = async () => {
    const started = performance.now();
    for (let i = 0; i < SINGLE; i++) await client.enqueue(options);
    return Math.round(SINGLE / ((performance.now() - started) / 1000));
  };
  const firstPerSecond = await timed();
  for (let i = 0; i < 1000; i++) await client.enqueue(options); // warm-up
  const perSecond = await timed();
  await client.close();
  return { enqueues: SINGLE, perSecond, firstPerSecond };
}

async function batchEnqueue() {
  const { client, options } = await producer();
  const argsList = Array.from({ length: BATCH_SIZE }, () => []);
  for (let b = 0; b < 2; b++) await client.enqueueMany(options, argsList); // warm-up
  const started = performance.now();
  for (let b = 0; b < BATCHES; b++) await client.enqueueMany(options, argsList);
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  return { batchSize: BATCH_SIZE, enqueues: BATCHES * BATCH_SIZE, perSecond: Math.round((BATCHES * BATCH_SIZE) / seconds) };
}

/** Queues `count` workflows of `workflowName` with a client, then times an executor draining them. */
async function drain(workflowName, argsOf) {
  const url = fresh();
  const client = new DuroClient({ databaseUrl: url, logger: quiet });
  for (let done = 0; done < DRAIN; done += BATCH_SIZE) {
    const n = Math.min(BATCH_SIZE, DRAIN - done);
    await client.enqueueMany({ workflowName, queueName: "drain" }, Array.from({ length: n }, (_, i) => argsOf(done + i)));
  }
  await client.close();
  const { duro } = executor(url, { declare: false });
  await duro.launch();
  const unfinished = async () =>
    (await duro.listWorkflows({ queueName: "drain", status: ["ENQUEUED", "PENDING"], limit: 1, loadInput: false, loadOutput: false })).length;
  const started = performance.now();
  new WorkflowQueue(duro, "drain", { workerConcurrency: WORKER_CONCURRENCY }); // serving starts here
  while (await unfinished()) await new Promise((resolve) => setTimeout(resolve, 10));
  const seconds = (performance.now() - started) / 1000;
  const succeeded = (await duro.listWorkflows({ queueName: "drain", status: "SUCCESS", loadInput: false, loadOutput: false })).length;
  await duro.shutdown();
  if (succeeded !== DRAIN) throw new Error(`drain of ${workflowName}: ${succeeded} of ${DRAIN} succeeded`);
  return { workflows: DRAIN, workerConcurrency: WORKER_CONCURRENCY, seconds: round(seconds), perSecond: Math.round(DRAIN / seconds) };
}

async function latency() {
  const url = fresh();
  const { duro, timed, starts } = executor(url);
  await duro.launch();
  // The enqueue is durable when its store write returns: time that moment.
  const store = duro.engine.store;
  const write = store.write.bind(store);
  let committed = 0;
  store.write = async (...args) => {
    const result = await write(...args);
    committed ||= performance.now();
    return result;
  };
  const client = new DuroClient({ databaseUrl: url, logger: quiet });
  await client.listWorkflows({ limit: 1 });
  const queued = timed.with({ queueName: "q" });
  const fromCommit = [];
  const fromCall = [];
  const fromClient = [];
  const sample = async (i, enqueue) => {
    committed = 0;
    const called = performance.now();
    const handle = await enqueue();
    const resolved = performance.now();
    await handle.getResult();
    await new Promise((resolve) => setTimeout(resolve, 2)); // an idle queue between samples
    return { start: starts.get(i), called, resolved };
  };
  for (let i = -30; i < LATENCY_SAMPLES; i++) {
    const { start, called } = await sample(i, () => duro.startWorkflow(queued, i));
    if (i >= 0) {
      fromCommit.push(start - committed);
      fromCall.push(start - called);
    }
  }
  for (let i = LATENCY_SAMPLES; i < 2 * LATENCY_SAMPLES + 30; i++) {
    const { start, resolved } = await sample(i, () => client.enqueue({ workflowName: "timed", queueName: "q" }, i));
    if (i >= LATENCY_SAMPLES + 30) fromClient.push(start - resolved);
  }
  await client.close();
  await duro.shutdown();
  for (const list of [fromCommit, fromCall, fromClient]) list.sort((a, b) => a - b);
  return {
    samples: LATENCY_SAMPLES,
    p50Ms: round(percentile(fromCommit, 50), 3),
    p99Ms: round(percentile(fromCommit, 99), 3),
    fromCallP50Ms: round(percentile(fromCall, 50), 3),
    fromCallP99Ms: round(percentile(fromCall, 99), 3),
    fromClientP50Ms: round(percentile(fromClient, 50), 3),
    fromClientP99Ms: round(percentile(fromClient, 99), 3),
  };
}

const result = { bench: "queues", backend };
// duro's own timers are unref'd: on SQLite nothing else would keep this process alive while it
// awaits a workflow that only another instance's wake-up (data_version polling) can start.
const keepAlive = setInterval(() => {}, 1 << 30);
try {
  result.singleEnqueue = await singleEnqueue();
  result.batchEnqueue = await batchEnqueue();
  result.drain = await drain("noop", () => []);
  result.latency = await latency();
  result.threeStepDrain = await drain("threeSteps", (i) => [i]);
} finally {
  for (const url of urls) await dropDatabase(url).catch(() => undefined);
  clearInterval(keepAlive);
}
console.log(JSON.stringify(result));
