// The demo's application process: one durable "order" workflow of four steps.
//
//   node order-worker.mjs <databaseUrl> <sideEffectLog>
//
// demo.mjs runs it, kills it, and runs it again. It talks to demo.mjs in JSON lines on stdout;
// every step body also appends a line to the side-effect log, so the demo can prove which step
// bodies really ran, and in which process.
import { appendFileSync, closeSync, fsyncSync, openSync } from "node:fs";
import { Duro } from "../dist/index.js";

const [databaseUrl, logPath] = process.argv.slice(2);
const pid = process.pid;
const say = (event) => process.stdout.write(`${JSON.stringify({ ...event, pid })}\n`);
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function sideEffect(entry) {
  appendFileSync(logPath, `${JSON.stringify({ ...entry, pid, t: Date.now() })}\n`);
  const fd = openSync(logPath, "r+");
  fsyncSync(fd);
  closeSync(fd);
}

const duro = new Duro({
  databaseUrl,
  executorId: "demo-worker", // the restarted process uses the same ID, so launch() recovers this executor's work
  appVersion: "demo-v1",
  logger: {
    debug() {},
    info: (message) => say({ ev: "duro-log", message }),
    warn: (message) => say({ ev: "duro-log", message }),
    error: (message) => say({ ev: "duro-log", message }),
  },
});

const ranHere = new Set();
function orderStep(index, name, work) {
  return duro.registerStep(name, async (order) => {
    ranHere.add(index);
    sideEffect({ step: index, name, kind: "start" });
    say({ ev: "step-start", step: index, name });
    await pause(300); // pretend to call a real service
    const output = work(order);
    sideEffect({ step: index, name, kind: "end" });
    return output;
  });
}

const steps = [
  ["reserveStock", (o) => ({ reservation: `RSV-${o.id}`, sku: o.sku, quantity: o.quantity })],
  ["chargeCard", (o) => ({ charge: `CH-${o.id}`, amountCents: o.quantity * o.unitPriceCents })],
  ["shipOrder", (o) => ({ tracking: `TRK-${o.id}-1Z` })],
  ["sendEmail", (o) => ({ emailedTo: o.email })],
].map(([name, work], i) => ({ name, call: orderStep(i + 1, name, work) }));

const processOrder = duro.registerWorkflow("processOrder", async (order) => {
  const results = [];
  for (const [i, step] of steps.entries()) {
    const output = await step.call(order); // checkpointed: recorded in the database before it returns
    say({ ev: "step-recorded", step: i + 1, name: step.name, ranHere: ranHere.has(i + 1), output });
    results.push(output);
  }
  return { orderId: order.id, status: "complete", steps: results.length, tracking: results[2].tracking };
});

await duro.launch(); // recovers this executor's unfinished workflows, if any
say({ ev: "launched" });
const handle = await duro.startWorkflow(processOrder.with({ workflowId: "order-1001" }), {
  id: "1001", sku: "TEAPOT-42", quantity: 2, unitPriceCents: 1995, email: "ada@example.com",
});
const output = await handle.getResult();
say({ ev: "result", output });
await duro.shutdown();
