// Listing speed: 100,000 workflows in one database, then filtered listWorkflows pages timed.
// The target is under 50 ms for a filtered page. Prints one JSON line.
// Usage: npm run build && node bench/listing.mjs [sqlite|postgres]
// (BENCH_LISTING_WORKFLOWS changes the count, BENCH_LISTING_REPEATS the timed runs per query;
// BENCH_LISTING_KEEP=1 keeps the database for EXPLAIN.)
// Not part of bench/run.mjs: inserting 100,000 rows takes a while.
import { Duro } from "../dist/index.js";
import pg from "pg";
import { dropDatabase, freshUrl, POSTGRES_URL, percentile, quiet, round } from "./common.mjs";

const backend = process.argv[2] ?? "sqlite";
const TOTAL = Number(process.env.BENCH_LISTING_WORKFLOWS ?? 100_000);
const REPEATS = Number(process.env.BENCH_LISTING_REPEATS ?? 20);
const BATCH = 2_000;
const TARGET_MS = 50;
const NAMES = 20;
const PREFIXES = ["order", "refund", "invoice", "shipment"];

const url = freshUrl(backend);
// The rows are written straight into the store; this executor runs none of them (its only
// PENDING rows are its own, which it never recovers after launch, and it registers no workflows).
const duro = new Duro({ databaseUrl: url, logger: quiet, executorId: "bench", appVersion: "v1", executorLeaseSeconds: 3600 });
await duro.launch();
const store = duro.engine.store;

/**
 * Row i: one of 20 names; 90% SUCCESS, 5% ERROR, 3% CANCELLED, 1% ENQUEUED, 1% PENDING; 30%
 * came through one of 5 queues (every ENQUEUED one does); 100 users; two app versions; one
 * created every second over the last TOTAL seconds; IDs "<prefix>-<n>" under 4 prefixes.
 */
const base = Date.now() - TOTAL * 1000;
/** A repeatable pseudo-random 0 … n-1 for (i, salt): independent draws per field. */
function pick(i, salt, n) {
  let h = Math.imul(i ^ Math.imul(salt, 0x9e3779b9), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) % n;
}
function row(i) {
  const r = pick(i, 1, 100);
  const status = r < 90 ? "SUCCESS" : r < 95 ? "ERROR" : r < 98 ? "CANCELLED" : r < 99 ? "ENQUEUED" : "PENDING";
  const queued = status === "ENQUEUED" || pick(i, 2, 10) < 3;
  const createdAt = base + i * 1000;
  const done = status === "SUCCESS" || status === "ERROR" || status === "CANCELLED";
  return {
    workflowId: `${PREFIXES[i % PREFIXES.length]}-${String(i).padStart(7, "0")}`,
    status,
    name: `wf-${pick(i, 3, NAMES)}`,
    authenticatedUser: `user-${pick(i, 4, 100)}`,
    inputs: JSON.stringify({ positionalArgs: [i, { sku: `sku-${i % 1000}` }], namedArgs: {} }),
    output: status === "SUCCESS" ? JSON.stringify({ ok: true, i }) : null,
    error: status === "ERROR" ? JSON.stringify({ name: "Error", message: `failed ${i}` }) : null,
    serialization: "portable",
    executorId: status === "ENQUEUED" ? null : "bench",
    appVersion: i % 2 ? "v1" : "v2",
    createdAt,
    updatedAt: createdAt + 500,
    startedAt: status === "ENQUEUED" ? null : createdAt + 10,
    completedAt: done ? createdAt + 500 : null,
    recoveryAttempts: status === "ENQUEUED" ? 0 : 1,
    queueName: queued ? `q-${pick(i, 5, 5)}` : null,
    priority: 0,
    deduplicationId: null,
    partitionKey: null,
    timeoutMs: null,
    deadlineEpochMs: null,
    delayUntilEpochMs: null,
    parentWorkflowId: i % 50 === 1 ? `${PREFIXES[(i - 1) % PREFIXES.length]}-${String(i - 1).padStart(7, "0")}` : null,
    forkedFrom: null,
    wasForkedFrom: false,
  };
}

let started = performance.now();
for (let from = 0; from < TOTAL; from += BATCH) {
  const batch = [];
  for (let i = from; i < Math.min(TOTAL, from + BATCH); i++) batch.push({ kind: "insertWorkflow", row: row(i), ownerToken: `bench-${i}` });
  await store.write(batch);
}
const insertMs = performance.now() - started;
const [first] = await duro.listWorkflows({ limit: 1, loadInput: false, loadOutput: false });
if (!first) throw new Error("nothing was inserted");

const mid = (ms) => new Date(base + ms).toISOString();
const queries = {
  "status+name, limit 50": { status: "ERROR", name: "wf-3", limit: 50 },
  "status+name, newest first": { status: "ERROR", name: "wf-3", limit: 50, sortDesc: true },
  "status PENDING, limit 50": { status: "PENDING", limit: 50 },
  "status list, newest first": { status: ["ERROR", "CANCELLED"], limit: 50, sortDesc: true },
  "name+user": { name: "wf-5", user: "user-35", limit: 50 },
  "workflowIdPrefix": { workflowIdPrefix: "refund-", limit: 50 },
  "workflowIdPrefix, newest first": { workflowIdPrefix: "refund-00", limit: 50, sortDesc: true },
  "queueName": { queueName: "q-2", limit: 50 },
  "listQueuedWorkflows(queueName)": "queued",
  "time window": { startTime: mid(TOTAL * 500), endTime: mid(TOTAL * 500 + 3_600_000), limit: 50 },
  "sortDesc, offset 5000": { sortDesc: true, limit: 50, offset: 5000 },
  "status+name, offset 100": { status: "SUCCESS", name: "wf-11", limit: 50, offset: 100 },
  "first page, no payloads": { limit: 50, loadInput: false, loadOutput: false },
  "workflowIds (50)": { workflowIds: Array.from({ length: 50 }, (_, k) => row(k * 1999).workflowId) },
  "parentWorkflowId": { parentWorkflowId: row(50 * 777).workflowId },
};

async function timeQueries() {
  const results = {};
  for (const [label, filter] of Object.entries(queries)) {
    const call = filter === "queued" ? () => duro.listQueuedWorkflows({ queueName: "q-1", limit: 50 }) : () => duro.listWorkflows(filter);
    const rows = (await call()).length; // warm-up, and a check the query finds something
    const times = [];
    for (let k = 0; k < REPEATS; k++) {
      started = performance.now();
      await call();
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    results[label] = { p50Ms: round(percentile(times, 50)), p95Ms: round(percentile(times, 95)), rows };
  }
  return results;
}

/** Planner statistics, as autovacuum (PostgreSQL) or an `ANALYZE` (SQLite) would gather them. */
async function analyze() {
  if (backend === "sqlite") {
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(url.slice("sqlite:".length));
    db.exec("ANALYZE");
    db.close();
    return;
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`ANALYZE "${new URL(url).searchParams.get("schema")}".workflow_status`);
  await client.end();
}

// Right after the load (the planner has no statistics yet), then with statistics.
const fresh = await timeQueries();
await analyze();
const results = await timeQueries();
const worstP50 = Math.max(...Object.values(results).map((r) => r.p50Ms));

console.log(
  JSON.stringify({
    bench: "listing",
    backend,
    workflows: TOTAL,
    insertMs: round(insertMs, 0),
    insertPerSecond: round(TOTAL / (insertMs / 1000), 0),
    queries: results,
    p50MsBeforeAnalyze: Object.fromEntries(Object.entries(fresh).map(([label, r]) => [label, r.p50Ms])),
    worstP50Ms: worstP50,
    targetMs: TARGET_MS,
    withinTarget: worstP50 < TARGET_MS,
  }),
);

await duro.shutdown();
if (process.env.BENCH_LISTING_KEEP) console.error(`kept the database: ${url}`);
else await dropDatabase(url);
