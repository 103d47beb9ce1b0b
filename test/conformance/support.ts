/**
 * Helpers for the conformance suite only (the general ones are in ../helpers.ts).
 *
 * - `crash(duro)`: the closest a single process gets to a power cut. `shutdown()` stops the
 *   executor without letting running workflows finish: their rows stay PENDING and the next
 *   `launch()` of an instance with the same executorId recovers them.
 * - `rawQuery(url, sql, params)`: reads or writes the database behind a duro URL directly, for
 *   the few tests that are about what is stored (portable JSON, schema version). Placeholders
 *   are written `$1, $2, …` for both backends; tables are unqualified (the PostgreSQL schema of
 *   the URL is put on the search path).
 */
import Database from "better-sqlite3";
import pg from "pg";
import type { Duro } from "../../src/index.js";

export async function crash(duro: Duro): Promise<void> {
  await duro.shutdown();
}

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

/** Milliseconds since `start` (a `performance.now()` reading). */
export function since(start: number): number {
  return performance.now() - start;
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
