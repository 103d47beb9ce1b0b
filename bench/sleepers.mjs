// Memory of waiting: 10,000 workflows sleeping at once (each recorded its wake-up time).
// Prints one JSON line with the process's RSS. Usage: node bench/sleepers.mjs [sqlite|postgres]
import { Duro } from "../dist/index.js";
import { dropDatabase, freshUrl, quiet } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const COUNT = Number(process.env.BENCH_SLEEPERS ?? 10_000);
const url = freshUrl(backend);
const duro = new Duro({ databaseUrl: url, logger: quiet });
const sleeper = duro.registerWorkflow("sleeper", async (i) => {
  await duro.sleep(3600);
  return i;
});
await duro.launch();
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
for (let i = 0; i < COUNT; i += 500) {
  await Promise.all(Array.from({ length: Math.min(500, COUNT - i) }, (_, j) => duro.startWorkflow(sleeper, i + j)));
}
// Every sleep is recorded once its timer is armed: wait until the timer heap holds them all.
while (duro.engine.timers.size < COUNT) await new Promise((resolve) => setTimeout(resolve, 20));
global.gc?.();
const rss = process.memoryUsage().rss;
console.log(
  JSON.stringify({
    bench: "sleepers",
    backend,
    sleeping: COUNT,
    secondsToStart: Math.round(performance.now() - started) / 1000,
    rssMB: Math.round(rss / 2 ** 20),
    rssBeforeMB: Math.round(rssBefore / 2 ** 20),
    bytesPerSleeper: Math.round((rss - rssBefore) / COUNT),
  }),
);
await duro.shutdown();
await dropDatabase(url);
