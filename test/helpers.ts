/**
 * Test helpers shared by every suite (STYLE.md point 9: one helpers file). Backend-dependent
 * suites run once per backend:
 *
 *   describe.each(backends)("%s", (backend) => { const t = useDuro(backend); … });
 *
 * Each test gets a fresh database (a new SQLite file, or a new PostgreSQL schema), and every
 * Duro it creates is shut down after it. PostgreSQL comes from DURO_TEST_POSTGRES_URL
 * (default: the local server); when it is unreachable the PostgreSQL tests fail, never skip.
 *
 * Only what more than one folder could use lives here; a folder's `support.ts` keeps what is
 * about that suite alone, and child processes have their own module (processes.ts).
 */
import Database from "better-sqlite3";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach } from "vitest";
import { Duro, DuroClient, type DuroConfig, type Workflow } from "../src/index.js";

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

/** A factory of DuroClients on a URL, each closed after the test. */
export function useClients() {
  const clients: DuroClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  return (url: string): DuroClient => {
    const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
    clients.push(client);
    return client;
  };
}

/**
 * The closest a single process gets to a power cut. `shutdown()` stops the executor without
 * letting running workflows finish: their rows stay PENDING and the next `launch()` of an
 * instance with the same executorId recovers them.
 */
export async function crash(duro: Duro): Promise<void> {
  await duro.shutdown();
}

/**
 * A crash point for `crash(duro)`: a step named "hang" (register it with `register(duro)`) that
 * blocks forever while `state.on` is true, so a workflow can be caught mid-run; `reached(n)`
 * waits until it has been entered `n` times. Set `state.on = false` before recovery.
 */
export function hangPoint() {
  const state = { on: true, entered: 0 };
  const never = gate();
  const register = (duro: Duro) =>
    duro.registerStep("hang", async () => {
      state.entered++;
      if (state.on) await never.promise;
    });
  return { state, register, reached: (n = 1) => waitFor(() => state.entered >= n, 10_000, "the hang step") };
}

/**
 * Starts `workflowId` on executor e1 with the workflow `build` registers, crashes e1 once the
 * workflow reaches `hang`, and launches e1 again with the same code, which recovers it.
 */
export async function crashedAndRelaunched<A extends unknown[]>(
  t: ReturnType<typeof useDuro>, hang: ReturnType<typeof hangPoint>, build: (duro: Duro) => Workflow<A, unknown>, workflowId: string, ...args: A
): Promise<Duro> {
  const first = t.duro({ executorId: "e1" });
  const wf = build(first);
  await first.launch();
  await first.startWorkflow(wf.with({ workflowId }), ...args);
  await hang.reached();
  await crash(first);
  hang.state.on = false;
  const second = t.duro({ executorId: "e1" });
  build(second);
  await second.launch();
  return second;
}

/**
 * Reads or writes the database behind a duro URL directly, for the few tests that are about
 * what is stored (portable JSON, schema version, raw rows). Placeholders are written `$1, $2, …`
 * for both backends; tables are unqualified (the PostgreSQL schema of the URL is put on the
 * search path).
 */
export async function rawQuery(url: string, sql: string, params: unknown[] = []): Promise<Record<string, any>[]> {
  if (url.startsWith("sqlite:")) {
    const db = new Database(url.slice("sqlite:".length));
    try {
      const statement = db.prepare(sql.replace(/\$\d+/g, "?"));
      return statement.reader ? (statement.all(...params) as Record<string, any>[]) : (statement.run(...params), []);
    } finally {
      db.close();
    }
  }
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema") ?? "duro";
  parsed.searchParams.delete("schema");
  const client = new pg.Client({ connectionString: parsed.toString() });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema.replaceAll('"', '""')}"`);
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The status of workflow `id` (undefined if there is none), from a Duro or a DuroClient. */
export async function statusOf(duro: { getWorkflowStatus(id: string): Promise<{ status: string } | null> }, id: string): Promise<string | undefined> {
  return (await duro.getWorkflowStatus(id))?.status;
}

export async function waitForStatus(duro: { getWorkflowStatus(id: string): Promise<{ status: string } | null> }, id: string, status: string, timeoutMs = 10_000) {
  await waitFor(async () => (await statusOf(duro, id)) === status, timeoutMs, `${id} to be ${status}`);
}

/** The error `promise` rejects with; fails the test if it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`Expected a rejection, but the promise resolved to ${JSON.stringify(value) ?? String(value)}.`);
}

/** `promise`, or a rejection naming `what` if it has not settled within `ms`. */
export function within<T>(ms: number, promise: Promise<T>, what = "the operation"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Milliseconds since `start` (a `performance.now()` reading). */
export function since(start: number): number {
  return performance.now() - start;
}

/**
 * A fixed pause: only where a test must show that something does *not* happen for a while, or
 * a step body must take time. Anything that can be awaited is awaited instead (waitFor).
 */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits until the wall clock has moved past `ms`, so the next row gets a later creation time. */
export async function clockPast(ms: number): Promise<void> {
  while (Date.now() <= ms) await sleep(1);
}

/** [1, 2, …, n]: workflow numbers, step numbers, dense function IDs. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/**
 * Workflow "late": sleeps 1.5 s, then runs step "after" (counted in `runs.after`). `start()`
 * (after launch) starts it as "due" with a 0.5 s timeout, so its deadline passes mid-sleep, and
 * returns once the sleep is recorded, with the handle and the start time.
 */
export function sleepingPastDeadline(duro: Duro) {
  const runs = { after: 0 };
  const wf = duro.registerWorkflow("late", async () => {
    await duro.sleep(1.5);
    await duro.runStep(async () => void runs.after++, { name: "after" });
    return "finished";
  });
  const start = async () => {
    const handle = await duro.startWorkflow(wf.with({ workflowId: "due", timeoutSeconds: 0.5 }));
    await waitFor(async () => (await duro.listWorkflowSteps("due")).length === 1, 10_000, "the sleep recorded");
    return { handle, startedAt: (await handle.getStatus())!.startedAtEpochMs! };
  };
  return { runs, start };
}
