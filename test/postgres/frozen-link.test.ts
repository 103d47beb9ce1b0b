/**
 * A link that goes silent without a reset (a partition, a hung proxy) must not hold a workflow
 * for TCP's own timeout: an operation unanswered for `stuckMs` drops its connection and runs
 * again on a new one. duro reaches PostgreSQL through a TCP proxy here that can freeze every
 * connection it carries: nothing is forwarded any more and nothing is closed.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { retry } from "../../src/storage/postgres/connection.js";
import { POSTGRES_URL, range, rawQuery, useClients, useDuro, waitFor, within } from "../helpers.js";

let proxy: Server;
let pairs: [Socket, Socket][] = [];
const frozen: [Socket, Socket][] = [];
let port = 0;
/** Set, the next connection to send `LISTEN` is frozen as it does (the statement never arrives). */
let swallowListen = false;
/** Set, new connections are accepted and then never answered (their handshake hangs). */
let freezeNew = false;

beforeAll(async () => {
  const target = new URL(POSTGRES_URL);
  proxy = createServer((client) => {
    if (freezeNew) {
      client.pause();
      frozen.push([client, client]);
      return;
    }
    const server = createConnection({ host: target.hostname, port: Number(target.port || 5432) });
    const pair: [Socket, Socket] = [client, server];
    client.on("data", (chunk: Buffer) => {
      if (swallowListen && chunk.includes("LISTEN ")) {
        swallowListen = false;
        freeze([pair]);
        return;
      }
      server.write(chunk);
    });
    server.pipe(client);
    const drop = () => {
      client.destroy();
      server.destroy();
    };
    client.on("error", drop);
    server.on("error", drop);
    pairs.push(pair);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  port = (proxy.address() as { port: number }).port;
});

afterAll(async () => {
  for (const [a, b] of [...pairs, ...frozen]) {
    a.destroy();
    b.destroy();
  }
  await new Promise((resolve) => proxy.close(resolve));
});

afterEach(() => {
  retry.stuckMs = 60_000;
  retry.listenPingMs = 30_000;
  swallowListen = false;
  freezeNew = false;
});

/** These connections stop carrying data, both ways, and stay open. */
function freeze(these: [Socket, Socket][]): number {
  pairs = pairs.filter((pair) => !these.includes(pair));
  frozen.push(...these);
  for (const [client, server] of these) {
    client.unpipe(server);
    server.unpipe(client);
    client.pause();
    server.pause();
  }
  return these.length;
}

/** The proxied connection that holds `LISTEN` stops carrying data, both ways, and stays open. */
async function freezeListen(url: string): Promise<void> {
  let listen: [Socket, Socket][] = [];
  await waitFor(async () => {
    const rows = await rawQuery(url, "SELECT client_port FROM pg_stat_activity WHERE query LIKE 'LISTEN %' OR query = 'SELECT 1'");
    const ports = new Set(rows.map((r) => Number(r.client_port)));
    listen = pairs.filter(([, server]) => ports.has(server.localPort!));
    return listen.length === 1;
  }, 10_000, "the LISTEN connection");
  freeze(listen);
}

describe("postgres: a connection that goes silent", () => {
  const t = useDuro("postgres");
  const client = useClients();

  /** An instance reaching the test's database through the proxy. */
  function proxied(config: Parameters<typeof t.duro>[0] = {}) {
    const url = new URL(t.url);
    url.host = `127.0.0.1:${port}`;
    return t.duro({ ...config, databaseUrl: url.toString() });
  }

  it("mid-run: the stuck operations drop their connections and run again; every workflow finishes, each step recorded once", async () => {
    retry.stuckMs = 500;
    const probe = t.duro(); // fixes the test's fresh schema
    const duro = proxied();
    let steps = 0;
    const step = duro.registerStep("step", async (n: number) => {
      steps++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return n + 1;
    });
    const wf = duro.registerWorkflow("wf", async (n: number) => step(await step(await step(n))));
    await duro.launch();
    const handles = await Promise.all(range(30).map((n) => duro.startWorkflow(wf.with({ workflowId: `f${n}` }), n)));
    await waitFor(() => steps >= 20, 10_000, "some steps done");
    expect(freeze(pairs)).toBeGreaterThan(0);
    const results = await within(10_000, Promise.all(handles.map((h) => h.getResult())), "every result after the freeze");
    expect(results).toEqual(range(30).map((n) => n + 3));
    await probe.launch();
    for (const n of range(30)) expect((await probe.listWorkflowSteps(`f${n}`)).map((s) => s.functionId)).toEqual([1, 2, 3]);
    // Its frozen connections (the LISTEN one, idle pooled ones) do not hold up shutdown: dropped
    // after 2 s, it takes 2 s; about one run in six (before this session too) it took 5.6 s,
    // for a reason not yet found, so the bound is 10 s.
    await within(10_000, duro.shutdown(), "shutdown with frozen connections");
  });

  it("shutdown with checkpoints under way on a frozen link takes seconds, not the 60 s of a lost connection; their workflows run again from their checkpoints", async () => {
    const probe = t.duro(); // fixes the test's fresh schema
    const duro = proxied({ executorId: "frozen" });
    let steps = 0;
    const build = (d: typeof duro) => {
      const step = d.registerStep("step", async (n: number) => {
        steps++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return n + 1;
      });
      return d.registerWorkflow("wf", async (n: number) => step(await step(await step(n))));
    };
    const wf = build(duro);
    await duro.launch();
    await Promise.all(range(30).map((n) => duro.startWorkflow(wf.with({ workflowId: `s${n}` }), n)));
    await waitFor(() => steps >= 20, 10_000, "some steps done");
    freeze(pairs);
    // One more write, so that one is under way whatever the others were doing at the freeze.
    const late = duro.startWorkflow(wf.with({ workflowId: "late" }), 100).catch((error: Error) => error);
    await new Promise((resolve) => setImmediate(resolve));
    const start = performance.now();
    await within(8_000, duro.shutdown(), "shutdown with checkpoints stuck on a frozen link");
    expect(performance.now() - start).toBeLessThan(8_000);
    expect(await late).toBeInstanceOf(Error); // DatabaseError: the store was closed under it

    const again = t.duro({ executorId: "frozen" });
    build(again);
    await again.launch();
    const results = await within(10_000, Promise.all(range(30).map((n) => again.getResult(`s${n}`))), "every workflow, recovered");
    expect(results).toEqual(range(30).map((n) => n + 3));
    await probe.launch();
    for (const n of range(30)) expect((await probe.listWorkflowSteps(`s${n}`)).map((s) => s.functionId)).toEqual([1, 2, 3]);
  });

  it("shutdown while connections are still opening on a frozen link drops them too: seconds, not their connect timeout", async () => {
    retry.stuckMs = 300;
    t.duro(); // fixes the test's fresh schema
    const duro = proxied({ connectTimeoutSeconds: 30 });
    const step = duro.registerStep("step", async (n: number) => n + 1);
    const wf = duro.registerWorkflow("wf", async (n: number) => step(await step(n)));
    await duro.launch();
    freezeNew = true;
    freeze(pairs);
    // Their writes get stuck, are dropped at stuckMs, and are tried again on connections that never open.
    const started = range(5).map((n) => duro.startWorkflow(wf.with({ workflowId: `o${n}` }), n).catch((error: Error) => error));
    await waitFor(() => frozen.some(([a, b]) => a === b), 10_000, "a connection opening on the frozen link");
    const start = performance.now();
    await within(15_000, duro.shutdown(), "shutdown");
    // 2 s for the writes under way, 2 s for connections to close; not the 10 s a connect may take.
    expect(performance.now() - start).toBeLessThan(7_000);
    for (const outcome of await Promise.all(started)) expect(outcome).toBeInstanceOf(Error);
  });

  /** A proxied executor (no safety poll within the test: only a wake-up delivers) whose workflow `id` waits for a message. */
  async function inbox(id: string) {
    const duro = proxied({ safetyPollSeconds: 600 });
    let waiting = false;
    const wf = duro.registerWorkflow("inbox", async () => {
      waiting = true;
      return duro.recv<string>("t", 60);
    });
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: id }));
    return { duro, handle, waiting: () => waiting };
  }

  /** A message sent from another process reaches `id`, so its wake-up came through a LISTEN connection; then shutdown is prompt. */
  async function woken(box: Awaited<ReturnType<typeof inbox>>, id: string) {
    await client(t.url).send(id, "hello", "t");
    expect(await within(5_000, box.handle.getResult(), "the message, woken through a new LISTEN connection")).toBe("hello");
    await within(5_000, box.duro.shutdown(), "shutdown with frozen connections");
  }

  it("the LISTEN connection: a silent one is noticed by its ping and replaced, so other processes' wake-ups arrive again", async () => {
    retry.stuckMs = 500;
    retry.listenPingMs = 200;
    t.duro(); // fixes the test's fresh schema
    const box = await inbox("inbox-1");
    await waitFor(box.waiting, 10_000, "the workflow waiting");
    await freezeListen(t.url);
    await woken(box, "inbox-1");
  });

  it("the LISTEN connection: one whose LISTEN statement goes unanswered is replaced too (no ping runs before it)", async () => {
    retry.listenPingMs = 200;
    t.duro(); // fixes the test's fresh schema
    swallowListen = true;
    const box = await inbox("inbox-2");
    await waitFor(() => box.waiting() && !swallowListen, 10_000, "the workflow waiting, and a LISTEN swallowed");
    await woken(box, "inbox-2");
  });
});
