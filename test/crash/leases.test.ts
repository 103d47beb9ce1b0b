/**
 * Executor leases. An executor adopts the PENDING work of another only when that one's lease ran
 * out while its own beats were landing on time and none of its connections was lost: an outage,
 * a flickering database or a freeze holds up every executor's beats, and the others' may come
 * back later than its own.
 */
import { describe, expect, it } from "vitest";
import { DatabaseError, WorkflowQueue, type Duro } from "../../src/index.js";
import { serialize } from "../../src/serialization.js";
import { PostgresStore } from "../../src/storage/postgres/store.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { backends, gate, POSTGRES_URL, quietLogger, rawQuery, sleep, useDuro, waitFor, within } from "../helpers.js";
import pg from "pg";

const LEASE_MS = 1500;

/** Holds `duro`'s heartbeats while `hold()` is in force, as an outage would; `release()` lets them land. */
function holdHeartbeats(duro: Duro) {
  const store = duro.engine.store;
  const heartbeat = store.heartbeat.bind(store);
  let held: ReturnType<typeof gate> | undefined;
  store.heartbeat = async (...args) => {
    if (held) await held.promise;
    return heartbeat(...args);
  };
  return {
    hold: () => void (held = gate()),
    release: () => {
      held?.open();
      held = undefined;
    },
  };
}

/** Executors X and Y, three workflows waiting in recv on each, both past their first lease. */
async function twoExecutors(t: ReturnType<typeof useDuro>) {
  const warnings: string[] = [];
  const logger = { ...quietLogger, warn: (message: string) => void warnings.push(message) };
  const make = (executorId: string) => {
    const duro = t.duro({ executorId, appVersion: "lease-v1", executorLeaseSeconds: LEASE_MS / 1000, logger });
    const wait = duro.registerWorkflow("wait", async () => `${executorId}:${await duro.recv<string>("go", 60)}`);
    return { duro, wait };
  };
  const x = make("exec-x");
  const y = make("exec-y");
  const launched = Date.now();
  await Promise.all([x.duro.launch(), y.duro.launch()]);
  const handles = [
    ...(await Promise.all([0, 1, 2].map((i) => x.duro.startWorkflow(x.wait.with({ workflowId: `x${i}` }))))),
    ...(await Promise.all([0, 1, 2].map((i) => y.duro.startWorkflow(y.wait.with({ workflowId: `y${i}` }))))),
  ];
  // Past their first lease (an executor takes over nobody during it), each judges the other's beats.
  await waitFor(() => Date.now() - launched > 1.2 * LEASE_MS, 5000, "the first lease to pass");
  /** Nothing changed hands: each workflow is still PENDING on its executor, and finishes there. */
  const checkUntouched = async () => {
    const rows = await x.duro.listWorkflows({ workflowIds: handles.map((h) => h.workflowId) });
    expect(rows.map((r) => `${r.workflowId}:${r.status}@${r.executorId}`).sort()).toEqual(
      ["x0", "x1", "x2"].map((id) => `${id}:PENDING@exec-x`).concat(["y0", "y1", "y2"].map((id) => `${id}:PENDING@exec-y`)),
    );
    expect(warnings.filter((w) => w.startsWith("Took over"))).toEqual([]);
    for (const h of handles) await x.duro.send(h.workflowId, "go", "go");
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["exec-x:go", "exec-x:go", "exec-x:go", "exec-y:go", "exec-y:go", "exec-y:go"]);
  };
  return { x, y, warnings, checkUntouched };
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("an executor whose launch takes longer than its lease to load what it recovers keeps beating: nobody takes its work over", async () => {
    const ran: string[] = [];
    const warnings: string[] = [];
    const logger = { ...quietLogger, warn: (message: string) => void warnings.push(message) };
    const make = (executorId: string) => {
      const duro = t.duro({ executorId, appVersion: "lease-v1", executorLeaseSeconds: LEASE_MS / 1000, logger });
      const mark = duro.registerStep("mark", async (id: string) => void ran.push(`${executorId}:${id}`));
      const wait = duro.registerWorkflow("wait", async (id: string) => {
        await duro.recv<string>("go", 60);
        await mark(id);
        return id;
      });
      return { duro, wait };
    };
    const other = make("exec-b");
    await other.duro.launch();
    const first = make("exec-a");
    await first.duro.launch();
    const ids = Array.from({ length: 30 }, (_, i) => `slow-${i}`);
    await Promise.all(ids.map((id) => first.duro.startWorkflow(first.wait.with({ workflowId: id }), id)));
    // exec-b judges others' beats from now on (past its first lease and the store's reconnect slack).
    const trusted = LEASE_MS + (other.duro.engine.store.reconnectSlackMs ?? 0) + 300;
    await sleep(trusted);
    await first.duro.shutdown(); // exec-a "dies" with its 30 workflows PENDING
    // Its restart loads what it recovers slowly, 80 ms a workflow: 2.4 s in all, longer than the lease.
    const Store = backend === "sqlite" ? SqliteStore : PostgresStore;
    const load = Store.prototype.loadWorkflows;
    Store.prototype.loadWorkflows = async function (this: InstanceType<typeof Store>, ids: string[]) {
      await sleep(80 * ids.length);
      return load.call(this, ids);
    };
    const slow = make("exec-a");
    try {
      await slow.duro.launch();
    } finally {
      Store.prototype.loadWorkflows = load;
    }
    for (const id of ids) await slow.duro.send(id, "go", "go");
    expect(await Promise.all(ids.map((id) => slow.duro.getResult(id)))).toEqual(ids);
    expect(warnings.filter((w) => w.startsWith("Took over"))).toEqual([]);
    expect(ran.sort()).toEqual(ids.map((id) => `exec-a:${id}`).sort());
  });

  it("after an outage shorter than the lease, an executor whose beats come back first takes over nothing", async () => {
    const { x, y, checkUntouched } = await twoExecutors(t);
    // Neither can beat for most of a lease; then X's beats land again, and Y's half a lease later
    // (its connections came back more slowly). Y's last beat is then older than the lease.
    const [hx, hy] = [holdHeartbeats(x.duro), holdHeartbeats(y.duro)];
    hx.hold();
    hy.hold();
    await sleep(0.8 * LEASE_MS);
    hx.release();
    await sleep(0.5 * LEASE_MS);
    hy.release();
    await sleep(2 * LEASE_MS);
    await checkUntouched();
  });

  it("an executor frozen past its lease, its work taken over meanwhile, stops those runs when it thaws and says so once", async () => {
    const { x, y, warnings } = await twoExecutors(t);
    const beats = holdHeartbeats(y.duro); // Y freezes (or is cut off) for longer than its lease
    beats.hold();
    await waitFor(() => warnings.filter((w) => w.startsWith("Took over")).length === 3, 5 * LEASE_MS, "X to take Y's workflows over");
    beats.release();
    await waitFor(() => ["y0", "y1", "y2"].every((id) => !y.duro.engine.running.has(id)), 5 * LEASE_MS, "Y to stop its runs");
    const said = () => warnings.filter((w) => w.includes("lease ran out"));
    await waitFor(() => said().length > 0, 5 * LEASE_MS, "Y to say its lease ran out");
    expect(said()[0]).toMatch(/^This executor's lease ran out: \d+\.\d s passed between two of its heartbeats \(it was frozen, or could not write to the database\)\. Other executors may have taken its workflows over: their runs here stop, and steps under way in them may have run twice\.$/);
    for (const id of ["y0", "y1", "y2"]) await y.duro.send(id, "go", "go");
    expect(await Promise.all(["y0", "y1", "y2"].map((id) => y.duro.getResult(id)))).toEqual(["exec-x:go", "exec-x:go", "exec-x:go"]);
    expect(said()).toHaveLength(1);
  });

  /** Executor A, whose workflow "job" runs step "one" (held by `held`) and then step "two", counting each body; "idle" waits in recv. */
  async function zombieCandidate() {
    const a = t.duro({ executorId: "exec-a", executorLeaseSeconds: LEASE_MS / 1000 });
    const bodies = { one: 0, two: 0 };
    const held = gate();
    const one = a.registerStep("one", async () => (bodies.one++, await held.promise, "from-a"));
    const two = a.registerStep("two", async () => void bodies.two++);
    const job = a.registerWorkflow("job", async () => {
      await two(await one());
    });
    const idle = a.registerWorkflow("idle", async () => a.recv("go", 60));
    await a.launch();
    return { a, bodies, held, job, idle };
  }

  it("a run whose workflow was taken over stops at its next record, even when the new owner recorded that step: it does not adopt it and go on", async () => {
    const { a, bodies, held, job } = await zombieCandidate();
    await a.startWorkflow(job.with({ workflowId: "z" }));
    await waitFor(() => bodies.one === 1, 5000, "step one running on A");
    // Meanwhile (A frozen, say) B took the workflow over and recorded step one itself.
    await rawQuery(t.url, "UPDATE workflow_status SET executor_id = 'exec-b', recovery_attempts = 2 WHERE workflow_id = 'z'");
    await rawQuery(t.url, "INSERT INTO operation_outputs (workflow_id, function_id, function_name, output, serialization, started_at, completed_at) VALUES ('z', 1, 'one', $1, 'default', 1, 1)", [serialize("from-b", "default")]);
    held.open();
    await waitFor(() => !a.engine.running.has("z"), 5000, "A's run to end");
    expect(bodies.two).toBe(0);
    const [row] = await a.listWorkflows({ workflowIds: ["z"] });
    expect([row.status, row.executorId]).toEqual(["PENDING", "exec-b"]);
  });

  it("a lease in doubt is confirmed for runs that start while it is checked (a claim's reply that waited out a freeze)", async () => {
    const { a, bodies, held, job, idle } = await zombieCandidate();
    held.open();
    await a.startWorkflow(idle.with({ workflowId: "idle" })); // a run for the lease check to look at
    // A workflow finished elsewhere while A was frozen; A's stale claim reply still starts it.
    await a.startWorkflow(job.with({ workflowId: "done-elsewhere" }));
    await waitFor(async () => (await a.getWorkflowStatus("done-elsewhere"))?.status === "SUCCESS", 5000, "the workflow to finish");
    bodies.one = bodies.two = 0;
    const [stale] = await a.engine.store.listWorkflows({ workflowIds: ["done-elsewhere"], loadInput: true });
    const beats = holdHeartbeats(a);
    beats.hold();
    await waitFor(() => a.engine.recovery.leaseInDoubt, 3 * LEASE_MS, "A's lease to be in doubt");
    const stopSuperseded = a.engine.stopSuperseded.bind(a.engine);
    let calls = 0;
    // The lease check's reading of the rows is where the claim's reply lands.
    const checking = () => (a.engine.recovery as unknown as { confirming?: Promise<void> }).confirming !== undefined;
    a.engine.stopSuperseded = async (ids) => {
      if (checking() && calls++ === 0) a.engine.execute({ ...stale, status: "PENDING", executorId: "exec-a", output: null, completedAt: null }, [], a.engine.workflows.get("job")!);
      return stopSuperseded(ids);
    };
    const confirmed = a.engine.recovery.confirmLease(); // as a step starting now would
    beats.release();
    await confirmed;
    await waitFor(() => calls > 0 && !a.engine.running.has("done-elsewhere"), 5000, "the stale run to end");
    expect(bodies).toEqual({ one: 0, two: 0 });
  });
});

describe.each(backends)("%s: who takes over", (backend) => {
  const t = useDuro(backend);

  /** An executor whose workflows in `names` wait in recv and tell where they finished. */
  const waiter = (executorId: string, appVersion: string, names: string[]) => {
    const duro = t.duro({ executorId, appVersion, executorLeaseSeconds: LEASE_MS / 1000 });
    const workflows = names.map((name) => duro.registerWorkflow(name, async () => `${name}:${await duro.recv<string>("go", 60)}@${duro.executorId}`));
    return { duro, workflows };
  };
  const finish = async (duro: Duro, id: string) => {
    await duro.send(id, "go", "go");
    return (await duro.retrieveWorkflow<string>(id)).getResult();
  };

  it("a takeover adopts only the workflows the taker registers; the rest wait for an executor that knows them", async () => {
    const a = waiter("exec-a", "v1", ["common", "special"]);
    const b = waiter("exec-b", "v1", ["common"]);
    await Promise.all([a.duro.launch(), b.duro.launch()]);
    await a.duro.startWorkflow(a.workflows[0].with({ workflowId: "c" }));
    await a.duro.startWorkflow(a.workflows[1].with({ workflowId: "s" }));
    await a.duro.shutdown(); // its lease runs out
    await waitFor(async () => (await b.duro.getWorkflowStatus("c"))?.executorId === "exec-b", 5 * LEASE_MS, "B to take over c");
    expect(await finish(b.duro, "c")).toBe("common:go@exec-b");
    await sleep(LEASE_MS); // two more of B's takeover rounds
    expect((await b.duro.getWorkflowStatus("s"))!).toMatchObject({ status: "PENDING", executorId: "exec-a" });
    const c = waiter("exec-c", "v1", ["common", "special"]);
    await c.duro.launch();
    expect(await finish(c.duro, "s")).toBe("special:go@exec-c");
  });

  it("a launch forgets executors silent for a day that left no PENDING work; the others stay", async () => {
    const a = waiter("exec-a", "v1", ["common"]);
    await a.duro.launch();
    await a.duro.startWorkflow(a.workflows[0].with({ workflowId: "left" }));
    await a.duro.shutdown();
    const dayAgo = Date.now() - 25 * 3600_000;
    await rawQuery(t.url, "UPDATE executors SET heartbeat_at = $1 WHERE executor_id = 'exec-a'", [dayAgo]);
    for (const [id, at] of [["pod-old", dayAgo], ["pod-recent", Date.now() - 3600_000]] as const) {
      await rawQuery(t.url, "INSERT INTO executors (executor_id, heartbeat_at, app_version) VALUES ($1, $2, 'v1')", [id, at]);
    }
    const b = waiter("exec-b", "v1", ["common"]);
    await b.duro.launch();
    const rows = await rawQuery(t.url, "SELECT executor_id FROM executors ORDER BY executor_id");
    expect(rows.map((r) => r.executor_id)).toEqual(["exec-a", "exec-b", "pod-recent"]);
    // exec-a's work is still taken over (its row says it is silent) and runs.
    expect(await within(10_000, finish(b.duro, "left"), "left to be taken over")).toBe("common:go@exec-b");
  });

  it("workflows taken over that cannot be loaded while the database is out run once it answers", async () => {
    const a = waiter("exec-a", "v1", ["common"]);
    const b = waiter("exec-b", "v1", ["common"]);
    await Promise.all([a.duro.launch(), b.duro.launch()]);
    const ids = ["t0", "t1", "t2"];
    for (const id of ids) await a.duro.startWorkflow(a.workflows[0].with({ workflowId: id }));
    // B's first two reads of the workflows it takes over fail as an outage would fail them.
    const store = b.duro.engine.store;
    const load = store.loadWorkflows.bind(store);
    let failures = 2;
    store.loadWorkflows = async (ids) => {
      if (failures > 0) {
        failures--;
        throw new DatabaseError("The database could not be reached (simulated).");
      }
      return load(ids);
    };
    await a.duro.shutdown(); // its lease runs out
    await waitFor(async () => (await b.duro.listWorkflows({ workflowIds: ids })).every((r) => r.executorId === "exec-b"), 5 * LEASE_MS, "B to take the three over");
    for (const id of ids) expect(await within(10_000, finish(b.duro, id), `${id} to run on B`)).toBe("common:go@exec-b");
    expect(failures).toBe(0);
  });
});

/**
 * A database outage as X and Y see it: X's connections are cut (every 300 ms for `cutForMs`,
 * at least once; its retries get through at once), while Y's beats are held for `holdForMs`, as
 * when its reconnection backs off; then `settleMs` more.
 */
async function outage(x: Duro, y: Duro, { cutForMs, holdForMs, settleMs }: { cutForMs: number; holdForMs: number; settleMs: number }) {
  const backendsOfX = (x.engine.store as unknown as { conn: { ownBackends: Set<number> } }).conn.ownBackends;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const hy = holdHeartbeats(y);
    hy.hold();
    const start = Date.now();
    do {
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1::int[])", [[...backendsOfX]]);
      await sleep(300);
    } while (Date.now() - start < cutForMs);
    await sleep(holdForMs - (Date.now() - start));
    hy.release();
    await sleep(settleMs);
  } finally {
    await admin.end();
  }
}

describe("postgres", () => {
  const t = useDuro("postgres");

  it("a transaction a frozen executor left open (holding a queue's turn to claim) is ended after its lease: the others' claims go on", async () => {
    const frozen = t.duro({ executorId: "frozen", executorLeaseSeconds: 1 });
    await frozen.launch();
    const live = t.duro({ executorId: "live" });
    const job = live.registerWorkflow("job", async () => "ran");
    new WorkflowQueue(live, "g", { concurrency: 5 }); // a limit across executors: claims take turns
    await live.launch();
    // Frozen mid-claim: one of its connections holds queue g's turn in an open transaction.
    const conn = (frozen.engine.store as unknown as { conn: { pool: pg.Pool; schemaName: string } }).conn;
    const client = await conn.pool.connect();
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [0x6471, `${conn.schemaName}.g`]);
    const enqueued = performance.now();
    const handle = await live.startWorkflow(job.with({ queueName: "g" }));
    expect(await within(10_000, handle.getResult(), "the claim once the frozen transaction is ended")).toBe("ran");
    expect(performance.now() - enqueued).toBeGreaterThan(500); // it did wait its turn
    client.release(new Error("ended by the server"));
  });

  it("after a database outage, another executor that reconnects more than a lease later keeps its work", async () => {
    const { x, y, checkUntouched } = await twoExecutors(t);
    // Y's beats land two leases after X's connections were cut once: X's beats are on time for
    // more than a lease before Y's land (a reconnection backs off up to 2.4 s), and X must wait.
    await outage(x.duro, y.duro, { cutForMs: 0, holdForMs: 2 * LEASE_MS, settleMs: LEASE_MS });
    await checkUntouched();
  });

  it("an executor that keeps losing connections judges nobody, though its own beats land on time", async () => {
    const { x, y, checkUntouched } = await twoExecutors(t);
    // A flickering database: X's connections are cut every 300 ms, while Y's beats are stuck for
    // longer than the lease, as in a slow reconnect.
    await outage(x.duro, y.duro, { cutForMs: 1.6 * LEASE_MS, holdForMs: 1.6 * LEASE_MS, settleMs: 2 * LEASE_MS });
    await checkUntouched();
  });
});
