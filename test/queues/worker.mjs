// An executor in its own process, for the queue tests that need real processes.
//
//   node worker.mjs <databaseUrl> <executorId> <logPath> [bare | skewed]
//
// It declares three queues, registers two workflows, launches, prints {"ev":"ready"} and runs
// queued work until its stdin closes, then shuts down and exits 0. With "bare" it does nothing
// after launch, like a worker script whose last line is `await duro.launch()`: whether the
// process stays up is then duro's doing alone. With "skewed", the clock duro reads (Date.now)
// runs 1.5 s behind on proc-1 and 1.5 s ahead on proc-2; the log and stdout keep the true time.
//   queue "q": concurrency 4, workerConcurrency 2      queue "r": rate limit 3 per 0.5 s
//   queue "p": no limits, polled only every 30 s
//   queue "s": rate limit 3 per 0.5 s, workerConcurrency 2 (so that the work is spread over processes)
//   job(id, ms): one step that appends {"ev":"enter"} / {"ev":"exit"} lines (with id, pid, t) to
//     the shared log — appends from all processes land in the file in the order they happened
//   ping(id): prints {"ev":"ping","id","t"} on stdout the moment its body starts
import { appendFileSync } from "node:fs";

const [databaseUrl, executorId, logPath, mode] = process.argv.slice(2);
const pid = process.pid;
const trueNow = Date.now;
if (mode === "skewed") {
  const skew = { "proc-1": -1500, "proc-2": 1500 }[executorId] ?? 0;
  Date.now = () => trueNow() + skew;
}
const { Duro, WorkflowQueue } = await import("../../dist/index.js");
const quiet = { debug() {}, info() {}, warn() {}, error: (m) => process.stderr.write(`${m}\n`) };
const emit = (event) => process.stdout.write(`${JSON.stringify({ ...event, pid, t: trueNow() })}\n`);
const log = (event) => appendFileSync(logPath, `${JSON.stringify({ ...event, pid, t: trueNow() })}\n`);

const duro = new Duro({ databaseUrl, executorId, appVersion: "queues-test", logger: quiet, safetyPollSeconds: 30 });
const work = duro.registerStep("work", async (id, ms) => {
  log({ ev: "enter", id });
  await new Promise((resolve) => setTimeout(resolve, ms));
  log({ ev: "exit", id });
});
duro.registerWorkflow("job", async (id, ms) => {
  await work(id, ms);
  return id;
});
duro.registerWorkflow("ping", async (id) => {
  emit({ ev: "ping", id });
  return id;
});
new WorkflowQueue(duro, "q", { concurrency: 4, workerConcurrency: 2 });
// (Not in bare mode: a rate-limited queue's re-check timer would keep the process up by itself.)
if (mode !== "bare") new WorkflowQueue(duro, "r", { rateLimit: { limit: 3, periodSeconds: 0.5 } });
new WorkflowQueue(duro, "p", { pollingIntervalSeconds: 30 });
if (mode === "skewed") new WorkflowQueue(duro, "s", { rateLimit: { limit: 3, periodSeconds: 0.5 }, workerConcurrency: 2 });
await duro.launch();
emit({ ev: "ready" });
if (mode === "bare") process.on("exit", (code) => emit({ ev: "exit", code }));
else process.stdin.resume();
process.stdin.on("end", async () => {
  await duro.shutdown();
  process.exit(0);
});
