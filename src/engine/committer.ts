/**
 * Group commit: every hot-path write of every workflow in this process goes through here.
 *
 * States: idle → scheduled (writes queued, flush on the next turn of the event loop) →
 * flushing (up to `maxInFlight` batches in flight; new writes queue) → flushing again with
 * everything that queued meanwhile, or idle. No timer is involved, so a lone workflow waits for
 * nothing but its own commit, and a busy process commits hundreds of checkpoints per transaction.
 *
 * A submission (one call of `submit`) is atomic: its writes land in the same transaction. If a
 * batch fails, its submissions are retried one by one so a bad one cannot sink the others
 * (unless the database itself could not be reached).
 * Each caller's promise resolves only after its transaction committed.
 */
import { DatabaseError, DuroError } from "../errors.js";
import { wakeKeysOf, type Store, type Write, type WriteResult } from "../storage/store.js";
import { currentContext, type Owner, type WorkflowRun } from "./context.js";

export interface Submission {
  writes: Write[];
  resolve: (results: WriteResult[]) => void;
  reject: (error: unknown) => void;
  /** The workflow run that submitted it: interrupted if the database cannot be reached. */
  run?: WorkflowRun;
}

export class Committer {
  private queue: Submission[] = [];
  private scheduled = false;
  private inFlight = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /**
   * Figures for benchmarks and tests: transactions and writes committed, and batches that failed
   * and were split (expected only when a submission is refused: a split batch commits its writes
   * one submission at a time, correct but slow, so a statement that always fails shows here).
   */
  readonly stats = { commits: 0, writes: 0, splits: 0 };

  constructor(
    private readonly store: Store,
    private readonly onCommitted: (wakeKeys: Set<string>) => void,
    /** Batches committing at once (PostgreSQL overlaps one batch's fsync with the next; SQLite commits one at a time anyway). */
    private readonly maxInFlight = 1,
    /** Writes to add to a batch about to commit, if any (see riderOf in queues.ts). */
    private readonly rider?: (batch: Submission[]) => Submission | undefined,
    /** The engine whose runs an unreachable database interrupts (not a workflow that called a DuroClient). */
    private readonly owner?: Owner,
  ) {}

  submit(writes: Write[]): Promise<WriteResult[]> {
    if (this.closed) return Promise.reject(new DuroError("This Duro instance is shut down; no more writes are accepted."));
    return new Promise((resolve, reject) => {
      const run = currentContext()?.run;
      this.queue.push({ writes, resolve, reject, run: run?.owner === this.owner ? run : undefined });
      this.kick();
    });
  }

  async submitOne<K extends Write["kind"]>(write: Write & { kind: K }): Promise<Extract<WriteResult, { kind: K }>> {
    const [result] = await this.submit([write]);
    return result as Extract<WriteResult, { kind: K }>;
  }

  /** Stops accepting writes and waits for the ones already accepted. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idle) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private get idle(): boolean {
    return this.inFlight === 0 && !this.scheduled && this.queue.length === 0;
  }

  /** Flushes on the next turn of the event loop, so every write made in this turn joins the batch. */
  private kick(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length) {
      const rider = this.rider?.(batch);
      if (rider) batch.push(rider);
      this.inFlight++;
      await this.commit(batch);
      this.inFlight--;
    }
    this.kick();
    if (this.idle) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async commit(batch: Submission[]): Promise<void> {
    const writes = batch.flatMap((s) => s.writes);
    try {
      const results = await this.store.write(writes);
      this.stats.commits++;
      this.stats.writes += writes.length;
      let i = 0;
      for (const s of batch) {
        s.resolve(results.slice(i, i + s.writes.length));
        i += s.writes.length;
      }
      this.announce(writes);
    } catch (error) {
      // The database could not be reached (it was retried meanwhile): every submission fails, and
      // the runs that made them end without an outcome, to run again (see Recovery.resumeWhenReachable).
      const unreachable = error instanceof DatabaseError;
      if (batch.length === 1 || unreachable) {
        for (const s of batch) {
          if (unreachable) s.run?.stop("interrupted");
          s.reject(error);
        }
        return;
      }
      this.stats.splits++;
      for (const s of batch) await this.commit([s]);
    }
  }

  private announce(writes: Write[]): void {
    const keys = new Set<string>();
    for (const w of writes) for (const k of wakeKeysOf(w)) keys.add(k);
    if (keys.size) this.onCommitted(keys);
  }
}
