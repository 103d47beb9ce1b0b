// A duro application that the messaging crash tests run as a child process and SIGKILL.
//
//   node worker.mjs <databaseUrl> <executorId> <paramsJSON>
//
// It launches duro (recovering this executor's PENDING workflows), then does what params.mode
// says, reporting progress on stdout as JSON lines ({"ev", …, "pid", "t"}) so the parent can kill
// it at a precise point. It ends with {"ev":"all-done","output"} and exits 0.
//
// modes:
//   receiver  { id, count, timeoutSeconds = 20, blockAt? }
//             workflow `id` runs `count` times: m = recv("t", timeoutSeconds), then the step
//             "handle"(m, i) → `${m}:handled`. Events: received {i, m} (right after recv
//             returned, also on replay), entered {i, m} (the step body began). With blockAt = i
//             the step body of iteration i blocks forever after "entered" (a crash aid).
//   writer    { id, n, blockAt?, stepMs = 0 }
//             workflow `id`: for i < n, writeStream("s", i) then the step "after"(i), which prints
//             wrote {i} (so value i is committed) and blocks forever when i === blockAt; then
//             closeStream("s") and prints closed.
//   client-sender   { dest, from, to, prefix, paceMs? }
//             outside any workflow, for from ≤ i < to: prints sending {i}, awaits
//             send(dest, i, "t", { idempotencyKey: `${prefix}-${i}` }), prints sent {i}, and
//             waits paceMs (so the parent can kill it mid-loop).
//   workflow-sender { id, dest, n, prefix, paceMs? }
//             workflow `id` sends i (for i < n) to dest on "t" with idempotencyKey `${prefix}-${i}`,
//             prints sent {i} after each send, and waits paceMs (not a durable sleep).
// The crash aids change only when the process can be killed, never what is recorded; the parent
// passes them to the first child only.
import { Duro } from "../../dist/index.js";

const [databaseUrl, executorId, paramsJson = "{}"] = process.argv.slice(2);
if (!databaseUrl || !executorId) {
  process.stderr.write("usage: node worker.mjs <databaseUrl> <executorId> <paramsJSON>\n");
  process.exit(2);
}
const params = JSON.parse(paramsJson);
const pid = process.pid;
const never = new Promise(() => {});
const keepAlive = setInterval(() => {}, 1 << 30); // a crash aid may block on `never`
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, pid, t: Date.now() })}\n`);
}

const duro = new Duro({
  databaseUrl,
  executorId,
  appVersion: "messaging-crash-v1",
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

// Every workflow and step is registered in every mode, so any child can recover any workflow.
const handle = duro.registerStep("handle", async (m, i) => {
  emit({ ev: "entered", i, m });
  if (params.blockAt === i) await never;
  return `${m}:handled`;
});
const receiver = duro.registerWorkflow("receiver", async (count, timeoutSeconds) => {
  const out = [];
  for (let i = 0; i < count; i++) {
    const m = await duro.recv("t", timeoutSeconds);
    emit({ ev: "received", i, m });
    out.push(await handle(m, i));
  }
  return out;
});

const after = duro.registerStep("after", async (i) => {
  emit({ ev: "wrote", i });
  if (params.blockAt === i) await never;
  if (params.stepMs) await delay(params.stepMs);
  return i;
});
const writer = duro.registerWorkflow("writer", async (n) => {
  for (let i = 0; i < n; i++) {
    await duro.writeStream("s", i);
    await after(i);
  }
  await duro.closeStream("s");
  emit({ ev: "closed" });
  return n;
});

const sender = duro.registerWorkflow("sender", async (dest, n, prefix) => {
  for (let i = 0; i < n; i++) {
    await duro.send(dest, i, "t", { idempotencyKey: `${prefix}-${i}` });
    emit({ ev: "sent", i });
    if (params.paceMs) await delay(params.paceMs);
  }
  return n;
});

await duro.launch();
emit({ ev: "launched" });

let output;
switch (params.mode) {
  case "receiver": {
    const h = await duro.startWorkflow(receiver.with({ workflowId: params.id }), params.count, params.timeoutSeconds ?? 20);
    emit({ ev: "started" });
    output = await h.getResult();
    break;
  }
  case "writer": {
    const h = await duro.startWorkflow(writer.with({ workflowId: params.id }), params.n);
    emit({ ev: "started" });
    output = await h.getResult();
    break;
  }
  case "client-sender": {
    for (let i = params.from; i < params.to; i++) {
      emit({ ev: "sending", i });
      await duro.send(params.dest, i, "t", { idempotencyKey: `${params.prefix}-${i}` });
      emit({ ev: "sent", i });
      if (params.paceMs) await delay(params.paceMs);
    }
    break;
  }
  case "workflow-sender": {
    const h = await duro.startWorkflow(sender.with({ workflowId: params.id }), params.dest, params.n, params.prefix);
    emit({ ev: "started" });
    output = await h.getResult();
    break;
  }
  default:
    process.stderr.write(`unknown mode ${params.mode}\n`);
    process.exit(2);
}
emit({ ev: "all-done", output });
await duro.shutdown();
clearInterval(keepAlive);
process.exit(0);
