// `npm run bench:peers` (from the repository root): duro against DBOS Transact, pg-boss and
// graphile-worker on the same local PostgreSQL. Every workload of every system runs in a child
// process of its own, in a database of its own (CREATE DATABASE bench_<system>_<n>, dropped
// afterwards). Progress goes to stderr; stdout gets ONE JSON line at the end, which is also
// written to bench/peers/last-run.json.
//
// Environment: BENCH_PEERS_SYSTEMS=duro,dbos,pgboss,graphile  BENCH_PEERS_WORKLOADS=sequential,…
// BENCH_PEERS_SCALE=1 (multiplies every count)  BENCH_PEERS_POSTGRES_URL=postgres://…/postgres
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { SERVER_URL, SIZES, createDatabase, databaseUrl, dropDatabase, queryOnce, round } from "./common.mjs";

const here = new URL(".", import.meta.url).pathname;

/** Workload number (for the database name) and the systems it applies to. */
const WORKLOADS = [
  { n: 1, name: "sequential", systems: ["duro", "dbos"] },
  { n: 2, name: "concurrent", systems: ["duro", "dbos"] },
  { n: 3, name: "queue", systems: ["duro", "dbos"] },
  { n: 4, name: "drain", systems: ["duro", "dbos", "pgboss", "graphile"] },
  { n: 5, name: "latency", systems: ["duro", "dbos", "pgboss", "graphile"] },
  { n: 6, name: "enqueue", systems: ["duro", "dbos", "pgboss", "graphile"] },
  { n: 7, name: "drainDefault", systems: ["graphile"] },
];
const ALL_SYSTEMS = ["duro", "dbos", "pgboss", "graphile"];
const pick = (env, all) => (process.env[env] ? process.env[env].split(",").map((s) => s.trim()).filter(Boolean) : all);
const systems = pick("BENCH_PEERS_SYSTEMS", ALL_SYSTEMS);
const workloads = pick("BENCH_PEERS_WORKLOADS", WORKLOADS.map((w) => w.name));
const CHILD_TIMEOUT_MS = Number(process.env.BENCH_PEERS_CHILD_TIMEOUT_MS ?? 240_000);

const log = (message) => process.stderr.write(`[bench:peers] ${message}\n`);

function runChild(system, workload, url) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${here}child.mjs`, system, workload, url], { cwd: here, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\nkilled after ${CHILD_TIMEOUT_MS} ms`;
      child.kill("SIGKILL");
    }, CHILD_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = stdout.split("\n").reverse().map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      }).find((l) => l && l.system === system && l.workload === workload);
      if (line) resolve(line);
      else resolve({ system, workload, error: `exit ${code}: ${stderr.trim().split("\n").slice(-5).join(" | ") || stdout.trim().slice(-500)}` });
    });
  });
}

async function machine() {
  const pg = async (sql) => (await queryOnce(SERVER_URL, sql)).rows[0];
  const version = (pkg) => {
    try {
      return JSON.parse(readFileSync(`${here}node_modules/${pkg}/package.json`, "utf8")).version;
    } catch {
      return null;
    }
  };
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? null,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    loadAverage: os.loadavg().map((x) => round(x, 2)),
    node: process.version,
    postgres: (await pg("SHOW server_version")).server_version,
    fsync: (await pg("SHOW fsync")).fsync,
    synchronousCommit: (await pg("SHOW synchronous_commit")).synchronous_commit,
    maxConnections: Number((await pg("SHOW max_connections")).max_connections),
    versions: { duro: version("duro"), dbos: version("@dbos-inc/dbos-sdk"), pgboss: version("pg-boss"), graphile: version("graphile-worker") },
  };
}

const started = Date.now();
const info = await machine();
log(`machine: ${JSON.stringify(info)}`);
const out = { bench: "peers" };
const configs = {};
const errors = [];
for (const system of systems) out[system] = {};
for (const w of WORKLOADS.filter((w) => workloads.includes(w.name))) {
  for (const system of w.systems.filter((s) => systems.includes(s))) {
    const db = `bench_${system}_${w.n}`;
    const t = Date.now();
    await createDatabase(db);
    let line;
    try {
      line = await runChild(system, w.name, databaseUrl(db));
    } finally {
      await dropDatabase(db);
    }
    if (line.error) {
      errors.push({ system, workload: w.name, error: line.error });
      out[system][w.name] = { error: line.error.split("\n")[0] };
      log(`${system} ${w.name}: FAILED (${((Date.now() - t) / 1000).toFixed(1)} s): ${line.error}`);
    } else {
      out[system][w.name] = line.result;
      configs[system] = line.config;
      log(`${system} ${w.name} (${((Date.now() - t) / 1000).toFixed(1)} s): ${JSON.stringify(line.result)}`);
    }
  }
}

const get = (system, workload, field) => out[system]?.[workload]?.[field];
const ratio = (a, b) => (typeof a === "number" && typeof b === "number" && b > 0 ? round(a / b, 2) : null);
const lowerIsBetter = (peer, workload, field) => ratio(get(peer, workload, field), get("duro", workload, field));
const higherIsBetter = (peer, workload, field) => ratio(get("duro", workload, field), get(peer, workload, field));
const single = (s) => out[s]?.enqueue?.single?.perSecond;
const batch = (s) => out[s]?.enqueue?.batch?.perSecond;
// Every ratio is "how many times better duro is": > 1 means duro wins.
out.ratios = {
  sequentialLatency: lowerIsBetter("dbos", "sequential", "meanMs"),
  sequentialP99: lowerIsBetter("dbos", "sequential", "p99Ms"),
  concurrentThroughput: higherIsBetter("dbos", "concurrent", "workflowsPerSecond"),
  queueDrain: higherIsBetter("dbos", "queue", "workflowsPerSecond"),
  ...Object.fromEntries(["dbos", "pgboss", "graphile"].flatMap((peer) => {
    const P = { dbos: "Dbos", pgboss: "Pgboss", graphile: "Graphile" }[peer];
    return [
      [`drainVs${P}`, higherIsBetter(peer, "drain", "jobsPerSecond")],
      ...(peer === "graphile" ? [["drainVsGraphileUnbatched", ratio(get("duro", "drain", "jobsPerSecond"), get("graphile", "drainDefault", "jobsPerSecond"))]] : []),
      [`startLatencyP50Vs${P}`, lowerIsBetter(peer, "latency", "p50Ms")],
      [`startLatencyP99Vs${P}`, lowerIsBetter(peer, "latency", "p99Ms")],
      [`singleEnqueueVs${P}`, ratio(single("duro"), single(peer))],
      [`batchEnqueueVs${P}`, ratio(batch("duro"), batch(peer))],
    ];
  })),
};
out.config = configs;
out.sizes = SIZES;
out.machine = info;
out.seconds = round((Date.now() - started) / 1000, 1);
if (errors.length) out.errors = errors.map((e) => `${e.system}/${e.workload}`);
const json = JSON.stringify(out);
writeFileSync(`${here}last-run.json`, `${json}\n`);
console.log(json);
process.exit(errors.length ? 1 : 0);
