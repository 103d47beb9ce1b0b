// Shared by the bench scripts: fresh databases, store call counting, percentiles.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";

export const POSTGRES_URL = process.env.DURO_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A database nobody has used: a new SQLite file, or a new PostgreSQL schema. */
export function freshUrl(backend) {
  if (backend === "sqlite") return `sqlite:${join(mkdtempSync(join(tmpdir(), "duro-bench-")), "bench.sqlite")}`;
  return `${POSTGRES_URL}?schema=bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Removes what `freshUrl` made: the SQLite file's temporary directory, or the schema. */
export async function dropDatabase(url) {
  if (url.startsWith("sqlite:")) {
    rmSync(dirname(url.slice("sqlite:".length)), { recursive: true, force: true });
    return;
  }
  const schema = new URL(url).searchParams.get("schema");
  if (!schema) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

/**
 * Counts database round trips: on PostgreSQL every query sent by any pg client; on SQLite
 * every store call (each is one transaction or read in-process).
 */
export function countRoundTrips(duro) {
  const counter = { n: 0 };
  const originalQuery = pg.Client.prototype.query;
  pg.Client.prototype.query = function (...args) {
    counter.n++;
    return originalQuery.apply(this, args);
  };
  const store = duro.engine.store;
  if (store.dialect === "sqlite") {
    for (const name of ["write", "loadWorkflows", "listWorkflows", "listOperations", "recoverPending", "getEvent", "readStream", "claimQueued"]) {
      const original = store[name].bind(store);
      store[name] = (...args) => {
        counter.n++;
        return original(...args);
      };
    }
  }
  return counter;
}

export function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const round = (x, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

export const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Runs this bench script again as a peer process (`<script> <backend> --peer <url>`) that speaks
 * JSON lines: `next(match)` waits for an event it printed, `tell(line)` writes to its stdin.
 */
export function spawnPeer(scriptUrl, backend, url) {
  const child = spawn(process.execPath, [new URL(scriptUrl).pathname, backend, "--peer", url], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = [];
  const events = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const event = JSON.parse(line);
    const i = waiting.findIndex((w) => w.match(event));
    if (i >= 0) waiting.splice(i, 1)[0].resolve(event);
    else events.push(event);
  });
  const next = (match) => {
    const i = events.findIndex(match);
    if (i >= 0) return Promise.resolve(events.splice(i, 1)[0]);
    return new Promise((resolve) => waiting.push({ match, resolve }));
  };
  const tell = (line) => child.stdin.write(`${line}\n`);
  return { child, next, tell };
}
