// One duro executor as a child process, for the PostgreSQL takeover tests.
//
//   node executor.mjs '<paramsJSON>'
//
// params: { url, executorId, appVersion?, leaseSeconds?, stepMs?, sleepSeconds? (a durable sleep after each step),
//           workflows?: [{ id, input, steps, waitForGo? }] }
//
// It launches duro (recovering its own PENDING work), starts the workflows it is given (an
// idempotent no-op for those that exist) and waits for their results, then stays up, serving
// takeovers, until it reads "shutdown" (or EOF) on stdin: it then shuts duro down and exits 0.
// Events, one JSON object per line on stdout:
//   launched · started {wf} · step-start {wf, step} · step-returned {wf, step} · waiting {wf}
//   wf-end {wf} (the body is about to return) · result {wf, output} · result-error {wf, message} · all-done
//   took-over {wf} · superseded {wf} · recovering {wf} · log {level, message}
//   shut-down
// Unhandled errors are left to Node's default: they crash the process with a non-zero code.
import { createInterface } from "node:readline";
import { Duro } from "../../dist/index.js";

const params = JSON.parse(process.argv[2] ?? "{}");
const pid = process.pid;
const emit = (event) => process.stdout.write(`${JSON.stringify({ ...event, pid, t: Date.now() })}\n`);
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function log(level) {
  return (message, fields) => {
    let m;
    if ((m = /^Took over workflow (\S+) /.exec(message))) emit({ ev: "took-over", wf: m[1] });
    else if ((m = /^Workflow (\S+) (?:is now run by executor|is no longer PENDING on this executor)/.exec(message))) emit({ ev: "superseded", wf: m[1] });
    else if ((m = /^Recovering workflow (\S+) /.exec(message))) emit({ ev: "recovering", wf: m[1] });
    else emit({ ev: "log", level, message, fields });
  };
}

const duro = new Duro({
  databaseUrl: params.url,
  executorId: params.executorId,
  appVersion: params.appVersion ?? "pg-fault-v1",
  executorLeaseSeconds: params.leaseSeconds ?? 1,
  logger: { debug() {}, info: log("info"), warn: log("warn"), error: log("error") },
});

const MAX_STEPS = 20;
const steps = [null];
for (let i = 1; i <= MAX_STEPS; i++) {
  steps.push(
    duro.registerStep(`step${i}`, async (input) => {
      emit({ ev: "step-start", wf: duro.workflowId, step: i });
      if (params.stepMs) await delay(params.stepMs);
      return `${input}:s${i}`;
    }),
  );
}

const chain = duro.registerWorkflow("chain", async (input, nSteps, waitForGo) => {
  const wf = duro.workflowId;
  const outputs = [];
  if (waitForGo) {
    emit({ ev: "waiting", wf });
    outputs.push(await duro.recv("go", 120));
  }
  for (let i = 1; i <= nSteps; i++) {
    outputs.push(await steps[i](input));
    emit({ ev: "step-returned", wf, step: i });
    if (params.sleepSeconds) await duro.sleep(params.sleepSeconds);
  }
  emit({ ev: "wf-end", wf });
  return outputs;
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await duro.shutdown();
  emit({ ev: "shut-down" });
  process.exit(0);
}
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "shutdown") void stop();
}).on("close", () => void stop());

await duro.launch();
emit({ ev: "launched" });

const workflows = params.workflows ?? [];
const results = await Promise.all(
  workflows.map(async (w) => {
    const handle = await duro.startWorkflow(chain.with({ workflowId: w.id }), w.input, w.steps, w.waitForGo ?? false);
    emit({ ev: "started", wf: w.id });
    try {
      emit({ ev: "result", wf: w.id, output: await handle.getResult() });
    } catch (error) {
      emit({ ev: "result-error", wf: w.id, message: String(error?.stack ?? error) });
    }
  }),
);
if (results.length) emit({ ev: "all-done" });
