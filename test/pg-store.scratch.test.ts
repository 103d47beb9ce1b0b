// SCRATCH: compares PostgresStore with SqliteStore. Delete when done.
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../src/storage/postgres/store.js";
import { SqliteStore } from "../src/storage/sqlite/store.js";
import type { OperationRow, Store, WorkflowRow, Write } from "../src/storage/store.js";
import { DatabaseError } from "../src/errors.js";

const BASE = "postgres://postgres@127.0.0.1:5432/postgres";
const run = `t${Date.now().toString(36)}`;
const admin = new pg.Pool({ connectionString: BASE });
const opened: Store[] = [];
const pgStore = (schema: string, opts = {}) => {
  const s = new PostgresStore(`${BASE}?schema=${schema}`, opts);
  opened.push(s);
  return s;
};
afterAll(async () => {
  for (const s of opened) await s.close();
  const { rows } = await admin.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
  for (const r of rows) await admin.query(`DROP SCHEMA "${r.nspname.replace(/"/g, '""')}" CASCADE`);
  await admin.end();
});

const wf = (id: string, extra: Partial<WorkflowRow> = {}): WorkflowRow => ({
  workflowId: id, status: "PENDING", name: "w", authenticatedUser: null, inputs: "[1]", output: null, error: null,
  serialization: "default", executorId: "e1", appVersion: "v1", createdAt: 1_700_000_000_000 + id.charCodeAt(0), updatedAt: 1_700_000_000_000,
  startedAt: 1_700_000_000_001, completedAt: null, recoveryAttempts: 0, queueName: null, priority: 0, deduplicationId: null,
  partitionKey: null, timeoutMs: null, deadlineEpochMs: null, delayUntilEpochMs: null, parentWorkflowId: null, forkedFrom: null,
  wasForkedFrom: false, ...extra,
});
const op = (workflowId: string, functionId: number, extra: Partial<OperationRow> = {}): OperationRow => ({
  workflowId, functionId, functionName: `f${functionId}`, output: `"o${functionId}"`, error: null, serialization: "default",
  childWorkflowId: null, startedAt: 1_700_000_000_100, completedAt: 1_700_000_000_200, ...extra,
});
const v = (value: string) => ({ value, serialization: "default" as const });

const BATCHES: Write[][] = [
  [
    { kind: "insertWorkflow", row: wf("A"), ownerToken: "t1" },
    { kind: "insertWorkflow", row: wf("B", { status: "ENQUEUED", queueName: "q", deduplicationId: "d1" }), ownerToken: "t1" },
    { kind: "insertWorkflow", row: wf("C", { status: "ENQUEUED", queueName: "q", deduplicationId: "d1" }), ownerToken: "t1" },
    { kind: "insertWorkflow", row: wf("D", { wasForkedFrom: true, parentWorkflowId: "A", timeoutMs: 5000 }), ownerToken: "t1" },
    { kind: "insertWorkflow", row: wf("D", { name: "other" }), ownerToken: "t2" },
  ],
  [
    { kind: "insertWorkflow", row: wf("A", { name: "x" }), ownerToken: "t9" },
    { kind: "insertWorkflow", row: wf("A"), ownerToken: "t1" },
    { kind: "insertWorkflow", row: wf("E", { status: "ENQUEUED", queueName: "q", deduplicationId: "d1" }), ownerToken: "t1" },
  ],
  [{ kind: "recordOperation", op: op("A", 1) }, { kind: "recordOperation", op: op("A", 2) }, { kind: "recordOperation", op: op("A", 2, { output: "dup" }) }],
  [{ kind: "recordOperation", op: op("A", 1, { functionName: "changed" }) }],
  [
    { kind: "send", messageId: "m1", destinationId: "A", topic: "t", message: v("1"), createdAt: 1 },
    { kind: "send", messageId: "m2", destinationId: "A", topic: "t", message: v("2"), createdAt: 2 },
    { kind: "send", messageId: "m2", destinationId: "A", topic: "t", message: v("2b"), createdAt: 2 },
    { kind: "send", messageId: "m3", destinationId: "nope", topic: "t", message: v("3"), createdAt: 3 },
    { kind: "send", messageId: "m4", destinationId: "A", topic: "u", message: v("4"), createdAt: 4 },
  ],
  [{ kind: "send", messageId: "m1", destinationId: "A", topic: "t", message: v("1"), createdAt: 1 }],
  [
    { kind: "recv", destinationId: "A", topic: "t", op: op("A", 3, { output: null }) },
    { kind: "recv", destinationId: "A", topic: "t", op: op("A", 4, { output: null }) },
    { kind: "recv", destinationId: "A", topic: "t", op: op("A", 5, { output: null }) },
    { kind: "recv", destinationId: "A", topic: "t", op: op("A", 3, { output: null }) },
  ],
  [{ kind: "recv", destinationId: "A", topic: "u", op: op("A", 1) }],
  [{ kind: "recv", destinationId: "A", topic: "u", op: op("A", 6) }],
  [
    { kind: "setEvent", workflowId: "A", key: "k", functionId: 7, value: v("e1") },
    { kind: "setEvent", workflowId: "A", key: "k", functionId: 8, value: v("e2") },
    { kind: "setEvent", workflowId: "A", key: "Z", functionId: 9, value: v("z") },
    { kind: "setEvent", workflowId: "A", key: "a", functionId: 9, value: v("a") },
  ],
  [
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, once: true, value: v("s0") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 11, once: true, value: v("s1") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, once: true, value: v("s0") },
    { kind: "writeStream", workflowId: "A", key: "s2", functionId: 12, once: true, value: v("x0") },
  ],
  [
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 11, once: true, value: v("s1") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 13, once: true, value: v("s2") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 14, once: true, value: null },
  ],
  [
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 20, once: false, value: v("a") },
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 20, once: false, value: v("b") },
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 20, once: true, value: v("c") },
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 21, once: true, value: v("d") },
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 21, once: false, value: v("e") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, once: false, value: v("f") },
    { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, once: true, value: v("g") },
    { kind: "writeStream", workflowId: "A", key: "s3", functionId: 21, once: true, value: v("h") },
  ],
  [{ kind: "writeStream", workflowId: "A", key: "s3", functionId: 20, once: true, value: v("c") }],
  // mixed batch, every kind (input order respects dependencies, as SQLite applies in input order)
  [
    { kind: "insertWorkflow", row: wf("F"), ownerToken: "t1" },
    { kind: "completeWorkflow", workflowId: "D", status: "SUCCESS", output: "1", error: null, completedAt: 99 },
    { kind: "recordOperation", op: op("F", 1) },
    { kind: "send", messageId: "m5", destinationId: "F", topic: "t", message: v("5"), createdAt: 5 },
    { kind: "writeStream", workflowId: "D", key: "s", functionId: 3, once: true, value: v("d") },
    { kind: "recv", destinationId: "F", topic: "t", op: op("F", 4, { output: null }) },
    { kind: "setEvent", workflowId: "F", key: "k", functionId: 2, value: v("f") },
    { kind: "completeWorkflow", workflowId: "D", status: "ERROR", output: null, error: "e", completedAt: 100 },
    { kind: "completeWorkflow", workflowId: "B", status: "SUCCESS", output: "1", error: null, completedAt: 100 },
  ],
  [{ kind: "completeWorkflow", workflowId: "D", status: "SUCCESS", output: "1", error: null, completedAt: 101 }],
];

async function exercise(store: Store) {
  await store.migrate();
  const out: unknown[] = [];
  for (const b of BATCHES) out.push(await store.write(b));
  out.push(await store.loadWorkflow("A"), await store.loadWorkflow("D"), await store.loadWorkflow("nope"));
  out.push(await store.listWorkflows({}), await store.listWorkflows({ sortDesc: true, limit: 2, offset: 1, loadInput: false }));
  out.push(await store.listWorkflows({ queuesOnly: true }), await store.listWorkflows({ wasForkedFrom: true }), await store.listWorkflows({ workflowIdPrefix: ["A", "F"], status: ["PENDING"] }));
  out.push(await store.listWorkflows({ hasParent: true, name: ["w"], startTime: 0, endTime: 2e12, user: [] }));
  out.push(await store.listOperations("A"), await store.listOperations("A", 2, 1), await store.listOperations("A", undefined, 3));
  out.push(await store.getEvent("A", "k"), await store.getEvent("A", "none"), [...(await store.getAllEvents("A")).entries()]);
  out.push(await store.readStream("A", "s", 0), await store.readStream("A", "s", 1), await store.readStream("A", "s2", 0), await store.readStream("A", "zz", 0), await store.readStream("A", "s3", 0));
  out.push(await store.recoverPending({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: 1, now: 500 }));
  out.push(await store.recoverPending({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: 1, now: 501 }));
  out.push(await store.write([{ kind: "insertWorkflow", row: wf("G"), ownerToken: "t" }, { kind: "insertWorkflow", row: wf("H"), ownerToken: "t" }]));
  out.push(await store.recoverPending({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: 1, now: 502 }));
  out.push(await store.recoverPending({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: Infinity, now: 503 }));
  out.push(await store.cancelWorkflows(["G", "B", "G", "nope", "E"], 600));
  out.push(await store.listWorkflows({ sortDesc: false }));
  out.push(await store.write([]));
  return out;
}

describe("PostgresStore vs SqliteStore", () => {
  it("same results for the same sequence", async () => {
    const sqlite = new SqliteStore(":memory:");
    opened.push(sqlite);
    const expected = await exercise(sqlite);
    const actual = await exercise(pgStore(`${run}_cmp`));
    for (const i of [0, 1, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14, 15, 31, 32, 34, 35]) console.log("OUT", i, JSON.stringify(expected[i]).slice(0, 400));
    for (let i = 0; i < expected.length; i++) expect([i, actual[i]]).toEqual([i, expected[i]]);
    // BIGINT comes back as number
    const loaded = await pgStore(`${run}_cmp`).loadWorkflow("A");
    expect(typeof loaded!.workflow.createdAt).toBe("number");
  });

  it("migrates concurrently and refuses a newer schema", async () => {
    const schema = `${run}_mig`;
    await Promise.all(Array.from({ length: 6 }, () => pgStore(schema).migrate()));
    const { rows } = await admin.query(`SELECT version FROM "${schema}".duro_migrations`);
    expect(rows).toEqual([{ version: 1 }]);
    await admin.query(`INSERT INTO "${schema}".duro_migrations VALUES (99, 'x', 0)`);
    await expect(pgStore(schema).migrate()).rejects.toThrow(/newer duro/);
  });

  it("odd schema names are quoted", async () => {
    const s = pgStore(encodeURIComponent(`${run}_We"ird`));
    await s.migrate();
    expect(await s.write([{ kind: "insertWorkflow", row: wf("A"), ownerToken: "t" }])).toEqual([{ kind: "insertWorkflow", inserted: true }]);
  });

  it("connect timeout names host and database, not the password", async () => {
    const s = new PostgresStore("postgres://u:sekret@127.0.0.1:1/mydb", { connectTimeoutSeconds: 1 });
    const t = Date.now();
    const err = await s.migrate().catch((e) => e);
    expect(err).toBeInstanceOf(DatabaseError);
    expect(err.message).toContain("127.0.0.1:1/mydb");
    expect(err.message).not.toContain("sekret");
    expect(Date.now() - t).toBeGreaterThan(500);
    expect(Date.now() - t).toBeLessThan(3000);
    await s.close();
  });

  it("notifies other stores on the same schema only, and re-listens after a drop", async () => {
    const schema = `${run}_ntf`;
    const a = pgStore(schema), b = pgStore(schema), other = pgStore(`${run}_ntf2`);
    await a.migrate();
    await other.migrate();
    const got: (string[] | null)[] = [];
    const gotOther: (string[] | null)[] = [];
    b.onExternalChange((k) => got.push(k));
    other.onExternalChange((k) => gotOther.push(k));
    await until(() => got.length > 0 && gotOther.length > 0);
    expect(got).toEqual([null]);
    got.length = 0;
    gotOther.length = 0;
    const many = Array.from({ length: 800 }, (_, i): Write => ({ kind: "insertWorkflow", row: wf(`W${i}`.padEnd(20, "x")), ownerToken: "t" }));
    await a.write(many);
    await until(() => new Set(got.flat()).size >= 800);
    expect(new Set(got.flat()).size).toBe(800);
    expect(got.length).toBeGreaterThan(1);
    await a.write([{ kind: "completeWorkflow", workflowId: many[0].kind === "insertWorkflow" ? many[0].row.workflowId : "", status: "SUCCESS", output: null, error: null, completedAt: 1 }]);
    await until(() => got.some((k) => k?.includes("queue")));
    // cancel notifies
    await a.cancelWorkflows(["W1".padEnd(20, "x")], 5);
    await until(() => got.some((k) => k?.includes(`status:${"W1".padEnd(20, "x")}`)));
    await sleep(100);
    expect(gotOther).toEqual([]);
    // kill b's listen connection
    got.length = 0;
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND query ILIKE $1`, [`%${schema}%`]);
    await until(() => got.includes(null), 5000);
    await a.write([{ kind: "setEvent", workflowId: "W2".padEnd(20, "x"), key: "k", functionId: 1, value: v("x") }]);
    await until(() => got.some((k) => k?.[0]?.startsWith("event:")));
  });

  it("concurrent stream writers and receivers never collide", async () => {
    const schema = `${run}_cc`;
    const stores = Array.from({ length: 4 }, () => pgStore(schema, { poolSize: 4 }));
    await stores[0].migrate();
    await stores[0].write([{ kind: "insertWorkflow", row: wf("S"), ownerToken: "t" }]);
    await stores[0].write(Array.from({ length: 100 }, (_, i): Write => ({ kind: "send", messageId: `m${i}`, destinationId: "S", topic: "t", message: v(`${i}`), createdAt: i })));
    const offsets: number[] = [];
    const messages: string[] = [];
    await Promise.all(stores.flatMap((s, n) => Array.from({ length: 25 }, async (_, i) => {
      const fid = n * 100 + i;
      const [w, r] = await s.write([
        { kind: "writeStream", workflowId: "S", key: "k", functionId: fid, once: true, value: v(`${fid}`) },
        { kind: "recv", destinationId: "S", topic: "t", op: op("S", fid, { output: null }) },
      ]);
      offsets.push((w as any).offset);
      if ((r as any).message) messages.push((r as any).message.value);
    })));
    expect(new Set(offsets).size).toBe(100);
    expect(Math.max(...offsets)).toBe(99);
    expect(new Set(messages).size).toBe(messages.length);
    expect(messages.length).toBe(100);
    // a stream written by a single-kind batch, concurrently
    const single = await Promise.all(stores.map((s, n) => s.write([{ kind: "writeStream", workflowId: "S", key: "k2", functionId: n, once: true, value: v("x") }])));
    expect(new Set(single.map((r) => (r[0] as any).offset))).toEqual(new Set([0, 1, 2, 3]));
  });

  it("retries through killed connections, and close leaves no connection", async () => {
    const schema = `${run}_rt`;
    const s = pgStore(schema, { poolSize: 3 });
    await s.migrate();
    await s.write([{ kind: "insertWorkflow", row: wf("R"), ownerToken: "t" }]);
    const t0 = Date.now();
    const fk = await s.write([{ kind: "recordOperation", op: op("missing", 1) }]).catch((e) => e);
    console.log("FK", Date.now() - t0, fk.code, fk.message);
    expect(fk.code).toBe("23503");
    let stop = false;
    let kills = 0;
    const killer = (async () => {
      while (!stop) {
        kills += (await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'duro' AND pid <> pg_backend_pid() AND query ILIKE $1`, [`%${schema}%`])).rowCount ?? 0;
        await sleep(15);
      }
    })();
    const results = [];
    for (let i = 0; i < 60; i++) {
      results.push(await s.write([
        { kind: "recordOperation", op: op("R", i) },
        { kind: "writeStream", workflowId: "R", key: "k", functionId: i, once: true, value: v(`${i}`) },
      ]));
      await s.loadWorkflow("R");
    }
    stop = true;
    await killer;
    console.log("KILLS", kills);
    expect(results.map((r) => (r[1] as any).offset)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    const loaded = await s.loadWorkflow("R");
    expect(loaded!.operations.length).toBe(60);
    s.onExternalChange(() => {});
    await sleep(200);
    const before = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'duro'`);
    expect(before.rows[0].n).toBeGreaterThan(0);
    for (const o of opened) await o.close();
    await sleep(200);
    const after = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'duro'`);
    expect(after.rows[0].n).toBe(0);
  }, 60_000);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(f: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await sleep(10);
  }
}
