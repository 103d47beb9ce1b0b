// duro demo: a four-step order workflow survives a SIGKILL and resumes from its last completed step.
//
//   npm start          (builds, then runs this file; needs nothing but Node)
//
// The workflow runs in a child process (order-worker.mjs). We kill that process right after step 2
// is checkpointed, start a new one with the same executor ID, and show — from the database and
// from a log the step bodies write — that steps 1–2 were not run again and the order finished once.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Duro } from "../dist/index.js";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dbPath = join(root, ".duro", "demo.sqlite");
const logPath = join(root, ".duro", "demo-side-effects.log");
const databaseUrl = `sqlite:${dbPath}`;
const WORKER = fileURLToPath(new URL("./order-worker.mjs", import.meta.url));
const STEP_NAMES = ["reserveStock", "chargeCard", "shipOrder", "sendEmail"];
const WORKFLOW_ID = "order-1001";
const EXPECTED_OUTPUT = { orderId: "1001", status: "complete", steps: 4, tracking: "TRK-1001-1Z" };

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint("1");
const dim = paint("2");
const green = paint("32");
const red = paint("31");
const yellow = paint("33");
const cyan = paint("36");
const line = (text = "") => console.log(text);

const children = new Set();
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
  return ok;
};

// Never hang: the whole demo takes a few seconds; give up (and fail) after 30.
const watchdog = setTimeout(() => {
  console.error(red("\nThe demo took longer than 30 s; giving up."));
  for (const child of children) child.kill("SIGKILL");
  process.exit(1);
}, 30_000);
watchdog.unref();

/** Starts the worker; calls onEvent for each JSON line it prints; resolves its exit. */
function startWorker(label, onEvent) {
  const child = spawn(process.execPath, [WORKER, databaseUrl, logPath], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let buffered = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (text.trim()) onEvent(JSON.parse(text), child);
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) =>
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stderr });
    }),
  );
  line(`${bold(`▶ ${label}`)} ${dim(`(worker pid ${child.pid}, executor ID "demo-worker")`)}`);
  return { child, exited };
}

const tag = (pid) => dim(`  [pid ${pid}]`);
const stepLabel = (n) => `step ${n} ${STEP_NAMES[n - 1].padEnd(12)}`;
const brief = (value) => dim(JSON.stringify(value));

function readSideEffects() {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

// ——— set-up: a fresh database ———

mkdirSync(dirname(dbPath), { recursive: true });
for (const file of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, logPath]) rmSync(file, { force: true });

line();
line(bold("duro demo — a workflow that survives a crash"));
line(dim("─".repeat(60)));
line(`An order workflow has four steps: ${STEP_NAMES.join(" → ")}.`);
line(`duro checkpoints each finished step in an embedded SQLite database (${relative(process.cwd(), dbPath) || dbPath}).`);
line("We run it in a separate process, kill that process with SIGKILL halfway through,");
line("then start a new process and watch the order pick up where it left off.");
line();

// ——— run 1: killed right after step 2 is checkpointed ———

let killedAt = null;
const run1 = startWorker("Run 1: starting the order", (e, child) => {
  if (e.ev === "step-start") line(`${tag(e.pid)} ${stepLabel(e.step)} … running`);
  if (e.ev === "step-recorded" && !killedAt) {
    line(`${tag(e.pid)} ${stepLabel(e.step)} ${green("✓ done, checkpoint saved")} ${brief(e.output)}`);
    if (e.step === 2) {
      killedAt = Date.now();
      child.kill("SIGKILL");
    }
  }
});
const exit1 = await run1.exited;
line();
if (!check(exit1.signal === "SIGKILL", `run 1 should have been killed, but it exited with ${JSON.stringify(exit1)}`)) {
  console.error(exit1.stderr);
} else {
  const cutOff = readSideEffects().some((e) => e.step === 3 && e.kind === "start" && e.pid === run1.child.pid);
  line(`${red(bold("💥 SIGKILL!"))} The worker process ${run1.child.pid} was killed right after step 2 was saved —`);
  line(`   no clean shutdown${cutOff ? "; step 3 had just begun and never finished" : ", before step 3 could begin"}.`);
}

const inspector = new Duro({ databaseUrl, executorId: "demo-inspector", appVersion: "demo-v1", logger: { debug() {}, info() {}, warn() {}, error() {} } });
await inspector.launch();
const [afterCrash] = await inspector.listWorkflows({ workflowIds: [WORKFLOW_ID] });
const stepsAfterCrash = afterCrash ? await inspector.listWorkflowSteps(WORKFLOW_ID) : [];
line(
  `   In the database: workflow ${WORKFLOW_ID} is ${yellow(afterCrash?.status ?? "missing")}, with ${stepsAfterCrash.length} of 4 steps recorded` +
    ` (${stepsAfterCrash.map((s) => s.functionName).join(", ") || "none"}).`,
);
check(afterCrash?.status === "PENDING", `after the crash the workflow should be PENDING, not ${afterCrash?.status}`);
check(stepsAfterCrash.length === 2, `after the crash 2 steps should be recorded, not ${stepsAfterCrash.length}`);
line();

// ——— run 2: same executor ID, launch() recovers the order ———

const replayedLive = new Map();
let result;
const run2 = startWorker("Run 2: a new process, same executor ID, recovers the order on launch()", (e) => {
  if (e.ev === "duro-log") line(`${tag(e.pid)} ${cyan(`duro: ${e.message}`)}`);
  if (e.ev === "step-start") line(`${tag(e.pid)} ${stepLabel(e.step)} … running`);
  if (e.ev === "step-recorded") {
    replayedLive.set(e.step, !e.ranHere);
    if (e.ranHere) line(`${tag(e.pid)} ${stepLabel(e.step)} ${green("✓ done, checkpoint saved")} ${brief(e.output)}`);
    else line(`${tag(e.pid)} ${stepLabel(e.step)} ${cyan("↺ replayed from checkpoint")} ${dim("(not run again)")} ${brief(e.output)}`);
  }
  if (e.ev === "result") {
    result = e.output;
    line(`${tag(e.pid)} ${green(bold("workflow finished"))} ${brief(e.output)}`);
  }
});
const exit2 = await run2.exited;
if (!check(exit2.code === 0, `run 2 should exit 0, not ${JSON.stringify({ code: exit2.code, signal: exit2.signal })}`)) console.error(exit2.stderr);
line();

// ——— what happened, from the database and the side-effect log ———

const [final] = await inspector.listWorkflows({ workflowIds: [WORKFLOW_ID] });
const recorded = await inspector.listWorkflowSteps(WORKFLOW_ID);
const allOrders = await inspector.listWorkflows({ name: "processOrder", loadInput: false, loadOutput: false });
await inspector.shutdown();
const sideEffects = readSideEffects();
const pid1 = run1.child.pid;
const pid2 = run2.child.pid;

line(bold("What happened, step by step") + dim("  (from duro.listWorkflowSteps and the log the step bodies write)"));
const COLUMN = 52;
line(dim(`  ${"step".padEnd(stepLabel(1).length)}  ${"its body ran".padEnd(COLUMN)} in run 2 it was`));
for (let n = 1; n <= 4; n++) {
  const runs = sideEffects.filter((e) => e.step === n && e.kind === "start");
  const ended = (pid) => sideEffects.some((e) => e.step === n && e.kind === "end" && e.pid === pid);
  const where = runs
    .map((r) => (r.pid === pid1 ? (ended(pid1) ? "in run 1" : "cut off by the kill in run 1") : r.pid === pid2 ? "in run 2" : `in pid ${r.pid}`))
    .join(", then ");
  const count = runs.length === 1 ? "once," : runs.length === 2 ? "twice:" : `${runs.length} times:`;
  const replayed = replayedLive.get(n);
  const after = replayed === true ? cyan("replayed from checkpoint") : replayed === false ? green("ran") : red("never reached");
  line(`  ${stepLabel(n)}  ${`${count} ${where}`.padEnd(COLUMN)} ${after}`);

  if (n <= 2) {
    check(runs.length === 1 && runs[0].pid === pid1 && ended(pid1), `step ${n} should have run exactly once, in run 1 (log: ${JSON.stringify(runs)})`);
    check(replayed === true, `step ${n} should have been replayed from its checkpoint in run 2`);
  } else {
    check(runs.length >= 1 && runs.at(-1).pid === pid2 && ended(pid2), `step ${n} should have completed in run 2`);
    check(runs.every((r, i) => i === runs.length - 1 || (r.pid === pid1 && !ended(pid1))), `step ${n} may only re-run if the kill cut it off`);
    check(replayed === false, `step ${n} should have run in run 2`);
  }
}
line();

check(final?.status === "SUCCESS", `the workflow should be SUCCESS, not ${final?.status}`);
check(JSON.stringify(final?.output) === JSON.stringify(EXPECTED_OUTPUT), `unexpected stored output ${JSON.stringify(final?.output)}`);
check(JSON.stringify(result) === JSON.stringify(EXPECTED_OUTPUT), `unexpected result ${JSON.stringify(result)}`);
check(
  JSON.stringify(recorded.map((s) => [s.functionId, s.functionName])) === JSON.stringify(STEP_NAMES.map((name, i) => [i + 1, name])),
  `each step should be recorded exactly once, in order; recorded: ${JSON.stringify(recorded.map((s) => [s.functionId, s.functionName]))}`,
);
check(allOrders.length === 1, `there should be exactly one order workflow, found ${allOrders.length}`);

line(
  `Workflow ${WORKFLOW_ID}: ${final?.status === "SUCCESS" ? green(final.status) : red(final?.status ?? "missing")}` +
    ` (recoveryAttempts ${final?.recoveryAttempts ?? "?"}), ${recorded.length} steps recorded once each, result ${brief(final?.output)}`,
);
line();
if (problems.length) {
  line(red(bold("✗ Something is off:")));
  for (const p of problems) line(red(`  - ${p}`));
  process.exitCode = 1;
} else {
  line(green(bold("✔ The order resumed from its last completed step after the crash:")));
  line(green("  stock was reserved once, the card was charged once, and the order finished exactly once."));
  line(dim(`  (Database: ${relative(process.cwd(), dbPath) || dbPath} — run \`npm start\` again to replay the demo.)`));
}
line();
