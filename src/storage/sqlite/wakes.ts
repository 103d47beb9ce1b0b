/**
 * The wake log (schema 5): what other processes sharing a SQLite file may have woken. PostgreSQL
 * tells other processes with NOTIFY; here each write transaction that may have woken something
 * appends its wake keys, and a process that saw the file change (`PRAGMA data_version`) reads
 * what was appended since it last looked, skipping its own entries. So another process's commit
 * re-checks only the waits it concerns, not every wait in the process.
 */
import type Database from "better-sqlite3";
import type { Statement } from "./statements.js";
import { escapeWakeKey, splitWakeKeys } from "../store.js";

/** Entries a writer keeps (it prunes older ones every PRUNE_EVERY entries): a reader this far behind re-checks everything. */
const KEPT = 4096;
const PRUNE_EVERY = 1024;

/** The wake keys of workflows whose status changed (and of their queues), as PostgreSQL's notifyChanged sends them. */
export const changed = (ids: string[]) => (ids.length ? [...ids.map((id) => `status:${id}`), "queue"] : []);

interface Statements {
  logWake: Statement;
  wakesSince: Statement;
  lastWake: Statement;
  pruneWakes: Statement;
}

export class WakeLog {
  /** The last entry read, the entries this process wrote past it, and the one the current transaction wrote. */
  private seq = 0;
  private readonly own = new Set<number>();
  private logged?: number;
  private timer?: NodeJS.Timeout;

  constructor(private readonly s: () => Statements) {}

  get watching(): boolean {
    return this.timer !== undefined;
  }

  /**
   * Watches the file for other processes' commits: every `pollMs` a look at `PRAGMA data_version`
   * (in memory, cheap), and when it changed, `changed` gets what their entries may have woken.
   * What was logged before is not this process's concern.
   */
  watch(db: Database.Database, pollMs: number, changed: (keys: string[] | null) => void): void {
    this.seq = (this.s().lastWake.get() as { seq: number }).seq;
    let version = db.pragma("data_version", { simple: true }) as number;
    this.timer = setInterval(() => {
      if (!db.open) return;
      const now = db.pragma("data_version", { simple: true }) as number;
      if (now === version) return;
      version = now;
      const keys = this.read();
      if (keys?.length !== 0) changed(keys); // steps' records, claims and heartbeats woke nothing: they log nothing
    }, pollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Before each try of a write transaction (one that rolled back left no entry). */
  begin(): void {
    this.logged = undefined;
  }

  /** Appends what this write transaction may have woken, if anything (inside the transaction). */
  log(keys: Iterable<string>): void {
    const joined = [...new Set(keys)].map(escapeWakeKey).join("\n");
    if (!joined) return;
    const seq = Number(this.s().logWake.run(joined).lastInsertRowid);
    if (seq % PRUNE_EVERY === 0) this.s().pruneWakes.run(seq - KEPT);
    this.logged = seq;
  }

  /** After the commit of a transaction that logged: this process's own entry is not news to it. */
  committed<T>(result: T): T {
    const seq = this.logged;
    this.logged = undefined;
    if (seq === undefined || !this.watching) return result;
    if (seq === this.seq + 1) this.seq = seq;
    else this.own.add(seq);
    return result;
  }

  /**
   * What other processes' commits since the last look may have woken; null (re-check
   * everything) when entries were pruned before this process looked. A change with no new entry
   * is no news: `data_version` also changes when another process starts the WAL file over,
   * before its commit lands (a writer that does not log, another tool or an older duro, is seen
   * by the safety poll).
   */
  private read(): string[] | null {
    let rows: { seq: number; keys: string }[];
    try {
      rows = this.s().wakesSince.all(this.seq) as { seq: number; keys: string }[];
    } catch {
      return null;
    }
    if (!rows.length) return [];
    const missed = rows[0].seq !== this.seq + 1;
    this.seq = rows[rows.length - 1].seq;
    if (missed) {
      this.own.clear();
      return null;
    }
    const keys = new Set<string>();
    for (const row of rows) {
      if (this.own.delete(row.seq)) continue;
      for (const key of splitWakeKeys(row.keys)) keys.add(key);
    }
    return [...keys];
  }
}
