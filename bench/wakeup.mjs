// Cross-process wake-up latency: how long after something happens in one process does a waiter
// in another process notice? Two processes, two Duro instances (two executors) on one database:
//
//   getResult: B runs a workflow that completes on cue; A is waiting in getResult(id). Measured
//              from B's own getResult resolving (the completion is committed) to A's resolving.
//   sendRecv:  A runs a workflow waiting in recv(); B calls send(). Measured from B's send()
//              resolving (and, second figure, from its call) to A's recv() returning.
//
// Prints one JSON line. Usage: node bench/wakeup.mjs [sqlite|postgres]   (BENCH_WAKEUP_ROUNDS, default 200)
// The peer is this same script: node bench/wakeup.mjs <backend> --peer <url>
import { createInterface } from "node:readline";
import { Duro } from "../dist/index.js";
import { dropDatabase, freshUrl, percentile, quiet, round, spawnPeer } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const ROUNDS = Number(process.env.BENCH_WAKEUP_ROUNDS ?? 200);
/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
const clock = () => performance.timeOrigin + performance.now();
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (process.argv[3] === "--peer") await peer(process.argv[4]);
else await main();

/** Process B: runs "gated" workflows that finish on cue, and sends messages on cue. */
async function peer(url) {
  const out = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
  const duro = new Duro({ databaseUrl: url, executorId: "wakeup-peer", appVersion: "wakeup-bench", logger: quiet });
  const gates = new Map();
  const gated = duro.registerWorkflow("gated", async () => {
    await new Promise((resolve) => gates.set(duro.workflowId, resolve));
    return "done";
  });
  await duro.launch();
  const handles = new Map();
  const lines = createInterface({ input: process.stdin });
  out({ ev: "ready" });
  for await (const line of lines) {
    const [command, id, n] = line.split(" ");
    if (command === "run") {
      handles.set(id, await duro.startWorkflow(gated.with({ workflowId: id })));
      while (!gates.has(id)) await delay(1);
      out({ ev: "started", id });
    } else if (command === "go") {
      gates.get(id)();
      await handles.get(id).getResult(); // resolves right after the completion committed (a local wake-up)
      out({ ev: "done", id, t: clock() });
    } else if (command === "send") {
      const t0 = clock();
      await duro.send(id, Number(n), "ping");
      out({ ev: "sent", n: Number(n), t0, t: clock() });
    } else if (command === "exit") break;
  }
  await duro.shutdown();
  process.exit(0); // stdin would keep the process alive
}

/** Process A: waits, and measures. */
async function main() {
  const url = freshUrl(backend);
  const duro = new Duro({ databaseUrl: url, executorId: "wakeup-main", appVersion: "wakeup-bench", logger: quiet });
  const received = new Map(); // n → resolve(time of recv returning)
  const receiver = duro.registerWorkflow("receiver", async (rounds) => {
    for (let i = 0; i < rounds; i++) {
      const n = await duro.recv("ping", 60);
      received.get(n)?.(clock());
    }
  });
  await duro.launch();

  const { child, next, tell } = spawnPeer(import.meta.url, backend, url);
  await next((e) => e.ev === "ready");

  // getResult across processes.
  const getResultMs = [];
  for (let i = 0; i < ROUNDS + 10; i++) {
    const id = `gated-${i}`;
    tell(`run ${id}`);
    await next((e) => e.ev === "started" && e.id === id);
    const result = duro.getResult(id).then(() => clock());
    await delay(10); // let A's first check (the workflow is still PENDING) finish, so A is really waiting
    tell(`go ${id}`);
    const [resolvedAt, done] = await Promise.all([result, next((e) => e.ev === "done" && e.id === id)]);
    if (i >= 10) getResultMs.push(resolvedAt - done.t); // the first rounds warm up
  }

  // send → recv across processes.
  const fromResolved = [];
  const fromCalled = [];
  const handle = await duro.startWorkflow(receiver, ROUNDS + 10);
  for (let n = 0; n < ROUNDS + 10; n++) {
    const got = new Promise((resolve) => received.set(n, resolve));
    tell(`send ${handle.workflowId} ${n}`);
    const [recvAt, sent] = await Promise.all([got, next((e) => e.ev === "sent" && e.n === n)]);
    if (n >= 10) {
      fromResolved.push(recvAt - sent.t);
      fromCalled.push(recvAt - sent.t0);
    }
    await delay(2);
  }
  await handle.getResult();

  const exited = new Promise((resolve) => child.on("exit", resolve));
  tell("exit");
  child.stdin.end();
  await exited;
  await duro.shutdown();
  await dropDatabase(url);

  const summary = (xs) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return {
      p50Ms: round(percentile(sorted, 50), 2),
      p90Ms: round(percentile(sorted, 90), 2),
      p99Ms: round(percentile(sorted, 99), 2),
      maxMs: round(sorted[sorted.length - 1], 2),
      meanMs: round(xs.reduce((a, b) => a + b, 0) / xs.length, 2),
    };
  };
  console.log(
    JSON.stringify({
      bench: "wakeup",
      backend,
      rounds: ROUNDS,
      getResult: summary(getResultMs),
      sendRecv: { fromSendResolved: summary(fromResolved), fromSendCalled: summary(fromCalled) },
    }),
  );
}
