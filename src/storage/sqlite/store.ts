/**
 * The embedded backend: one better-sqlite3 connection in WAL mode with `synchronous=FULL`, so a
 * commit that returned is on disk. better-sqlite3 is synchronous, so a batch's transaction runs
 * to the end without yielding; batching comes from the committer collecting every write made
 * while the event loop was busy. Other processes sharing the file are seen through
 * `PRAGMA data_version`, which changes whenever another connection commits, and the wake log
 * (migration 5), which tells what their commits may have woken: every write transaction here
 * appends its wake keys, as a PostgreSQL one sends them with NOTIFY.
 */
import type Database from "better-sqlite3";
import { statSync } from "node:fs";
import { DatabaseError, WorkflowConflictError } from "../../errors.js";
import { Checkpointer } from "./checkpointer.js";
import { claim } from "./claims.js";
import { adviceFor, busy, isLocked, openFile } from "./file.js";
import type { prepare } from "./statements.js";
import { changed, WakeLog } from "./wakes.js";
import {
  isClaimed, type ListDialect, listWorkflowsQuery, operationParams, toOperationRow, toWorkflowRow, WORKFLOW_COLUMNS, workflowParams,
} from "../sql.js";
import {
  EXECUTOR_RETENTION_MS, forkWakeKeys, refusalOf, wakeKeysOf, WRITE_ORDER, type CancelChildren, type Claimed, type ClaimRequest, type ForkRequest, type LoadedWorkflow, type ResumeOptions, type OperationRow, type RecoverRequest, type Store, type StoredValue, type WorkflowFilter,
  type WorkflowRow, type Write, type WriteResult,
} from "../store.js";

const bool = (b: boolean) => (b ? 1 : 0);
/** SQLite compares text by its UTF-8 bytes, in code point order; it reads an IN list's subquery first. */
export const sqliteLists: ListDialect = { boolean: bool, codePointOrder: true, idIn: (subquery) => `workflow_id IN (${subquery})` };

const NOT_OPEN = "The SQLite store is not open: it opens at launch() and closes at shutdown() (a shut-down Duro cannot launch again: create a new one).";

export interface SqliteOptions {
  /** How often to look for commits by other processes, in ms (default 5). */
  changePollMs?: number;
  /** How long opening keeps trying a file another process holds locked, in seconds (default 30). */
  connectTimeoutSeconds?: number;
  info?: (message: string) => void;
}

export class SqliteStore implements Store {
  readonly dialect = "sqlite";
  private db?: Database.Database;
  private closed = false;
  private statements?: ReturnType<typeof prepare>;
  private listeners: ((keys: string[] | null) => void)[] = [];
  private readonly wakes = new WakeLog(() => this.s);
  private checkpointer?: Checkpointer;
  /** The file as opened (device and inode), and when it was last found still there (see checkFile). */
  private opened?: { dev: number; ino: number };
  private checkedAt = 0;

  constructor(
    /** A file path, or ":memory:". */
    readonly path: string,
    private readonly options: SqliteOptions = {},
  ) {}

  /**
   * Opens and migrates the file; a lock held by another process is waited out for
   * connectTimeoutSeconds. With `create: false` it changes no schema (see Store.migrate).
   */
  async migrate({ create = true }: { create?: boolean } = {}): Promise<void> {
    const deadline = Date.now() + (this.options.connectTimeoutSeconds ?? 30) * 1000;
    for (;;) {
      if (this.closed) throw new DatabaseError(`The SQLite store at "${this.path}" was closed while it was being opened.`);
      try {
        return this.open(create);
      } catch (error) {
        if (!isLocked((error as Error).cause) || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  private open(create: boolean): void {
    if (this.db) return;
    const { db, statements } = openFile(this.path, create, this.options.info);
    this.statements = statements;
    this.db = db;
    if (this.path !== ":memory:") {
      this.checkpointer = new Checkpointer(db, this.path);
      this.opened = statSync(this.path);
    }
  }

  /**
   * Runs a storage operation, turning SQLite's "cannot do it now" errors (the file locked by
   * another process past the busy timeout, a full disk, an I/O error) into DatabaseError, as an
   * unreachable PostgreSQL is: a workflow whose checkpoint hits one is interrupted and runs again
   * from its checkpoints later, instead of failing with it. Errors about the data itself stay as they are.
   */
  private async guard<T>(fn: () => T): Promise<T> {
    this.checkFile();
    // Time spent waiting for the lock. A try counts 100 ms at most: a stall of this process itself
    // (a long synchronous task, a stop signal) is not time another process held the lock.
    let waited = 0;
    for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
      this.wakes.begin();
      const tried = Date.now();
      try {
        return fn();
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code !== "string") throw error;
        // Locked by another process: wait between tries, not inside SQLite, which would block this
        // process's event loop (timers, sockets, an HTTP server) for as long as the lock is held.
        if (isLocked(error) && waited < busy.timeoutMs) {
          await new Promise((resolve) => setTimeout(resolve, pause));
          waited += Math.min(Date.now() - tried, 100);
          continue;
        }
        if (/^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL|NOMEM|READONLY|CORRUPT|NOTADB)/.test(code)) {
          throw new DatabaseError(`The SQLite database at "${this.path}" could not be used: ${(error as Error).message}. ${adviceFor(code)}`, { cause: error });
        }
        throw error;
      }
    }
  }

  /**
   * Refuses to go on (at most a second late) once the file this process opened was deleted or
   * replaced under it: SQLite would go on writing to the unlinked file, which no other process
   * and no restart would ever see, and a restart would start over with an empty database.
   */
  private checkFile(): void {
    if (!this.opened || Date.now() - this.checkedAt < 1000) return;
    let now: { dev: number; ino: number } | undefined;
    try {
      now = statSync(this.path);
    } catch {
      // gone (or out of reach)
    }
    if (now && now.dev === this.opened.dev && now.ino === this.opened.ino) {
      this.checkedAt = Date.now();
      return;
    }
    throw new DatabaseError(
      `The SQLite file "${this.path}" was deleted or replaced while this process had it open: what it wrote since is in a file no other ` +
        "process and no restart would find, so duro stops using it. Put the file back, or stop this process (its unrecorded work runs again " +
        "wherever the file it recorded to is opened).",
    );
  }

  private get s() {
    if (!this.statements) throw new DatabaseError(NOT_OPEN);
    return this.statements;
  }

  private get conn(): Database.Database {
    if (!this.db) throw new DatabaseError(NOT_OPEN);
    return this.db;
  }

  async write(batch: Write[], options: { allOrNothing?: boolean } = {}): Promise<WriteResult[]> {
    return this.guard(() => {
      const results: WriteResult[] = new Array(batch.length);
      const order = batch.map((_, i) => i).sort((a, b) => WRITE_ORDER.indexOf(batch[a].kind) - WRITE_ORDER.indexOf(batch[b].kind));
      this.conn.transaction(() => {
        for (const i of order) {
          const write = batch[i];
          results[i] = this.apply(write);
          const r = results[i];
          const refusal = options.allOrNothing && write.kind === "insertWorkflow" ? refusalOf(write.row, r) : undefined;
          if (refusal) throw refusal;
        }
        this.wakes.log(batch.flatMap(wakeKeysOf));
      }).immediate();
      return this.wakes.committed(results);
    });
  }

  private apply(write: Write): WriteResult {
    const s = this.s;
    switch (write.kind) {
      case "insertWorkflow": {
        // Writes are applied one at a time in one transaction, so nothing queues in between.
        const claimed = write.claimed !== undefined && !(s.queueWaiting.get(write.row.queueName) as { waiting: number }).waiting;
        if (s.insertWorkflow.run(...workflowParams(claimed ? write.claimed! : write.row, write.ownerToken, bool)).changes === 1) {
          return { kind: "insertWorkflow", inserted: true, claimed };
        }
        const existing = s.workflowOwner.get(write.row.workflowId) as Record<string, unknown> | undefined;
        if (existing?.owner_token === write.ownerToken) return { kind: "insertWorkflow", inserted: true, claimed: isClaimed(write, existing) };
        return { kind: "insertWorkflow", inserted: false, existing: existing ? toWorkflowRow(existing) : null };
      }
      case "recordOperation": {
        const { op, executorId } = write;
        const insert = write.afterCancel ? s.insertOperationAfterCancel : s.insertOperation;
        if (insert.run(...operationParams(op), op.workflowId, executorId).changes === 1) return { kind: "recordOperation", recorded: true };
        const existing = s.operation.get(op.workflowId, op.functionId) as object | undefined;
        // Fenced off (not PENDING here) whoever recorded the operation: a run left here after a takeover stops, not adopts.
        const fenced = !write.afterCancel && !s.owned.get(op.workflowId, executorId);
        return { kind: "recordOperation", recorded: false, existing: existing && !fenced ? toOperationRow(existing) : null };
      }
      case "send": {
        if (!s.exists.get(write.destinationId)) return { kind: "send", delivered: false, destinationExists: false };
        const { value, serialization } = write.message;
        const changes = s.insertMessage.run(write.messageId, write.destinationId, write.topic, value, serialization, write.createdAt).changes;
        return { kind: "send", delivered: changes === 1, destinationExists: true };
      }
      case "recv": {
        const { op, executorId } = write;
        const recorded = s.operation.get(op.workflowId, op.functionId) as object | undefined;
        if (recorded) return { kind: "recv", message: null, existing: toOperationRow(recorded), fenced: false };
        if (!s.owned.get(op.workflowId, executorId)) return { kind: "recv", message: null, existing: null, fenced: true };
        if (write.deadline) s.insertOperation.run(...operationParams(write.deadline), op.workflowId, executorId);
        const message = s.oldestMessage.get(write.destinationId, write.topic) as { seq: number; message: string; serialization: string } | undefined;
        if (!message) return { kind: "recv", message: null, existing: null, fenced: false };
        s.consumeMessage.run(message.seq);
        const stored = { value: message.message, serialization: message.serialization } as StoredValue;
        s.insertOperation.run(...operationParams({ ...op, output: stored.value, serialization: stored.serialization }), op.workflowId, executorId);
        return { kind: "recv", message: stored, existing: null, fenced: false };
      }
      case "setEvent": {
        const { value, serialization } = write.value;
        s.upsertEvent.run(write.workflowId, write.key, value, serialization);
        s.insertEventHistory.run(write.workflowId, write.functionId, write.key, value, serialization);
        return { kind: "setEvent" };
      }
      case "writeStream": {
        const done = write.once ? (s.streamByFunction.get(write.workflowId, write.key, write.functionId) as { offset: number } | undefined) : undefined;
        if (done) return { kind: "writeStream", offset: done.offset };
        const { offset } = s.appendStream.get(
          write.workflowId, write.key, write.functionId, write.value?.value ?? null, write.value?.serialization ?? null, write.workflowId, write.key,
        ) as { offset: number };
        return { kind: "writeStream", offset };
      }
      case "completeWorkflow": {
        const changes = s.complete.run(write.status, write.output, write.error, write.completedAt, write.completedAt, write.workflowId, write.executorId).changes;
        return { kind: "completeWorkflow", completed: changes === 1 };
      }
      case "claimQueued":
        return { kind: "claimQueued", ...claim(this.conn, this.s, write.request) };
    }
  }

  async loadWorkflows(workflowIds: string[]): Promise<LoadedWorkflow[]> {
    return this.guard(() =>
      this.conn.transaction(() =>
        workflowIds.flatMap((workflowId) => {
          const row = this.s.workflow.get(workflowId) as Record<string, unknown> | undefined;
          if (!row) return [];
          const operations = (this.s.operations.all(workflowId, -1, 0) as Record<string, unknown>[]).map(toOperationRow);
          return [{ workflow: toWorkflowRow(row), operations }];
        }),
      )(),
    );
  }

  async listWorkflows(filter: WorkflowFilter): Promise<WorkflowRow[]> {
    return this.guard(() => {
      const { sql, params } = listWorkflowsQuery("workflow_status", filter, sqliteLists);
      return (this.conn.prepare(sql).all(...params) as Record<string, unknown>[]).map(toWorkflowRow);
    });
  }

  async listOperations(workflowId: string, limit?: number, offset?: number): Promise<OperationRow[]> {
    return this.guard(() => (this.s.operations.all(workflowId, limit ?? -1, offset ?? 0) as Record<string, unknown>[]).map(toOperationRow));
  }

  async recoverPending({ executorId, appVersion, maxRecoveryAttempts, now, leaseMs, workflowNames }: RecoverRequest) {
    return this.guard(() => {
      const s = this.s;
      return this.wakes.committed(this.conn.transaction(() => {
        if (leaseMs === undefined) s.forgetExecutors.run(now - EXECUTOR_RETENTION_MS, executorId);
        const taken = leaseMs === undefined ? s.countAttempt.all(now, executorId, appVersion) : s.takeOver.all(executorId, now, appVersion, executorId, JSON.stringify(workflowNames ?? []), now - leaseMs);
        const rows = (taken as Record<string, unknown>[]).map(toWorkflowRow);
        const recovered: WorkflowRow[] = [];
        const deadLettered: string[] = [];
        for (const row of rows) {
          if (row.recoveryAttempts > maxRecoveryAttempts + 1) {
            s.deadLetter.run(now, now, row.workflowId);
            deadLettered.push(row.workflowId);
          } else recovered.push(row);
        }
        this.wakes.log(changed(deadLettered));
        return { recovered, deadLettered };
      }).immediate());
    });
  }

  async getEvent(workflowId: string, key: string): Promise<StoredValue | null> {
    return this.guard(() => (this.s.event.get(workflowId, key) as StoredValue | undefined) ?? null);
  }

  async getAllEvents(workflowId: string): Promise<Map<string, StoredValue>> {
    const rows = await this.guard(() => this.s.events.all(workflowId) as (StoredValue & { key: string })[]);
    return new Map(rows.map(({ key, value, serialization }) => [key, { value, serialization }]));
  }

  async readStream(workflowId: string, key: string, offset: number) {
    return this.guard(() => {
      const rows = this.s.readStream.all(workflowId, key, offset) as { value: string | null; serialization: StoredValue["serialization"] | null }[];
      const end = rows.findIndex((r) => r.value === null);
      const values = (end === -1 ? rows : rows.slice(0, end)).map((r) => ({ value: r.value!, serialization: r.serialization! }));
      return { values, closed: end !== -1 };
    });
  }

  async streamClosedBefore(workflowId: string, key: string, offset: number): Promise<boolean> {
    return this.guard(() => Boolean((this.s.streamClosedBefore.get(workflowId, key, offset) as { closed: number }).closed));
  }

  async cancelWorkflows(workflowIds: string[], now: number, children: CancelChildren): Promise<string[]> {
    return this.guard(() => {
      const params = { ids: JSON.stringify(workflowIds), now, children };
      return this.wakes.committed(this.conn.transaction(() => {
        const ids = (this.s.cancel.all(params) as { workflow_id: string }[]).map((r) => r.workflow_id);
        this.wakes.log(changed(ids));
        return ids;
      }).immediate());
    });
  }

  async resumeWorkflows(workflowIds: string[], { queueName, executorId, now, appVersion, otherVersionsQueue }: ResumeOptions) {
    return this.guard(() => {
      const db = this.conn;
      return this.wakes.committed(db.transaction(() => {
        const ids = JSON.stringify(workflowIds);
        const found = (db.prepare(`SELECT COUNT(*) AS n FROM workflow_status WHERE workflow_id IN (SELECT value FROM json_each(?))`).get(ids) as { n: number }).n;
        if (found !== new Set(workflowIds).size) return null;
        // Runs on the resuming executor: no queue was given and the row is of its app version (or of none).
        const here = "(@queue IS NULL AND (app_version IS NULL OR app_version = @version))";
        const rows = db
          .prepare(
            `UPDATE workflow_status SET status = CASE WHEN ${here} THEN 'PENDING' ELSE 'ENQUEUED' END,
               queue_name = CASE WHEN ${here} THEN NULL ELSE COALESCE(@queue, @otherQueue) END,
               executor_id = CASE WHEN ${here} THEN @executor END, started_at = CASE WHEN ${here} THEN @now END,
               recovery_attempts = CASE WHEN ${here} THEN 1 ELSE 0 END,
               app_version = CASE WHEN ${here} THEN COALESCE(app_version, @version) ELSE app_version END,
               deadline_epoch_ms = CASE WHEN ${here} THEN @now + timeout_ms END,
               deduplication_id = NULL, completed_at = NULL, output = NULL, error = NULL, updated_at = @now
             WHERE workflow_id IN (SELECT value FROM json_each(@ids)) AND status NOT IN ('SUCCESS', 'ERROR')
             RETURNING ${WORKFLOW_COLUMNS.filter((c) => c !== "owner_token").join(", ")}`,
          )
          .all({ queue: queueName, version: appVersion, otherQueue: otherVersionsQueue, executor: executorId, now, ids }) as Record<string, unknown>[];
        const resumed = rows.map(toWorkflowRow);
        // A row that left its queue for this executor frees a slot too: its queue is told either way.
        this.wakes.log(changed(resumed.map((r) => r.workflowId)));
        return resumed;
      }).immediate());
    });
  }

  async forkWorkflow(request: ForkRequest): Promise<WorkflowRow | null> {
    return this.guard(() => {
      const s = this.s;
      return this.wakes.committed(this.conn.transaction(() => {
        const original = s.workflow.get(request.workflowId) as Record<string, unknown> | undefined;
        if (!original) return null;
        const source = toWorkflowRow(original);
        const { newWorkflowId: id, queueName, now, startStep } = request;
        const row: WorkflowRow = {
          ...source, workflowId: id, status: queueName ? "ENQUEUED" : "PENDING", output: null, error: null, executorId: queueName ? null : request.executorId,
          appVersion: request.appVersion, createdAt: now, updatedAt: now, startedAt: queueName ? null : now, completedAt: null,
          recoveryAttempts: queueName ? 0 : 1, queueName, priority: 0, deduplicationId: null, partitionKey: request.partitionKey, timeoutMs: request.timeoutMs,
          deadlineEpochMs: request.timeoutMs !== null && !queueName ? now + request.timeoutMs : null, delayUntilEpochMs: null,
          parentWorkflowId: null, forkedFrom: source.workflowId, wasForkedFrom: false,
        };
        if (s.insertWorkflow.run(...workflowParams(row, null, bool)).changes === 0) {
          const taken = s.workflow.get(id) as Record<string, unknown> | undefined;
          throw new WorkflowConflictError(id, String(taken?.name ?? "?"), source.name);
        }
        s.markForked.run(now, source.workflowId);
        s.copyOperations.run(id, source.workflowId, startStep);
        s.copyEventHistory.run(id, source.workflowId, startStep);
        s.rebuildEvents.run(id);
        s.copyStreams.run(id, source.workflowId, startStep);
        this.wakes.log(forkWakeKeys(row));
        return row;
      }).immediate());
    });
  }

  async setWorkflowDelay(workflowId: string, delayUntilEpochMs: number, now: number): Promise<string | null> {
    return this.guard(() => {
      return this.wakes.committed(this.conn.transaction(() => {
        const row = this.s.setDelay.get(delayUntilEpochMs, now, workflowId) as { queue_name: string } | undefined;
        this.wakes.log(row ? [`due:${delayUntilEpochMs}:${row.queue_name}`] : []);
        return row?.queue_name ?? null;
      }).immediate());
    });
  }

  async claimQueued(request: ClaimRequest): Promise<Claimed> {
    return this.guard(() => claim(this.conn, this.s, request));
  }

  async queuesWithWork(queueNames: string[], now: number): Promise<string[]> {
    return this.guard(() => (this.s.queuesWithWork.all(JSON.stringify(queueNames), now) as { name: string }[]).map((r) => r.name));
  }

  async heartbeat(executorId: string, appVersion: string, clock: () => number): Promise<number> {
    return this.guard(() => {
      const now = clock();
      this.conn.transaction(() => {
        this.s.versionSeen.run(appVersion, now);
        this.s.heartbeat.run(executorId, now, appVersion);
      })();
      return now;
    });
  }

  async leave(executorId: string, appVersion: string): Promise<void> {
    return this.guard(() => void this.s.leave.run(executorId, appVersion));
  }

  onExternalChange(listener: (keys: string[] | null) => void): void {
    this.listeners.push(listener);
    // A database in memory is this connection's alone: no other process commits to it.
    if (this.wakes.watching || !this.db || this.path === ":memory:") return;
    this.wakes.watch(this.db, this.options.changePollMs ?? 5, (keys) => {
      for (const l of this.listeners) l(keys);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.checkpointer?.close();
    this.checkpointer = undefined;
    this.wakes.stop();
    this.listeners = [];
    this.db?.close();
    this.db = undefined;
    this.statements = undefined;
  }
}
