// A duro application that the crash tests run as a child process and SIGKILL.
//
//   node worker.mjs <databaseUrl> <executorId> <sideEffectLog> [paramsJSON]
//
// It launches duro (recovering this executor's PENDING workflows), starts every workflow named
// in params.workflows (an idempotent no-op for those that already exist), and waits for all of
// their results. It reports progress on stdout, one JSON object per line, so the parent can
// kill it at a precise point:
//   {"ev":"launched"}                       duro.launch() returned (recovery started)
//   {"ev":"started","wf"}                   startWorkflow resolved: the workflow is durable
//   {"ev":"step-start","wf","step"}         a step body began
//   {"ev":"step-done","wf","step"}          a step body finished (its checkpoint is not yet written)
//   {"ev":"step-returned","wf","step","fresh"}  the step call returned in the workflow: it is recorded
//                                           (fresh: its body ran in this process; else a replay)
//   {"ev":"result","wf","output"}           getResult resolved
//   {"ev":"all-done"}                       every workflow finished; the process then exits 0
// Every step body also appends one line to the side-effect log (fsync'd) when it starts and when
// it ends, with the workflow ID, step, attempt and pid, so the parent can count real executions.
//
// params:
//   workflows: [{ id, input, steps, sleepAfterStep?, sleepSeconds? }]   the workload (deterministic)
//   stepMs: number | [min, max]      step body duration; a range picks a fixed value per (workflow, step)
//   pauseAfterStep: n                crash aid: the workflow stops (forever) after step n returned
//   blockInStep: n                   crash aid: step n's body blocks forever after it started
//   startChunk: n                    start the workflows n at a time, chunk after chunk (default: all at once)
// The crash aids only change when the process can be killed, never what is recorded; the parent
// passes them to the first child only.
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { Duro } from "../../dist/index.js";

const [databaseUrl, executorId, logPath, paramsJson = "{}"] = process.argv.slice(2);
if (!databaseUrl || !executorId || !logPath) {
  process.stderr.write("usage: node worker.mjs <databaseUrl> <executorId> <sideEffectLog> [paramsJSON]\n");
  process.exit(2);
}
const params = JSON.parse(paramsJson);
const MAX_STEPS = 40;
const pid = process.pid;
const spawnedAt = Date.now();
const never = new Promise(() => {});
// Keeps the event loop alive while a crash aid blocks on `never`.
const keepAlive = setInterval(() => {}, 1 << 30);

function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, pid, t: Date.now() })}\n`);
}

const logFd = openSync(logPath, "a");
function sideEffect(entry) {
  writeSync(logFd, `${JSON.stringify({ ...entry, pid, t: Date.now() })}\n`);
  fsyncSync(logFd);
}

function stepMs(wf, step) {
  const ms = params.stepMs ?? 0;
  if (typeof ms === "number") return ms;
  const [min, max] = ms;
  const h = createHash("sha256").update(`${wf}/${step}`).digest().readUInt32BE(0);
  return min + (h % (max - min + 1));
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const duro = new Duro({
  databaseUrl,
  executorId,
  appVersion: "crash-test-v1",
  logger: {
    debug() {},
    info() {},
    warn(message, fields) {
      process.stderr.write(`[worker ${pid}] warn: ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
    },
    error(message, fields) {
      process.stderr.write(`[worker ${pid}] error: ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
    },
  },
});

const ranHere = new Set(); // "wf/step" of the step bodies that ran in this process
const steps = [null];
for (let i = 1; i <= MAX_STEPS; i++) {
  steps.push(
    duro.registerStep(`step${i}`, async (input) => {
      const wf = duro.workflowId;
      const attempt = duro.stepStatus?.currentAttempt ?? 0;
      ranHere.add(`${wf}/${i}`);
      sideEffect({ kind: "start", wf, step: i, attempt });
      emit({ ev: "step-start", wf, step: i });
      if (params.blockInStep === i) await never;
      const ms = stepMs(wf, i);
      if (ms > 0) await delay(ms);
      sideEffect({ kind: "end", wf, step: i, attempt });
      emit({ ev: "step-done", wf, step: i });
      return `${input}:s${i}`;
    }),
  );
}

const chain = duro.registerWorkflow("chain", async (input, nSteps, sleepAfterStep, sleepSeconds) => {
  const wf = duro.workflowId;
  const outputs = [];
  for (let i = 1; i <= nSteps; i++) {
    outputs.push(await steps[i](input));
    emit({ ev: "step-returned", wf, step: i, fresh: ranHere.has(`${wf}/${i}`) });
    if (params.pauseAfterStep === i) await never;
    if (sleepAfterStep === i) {
      emit({ ev: "sleep-start", wf });
      await duro.sleep(sleepSeconds);
      emit({ ev: "sleep-end", wf });
    }
  }
  return outputs;
});

emit({ ev: "spawned", spawnedAt });
await duro.launch();
emit({ ev: "launched" });

const workflows = params.workflows ?? [];
const chunk = params.startChunk ?? Math.max(workflows.length, 1);
const results = [];
for (let i = 0; i < workflows.length; i += chunk) {
  await Promise.all(
    workflows.slice(i, i + chunk).map(async (w) => {
      const handle = await duro.startWorkflow(chain.with({ workflowId: w.id }), w.input, w.steps, w.sleepAfterStep ?? null, w.sleepSeconds ?? 0);
      emit({ ev: "started", wf: w.id });
      results.push(handle.getResult().then((output) => emit({ ev: "result", wf: w.id, output })));
    }),
  );
}
await Promise.all(results);
emit({ ev: "all-done" });
await duro.shutdown();
closeSync(logFd);
clearInterval(keepAlive);
