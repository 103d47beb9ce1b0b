// Messaging wake-up latency (issue 4): how long after a message is sent, or an event is set, does
// the side waiting for it resume?
//
//   sendRecv:          a workflow waits in recv("ping"); send() is called. Measured to the moment
//                      recv() returned in the workflow.
//   setEventGetEvent:  getEvent(id, key) waits (called outside a workflow, as a client would); a
//                      workflow calls setEvent(key). Measured to the moment getEvent resolved.
//
//   streamWrites:      one workflow writes BENCH_STREAM_WRITES values (default 5,000) to one stream
//                      key; the mean time per write of the first and of the last thousand. A write
//                      must not slow as its stream grows.
//
// The wake-ups are measured twice: in one process (one Duro instance: the writer wakes the waiter
// directly) and across processes (a peer process, this same script run with --peer, on the same
// database: PostgreSQL LISTEN/NOTIFY, SQLite PRAGMA data_version). Every figure is given from the
// moment send/setEvent was called ("fromCalled") and from the moment it resolved ("fromResolved").
// Before each round the waiter is given a few milliseconds to be really waiting (its first look
// found nothing), as a real waiter would be.
//
// Prints one JSON line. Usage: node bench/messaging.mjs [sqlite|postgres]   (BENCH_MESSAGING_ROUNDS, default 200)
import { createInterface } from "node:readline";
import { Duro } from "../dist/index.js";
import { dropDatabase, freshUrl, percentile, quiet, round, spawnPeer } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const ROUNDS = Number(process.env.BENCH_MESSAGING_ROUNDS ?? 200);
const WARMUP = 10;
const SETTLE_MS = 5; // time given to a waiter to start waiting before the write
/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
const clock = () => performance.timeOrigin + performance.now();
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The workflows both processes register: "receiver" reports each message as recv returns it;
 * "eventer" sets event `k<i>` when cued (an in-memory cue: this is a bench, not a durable design)
 * and reports when setEvent was called and when it resolved.
 */
function register(duro, hooks) {
  const receiver = duro.registerWorkflow("receiver", async (rounds) => {
    for (let i = 0; i < rounds; i++) {
      const n = await duro.recv("ping", 60);
      hooks.received(n, clock());
    }
  });
  const cues = new Map();
  const cue = (i) => new Promise((resolve) => cues.set(i, resolve));
  const eventer = duro.registerWorkflow("eventer", async (rounds) => {
    for (let i = 0; i < rounds; i++) {
      await cue(i);
      const t0 = clock();
      await duro.setEvent(`k${i}`, i);
      hooks.set(i, t0, clock());
    }
  });
  const go = async (i) => {
    while (!cues.has(i)) await delay(0);
    cues.get(i)();
  };
  return { receiver, eventer, go };
}

if (process.argv[3] === "--peer") await peer(process.argv[4]);
else await main();

/** The peer process: sends messages on cue, and runs an eventer workflow that sets events on cue. */
async function peer(url) {
  const out = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
  const duro = new Duro({ databaseUrl: url, executorId: "messaging-peer", appVersion: "messaging-bench", logger: quiet });
  const { eventer, go } = register(duro, {
    received() {},
    set: (i, t0, t1) => out({ ev: "set", i, t0, t1 }),
  });
  await duro.launch();
  const lines = createInterface({ input: process.stdin });
  out({ ev: "ready" });
  for await (const line of lines) {
    const [command, a, b] = line.split(" ");
    if (command === "send") {
      const t0 = clock();
      await duro.send(a, Number(b), "ping");
      out({ ev: "sent", n: Number(b), t0, t1: clock() });
    } else if (command === "eventer") {
      const handle = await duro.startWorkflow(eventer.with({ workflowId: a }), Number(b));
      out({ ev: "eventer-started", id: handle.workflowId });
    } else if (command === "set") {
      await go(Number(a));
    } else if (command === "exit") break;
  }
  await duro.shutdown();
  process.exit(0); // stdin would keep the process alive
}

async function main() {
  const url = freshUrl(backend);
  const received = new Map(); // n → resolve(time recv returned)
  const setTimes = new Map(); // i → resolve({ t0, t1 })
  const duro = new Duro({ databaseUrl: url, executorId: "messaging-main", appVersion: "messaging-bench", logger: quiet });
  const local = register(duro, {
    received: (n, t) => received.get(n)?.(t),
    set: (i, t0, t1) => setTimes.get(i)?.({ t0, t1 }),
  });
  await duro.launch();
  const total = ROUNDS + WARMUP;
  const keep = (i, list, value) => i >= WARMUP && list.push(value);

  // ——— one process ———
  const same = { sendRecv: { fromCalled: [], fromResolved: [] }, setEventGetEvent: { fromCalled: [], fromResolved: [] } };
  {
    const handle = await duro.startWorkflow(local.receiver.with({ workflowId: "receiver-local" }), total);
    for (let n = 0; n < total; n++) {
      await delay(SETTLE_MS);
      const got = new Promise((resolve) => received.set(n, resolve));
      const t0 = clock();
      await duro.send(handle.workflowId, n, "ping");
      const t1 = clock();
      const at = await got;
      keep(n, same.sendRecv.fromCalled, at - t0);
      keep(n, same.sendRecv.fromResolved, at - t1);
    }
    await handle.getResult();
  }
  {
    const handle = await duro.startWorkflow(local.eventer.with({ workflowId: "eventer-local" }), total);
    for (let i = 0; i < total; i++) {
      const resumed = duro.getEvent(handle.workflowId, `k${i}`, 60).then(() => clock());
      const set = new Promise((resolve) => setTimes.set(i, resolve));
      await delay(SETTLE_MS);
      await local.go(i);
      const [at, { t0, t1 }] = await Promise.all([resumed, set]);
      keep(i, same.setEventGetEvent.fromCalled, at - t0);
      keep(i, same.setEventGetEvent.fromResolved, at - t1);
    }
    await handle.getResult();
  }

  // ——— across processes ———
  const { child, next, tell } = spawnPeer(import.meta.url, backend, url);
  await next((e) => e.ev === "ready");

  const cross = { sendRecv: { fromCalled: [], fromResolved: [] }, setEventGetEvent: { fromCalled: [], fromResolved: [] } };
  {
    const handle = await duro.startWorkflow(local.receiver.with({ workflowId: "receiver-cross" }), total);
    for (let n = 0; n < total; n++) {
      await delay(SETTLE_MS);
      const got = new Promise((resolve) => received.set(n, resolve));
      tell(`send ${handle.workflowId} ${n}`);
      const [at, sent] = await Promise.all([got, next((e) => e.ev === "sent" && e.n === n)]);
      keep(n, cross.sendRecv.fromCalled, at - sent.t0);
      keep(n, cross.sendRecv.fromResolved, at - sent.t1);
    }
    await handle.getResult();
  }
  {
    tell(`eventer eventer-cross ${total}`);
    await next((e) => e.ev === "eventer-started");
    for (let i = 0; i < total; i++) {
      const resumed = duro.getEvent("eventer-cross", `k${i}`, 60).then(() => clock());
      await delay(SETTLE_MS);
      tell(`set ${i}`);
      const [at, set] = await Promise.all([resumed, next((e) => e.ev === "set" && e.i === i)]);
      keep(i, cross.setEventGetEvent.fromCalled, at - set.t0);
      keep(i, cross.setEventGetEvent.fromResolved, at - set.t1);
    }
    await duro.getResult("eventer-cross");
  }

  // ——— stream writes to one key ———
  const streamWrites = await timeStreamWrites(duro, Number(process.env.BENCH_STREAM_WRITES ?? 5000));

  const exited = new Promise((resolve) => child.on("exit", resolve));
  tell("exit");
  child.stdin.end();
  await exited;
  await duro.shutdown();
  await dropDatabase(url);

  const summary = (xs) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return { p50Ms: round(percentile(sorted, 50), 2), p99Ms: round(percentile(sorted, 99), 2), maxMs: round(sorted[sorted.length - 1], 2) };
  };
  const summarize = (group) =>
    Object.fromEntries(Object.entries(group).map(([name, { fromCalled, fromResolved }]) => [name, { fromCalled: summary(fromCalled), fromResolved: summary(fromResolved) }]));
  console.log(JSON.stringify({ bench: "messaging", backend, rounds: ROUNDS, sameProcess: summarize(same), crossProcess: summarize(cross), streamWrites }));
}

async function timeStreamWrites(duro, writes) {
  const perThousand = [];
  const writer = duro.registerWorkflow("streamWriter", async () => {
    let t0 = performance.now();
    for (let i = 1; i <= writes; i++) {
      await duro.writeStream("k", i);
      if (i % 1000 > 0) continue;
      perThousand.push((performance.now() - t0) / 1000);
      t0 = performance.now();
    }
  });
  await writer();
  return { writes, firstThousandMsPerWrite: round(perThousand[0], 3), lastThousandMsPerWrite: round(perThousand[perThousand.length - 1], 3) };
}
