// A duro application that keeps working while the test kills its database connections and
// restarts its database. Node's defaults are left alone: an unhandled 'error' event or an
// unhandled rejection would crash it with a non-zero exit code, which is what the test checks.
//
//   node resilient.mjs '{"url": "postgres://…"}'
//
// It keeps 10 workflows in flight (each: 3 steps), started through a Duro executor and awaited
// through a separate DuroClient (so every result is a cross-instance NOTIFY wake-up), checking
// every output. stdin commands: "pause" (start nothing new; prints "idle" once nothing is in
// flight), "resume", "finish" (drain, print "summary", shut down, exit — by itself, so a leaked
// socket or timer would show as a hang).
// stdout: launched · progress {completed} · idle · failure {message} · summary {completed, wrong}
import { createInterface } from "node:readline";
import { Duro, DuroClient } from "../../dist/index.js";

const { url } = JSON.parse(process.argv[2]);
const emit = (event) => process.stdout.write(`${JSON.stringify({ ...event, pid: process.pid, t: Date.now() })}\n`);
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const duro = new Duro({ databaseUrl: url, executorId: "resilient", appVersion: "resilient-v1", poolSize: 4, logger: quiet });
const client = new DuroClient({ databaseUrl: url, poolSize: 2, logger: quiet });
const step = duro.registerStep("step", async (input, i) => {
  await delay(5 + Math.random() * 15);
  return `${input}:${i}`;
});
const job = duro.registerWorkflow("job", async (input) => [await step(input, 1), await step(input, 2), await step(input, 3)]);

const IN_FLIGHT = 10;
let next = 0;
let inFlight = 0;
let completed = 0;
let wrong = 0;
let paused = false;
let finishing = false;

function fill() {
  while (!paused && !finishing && inFlight < IN_FLIGHT) void one(next++);
  if (inFlight === 0) {
    if (finishing) void finish();
    else if (paused) emit({ ev: "idle" });
  }
}

async function one(n) {
  inFlight++;
  const id = `job-${n}`;
  try {
    await duro.startWorkflow(job.with({ workflowId: id }), `in${n}`);
    const output = await client.getResult(id);
    if (JSON.stringify(output) !== JSON.stringify([`in${n}:1`, `in${n}:2`, `in${n}:3`])) {
      wrong++;
      emit({ ev: "failure", message: `wrong output for ${id}: ${JSON.stringify(output)}` });
    }
    completed++;
    emit({ ev: "progress", completed });
  } catch (error) {
    wrong++;
    emit({ ev: "failure", message: `${id}: ${error?.stack ?? error}` });
  } finally {
    inFlight--;
    fill();
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const command = line.trim();
  if (command === "pause") paused = true;
  else if (command === "resume") paused = false;
  else if (command === "finish") finishing = true;
  fill();
});

let finished = false;
async function finish() {
  if (finished) return;
  finished = true;
  rl.close();
  process.stdin.destroy();
  await duro.shutdown();
  await client.close();
  emit({ ev: "summary", completed, wrong });
  // Everything is released: the process must now exit by itself.
  setTimeout(() => {
    process.stderr.write("resilient.mjs: still alive 5 s after shutdown (a leaked handle)\n");
    process.exit(5);
  }, 5000).unref();
}

await duro.launch();
emit({ ev: "launched" });
fill();
