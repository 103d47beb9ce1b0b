// Workflow latency and throughput: a 3-step workflow, run by one caller in sequence, then by
// 100 concurrent callers. Prints one JSON line. Usage: node bench/workflows.mjs [sqlite|postgres]
import { Duro } from "../dist/index.js";
import { countRoundTrips, dropDatabase, freshUrl, percentile, quiet, round } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 500);
const CONCURRENT_TOTAL = Number(process.env.BENCH_CONCURRENT ?? 5000);
const CALLERS = 100;

const url = freshUrl(backend);
const duro = new Duro({ databaseUrl: url, logger: quiet });
const step = duro.registerStep("step", async (x) => x + 1);
const threeSteps = duro.registerWorkflow("threeSteps", async (x) => step(await step(await step(x))));
await duro.launch();
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
await duro.shutdown();
await dropDatabase(url);
