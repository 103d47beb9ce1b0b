// Workflow latency and throughput: a 3-step workflow, run by one caller in sequence, then by
// 100 concurrent callers. Prints one JSON line. Usage: node bench/workflows.mjs [sqlite|postgres]
// BENCH_IDLE_EXECUTORS=n first starts n more executors on the database, each a process of its
// own that runs nothing but listens (as the other executors of a deployment do).
import { spawn } from "node:child_process";
import { Duro } from "../dist/index.js";
import { countRoundTrips, dropDatabase, freshUrl, percentile, quiet, round } from "./common.mjs";

const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 500);
const CONCURRENT_TOTAL = Number(process.env.BENCH_CONCURRENT ?? 5000);
const IDLE = Number(process.env.BENCH_IDLE_EXECUTORS ?? 0);
const CALLERS = 100;

function app(url, executorId) {
  const duro = new Duro({ databaseUrl: url, logger: quiet, executorId });
  const step = duro.registerStep("step", async (x) => x + 1);
  return { duro, threeSteps: duro.registerWorkflow("threeSteps", async (x) => step(await step(await step(x)))) };
}

if (process.argv[2] === "idle") {
  // One of the idle executors: launched, it says so, and stays until told to stop.
  const { duro } = app(process.argv[3], process.argv[4]);
  await duro.launch();
  process.stdout.write("up\n");
  process.once("SIGTERM", () => void duro.shutdown().then(() => process.exit(0)));
  await new Promise(() => {});
}

const backend = process.argv[2] ?? "sqlite";
const url = freshUrl(backend);
const { duro, threeSteps } = app(url);
await duro.launch();
const idle = [];
for (let i = 0; i < IDLE; i++) {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, "idle", url, `idle-${i}`], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve) => child.stdout.once("data", resolve));
  idle.push(child);
}
const trips = countRoundTrips(duro);

for (let i = 0; i < 50; i++) await threeSteps(i); // warm-up

const latencies = [];
trips.n = 0;
let started = performance.now();
for (let i = 0; i < SEQUENTIAL; i++) {
  const t = performance.now();
  await threeSteps(i);
  latencies.push(performance.now() - t);
}
const sequentialMs = performance.now() - started;
const sequentialTrips = trips.n / SEQUENTIAL;
latencies.sort((a, b) => a - b);

trips.n = 0;
const commitsBefore = duro.engine.committer.stats.commits;
let next = 0;
started = performance.now();
await Promise.all(
  Array.from({ length: CALLERS }, async () => {
    while (next < CONCURRENT_TOTAL) await threeSteps(next++);
  }),
);
const concurrentMs = performance.now() - started;

console.log(
  JSON.stringify({
    bench: "workflows",
    backend,
    idleExecutors: IDLE,
    sequential: {
      workflows: SEQUENTIAL,
      meanMs: round(sequentialMs / SEQUENTIAL, 3),
      p50Ms: round(percentile(latencies, 50), 3),
      p99Ms: round(percentile(latencies, 99), 3),
      roundTripsPerWorkflow: round(sequentialTrips),
    },
    concurrent: {
      callers: CALLERS,
      workflows: CONCURRENT_TOTAL,
      workflowsPerSecond: Math.round(CONCURRENT_TOTAL / (concurrentMs / 1000)),
      roundTripsPerWorkflow: round(trips.n / CONCURRENT_TOTAL),
      commitsPerWorkflow: round((duro.engine.committer.stats.commits - commitsBefore) / CONCURRENT_TOTAL, 3),
    },
  }),
);
for (const child of idle) {
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
}
await duro.shutdown();
await dropDatabase(url);
