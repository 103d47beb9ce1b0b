/**
 * Test helpers shared by every suite. Backend-dependent suites run once per backend:
 *
 *   describe.each(backends)("%s", (backend) => { const t = useDuro(backend); … });
 *
 * Each test gets a fresh database (a new SQLite file, or a new PostgreSQL schema), and every
 * Duro it creates is shut down after it. PostgreSQL comes from DURO_TEST_POSTGRES_URL
 * (default: the local server); when it is unreachable the PostgreSQL tests fail, never skip.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach } from "vitest";
import { Duro, type DuroConfig } from "../src/index.js";

export const backends = ["sqlite", "postgres"] as const;
export type Backend = (typeof backends)[number];

export const POSTGRES_URL = process.env.DURO_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

const tempDirs: string[] = [];
const schemas: string[] = [];

/** A URL for a database nobody has used yet. */
export function freshDatabaseUrl(backend: Backend): string {
  if (backend === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "duro-test-"));
    tempDirs.push(dir);
    return `sqlite:${join(dir, "duro.sqlite")}`;
  }
  const schema = `test_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
  schemas.push(schema);
  return `${POSTGRES_URL}${POSTGRES_URL.includes("?") ? "&" : "?"}schema=${schema}`;
}

afterAll(async () => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  if (!schemas.length) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    for (const schema of schemas.splice(0)) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
});

/**
 * Per-test Duro factory: `t.url` is this test's fresh database; `t.duro(config)` makes an
 * instance on it (shut down after the test). Several instances on one URL act as several
 * executors sharing a database.
 */
export function useDuro(backend: Backend) {
  const instances: Duro[] = [];
  const state = {
    url: "",
    duro(config: DuroConfig = {}): Duro {
      if (!state.url) state.url = freshDatabaseUrl(backend);
      const duro = new Duro({ databaseUrl: state.url, logger: quietLogger, ...config });
      instances.push(duro);
      return duro;
    },
    /** Starts a new database for the rest of this test. */
    reset() {
      state.url = freshDatabaseUrl(backend);
    },
  };
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((d) => d.shutdown()));
    state.url = "";
  });
  return state;
}

export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Waits until `predicate` holds (polling every 5 ms), or fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise with its resolve function exposed, for tests that release workflows on cue. */
export function gate<T = void>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
