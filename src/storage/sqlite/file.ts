/**
 * Opening a SQLite file for duro: the pragmas (WAL, synchronous=FULL), the migrations, and what
 * to tell the user when the file, not the data, is the trouble (locked, full, read-only, damaged).
 */
import Database from "better-sqlite3";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseError } from "../../errors.js";
import { loadMigrations, migrated, pendingMigrations } from "../migrations.js";
import { WAL_SIZE_LIMIT } from "./checkpointer.js";
import { prepare } from "./statements.js";

/** How long a call waits out another process's lock on the file before it fails with DatabaseError (settable for tests). */
export const busy = { timeoutMs: 10_000 };
/** Of that, how long SQLite itself waits at a time (blocking the event loop); the rest is waited between tries. */
const BUSY_SLICE_MS = 10;
/** SQLite's "another connection holds the lock". */
export const isLocked = (error: unknown) => /^SQLITE_(BUSY|LOCKED)/.test(String((error as { code?: unknown } | undefined)?.code));

/** What to do about a SQLite error that is the file's state, not the data's. */
export function adviceFor(code: string): string {
  if (isLocked({ code })) {
    return "Another connection held a lock on the file for longer than duro waits; end that transaction or lock. Workflows interrupted by it run again from their checkpoints.";
  }
  if (code.startsWith("SQLITE_FULL")) return "The disk is full; free space, and interrupted workflows run again from their checkpoints.";
  if (code.startsWith("SQLITE_READONLY")) {
    return "duro writes to the file (and to its -wal and -shm files beside it) even to read: give this process write access to the file and its directory, or use a writable copy.";
  }
  if (/^SQLITE_(CORRUPT|NOTADB)/.test(code)) {
    return "The file is damaged or is not a SQLite database: restore it from a backup, or point databaseUrl at another file (`sqlite3 <file> 'PRAGMA integrity_check'` shows the damage).";
  }
  return "Check that the path exists, is writable by this process and is on a local disk, or set databaseUrl.";
}

/**
 * Opens `path` (a file, or ":memory:"), brings its schema up to date (with `create: false`, a
 * file without duro's tables or with an older schema is a DatabaseError and is left as it is)
 * and prepares the statements. Errors are DatabaseErrors that say what to do.
 */
export function openFile(path: string, create: boolean, info?: (message: string) => void): { db: Database.Database; statements: ReturnType<typeof prepare> } {
  let db: Database.Database | undefined;
  try {
    // Told to change no schema, a file that is not there is not created either (nor its folders).
    const onDisk = path !== ":memory:";
    if (!create && onDisk && !existsSync(path)) {
      throw new DatabaseError(`There is no SQLite database at "${path}": check the database URL; a Duro (or \`duro migrate\`) creates it.`);
    }
    if (create && onDisk) mkdirSync(dirname(resolve(path)), { recursive: true });
    db = new Database(path, { fileMustExist: !create && onDisk });
    db.pragma(`busy_timeout = ${Math.min(BUSY_SLICE_MS, busy.timeoutMs)}`);
    const all = loadMigrations(new URL("./migrations/", import.meta.url));
    const file = db;
    // Told to change no schema, a file without duro's tables is left as it is (its journal mode too).
    const tracked = file.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'duro_migrations'").get() !== undefined;
    if (!create && !tracked) pendingMigrations(all, 0, path, false); // throws: no duro tables
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma("cache_size = -65536"); // 64 MiB of page cache: hot index pages stay in memory
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`); // a log grown past this shrinks back to it when started over
    if (!tracked) db.exec("CREATE TABLE IF NOT EXISTS duro_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
    const version = () => (file.prepare("SELECT MAX(version) AS v FROM duro_migrations").get() as { v: number | null }).v ?? 0;
    // Up to date: no write lock needed, so a long transaction of another process does not hold up the start.
    if (pendingMigrations(all, version(), path, create).length) {
      const done = file.transaction(() => {
        const from = version();
        for (const migration of pendingMigrations(all, from, path, create)) {
          file.exec(migration.sql);
          file.prepare("INSERT INTO duro_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(migration.version, migration.name, Date.now());
        }
        return migrated(from, version(), `"${path}"`);
      }).immediate();
      if (done) info?.(done);
    }
    db.pragma("analysis_limit = 400");
    try {
      db.pragma("optimize = 0x10002"); // refresh the planner's statistics where they are stale (cheap, bounded)
    } catch (error) {
      // Another process holds the write lock: the statistics wait for the next start.
      if (!isLocked(error)) throw error;
    }
    return { db, statements: prepare(db) };
  } catch (error) {
    db?.close();
    if (error instanceof DatabaseError) throw error;
    const code = String((error as { code?: unknown }).code ?? "");
    throw new DatabaseError(`Cannot open the SQLite database at "${path}": ${(error as Error).message}. ${adviceFor(code)}`, { cause: error });
  }
}
