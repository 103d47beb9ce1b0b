/**
 * The storage interface: a short list of domain operations, each one transaction. The engine
 * speaks only this; `sqlite/` and `postgres/` implement it and never see user code.
 *
 * Glossary
 * - workflow row: one durable workflow execution, keyed by its workflow ID.
 * - operation: a numbered, recorded durable call inside a workflow (step, sleep, child start,
 *   send, recv, …), keyed by (workflow ID, function ID). Recorded once, never overwritten.
 * - write: one hot-path mutation. Writes are applied in batches — one transaction for a whole
 *   batch — which is how concurrent workflows share commits (see engine/committer.ts).
 * - wake key: a string naming something a waiter can wait for ("status:<id>", "message:<id>",
 *   "event:<id>", "stream:<id>", "queue:<name>", or "queue" for every queue). A batch's wake keys
 *   are announced after it commits.
 */
import { DuplicateWorkflowError, WorkflowConflictError } from "../errors.js";
import type { SerializationFormat } from "../serialization.js";

export type WorkflowStatusString =
  | "ENQUEUED"
  | "DELAYED"
  | "PENDING"
  | "SUCCESS"
  | "ERROR"
  | "CANCELLED"
  | "MAX_RECOVERY_ATTEMPTS_EXCEEDED";

export interface WorkflowRow {
  workflowId: string;
  status: WorkflowStatusString;
  name: string;
  authenticatedUser: string | null;
  /** Serialized payloads, in `serialization`; null when not loaded or absent. */
  inputs: string | null;
  output: string | null;
  error: string | null;
  serialization: SerializationFormat;
  executorId: string | null;
  appVersion: string | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  completedAt: number | null;
  recoveryAttempts: number;
  queueName: string | null;
  priority: number;
  deduplicationId: string | null;
  partitionKey: string | null;
  timeoutMs: number | null;
  deadlineEpochMs: number | null;
  delayUntilEpochMs: number | null;
  parentWorkflowId: string | null;
  forkedFrom: string | null;
  wasForkedFrom: boolean;
}

export interface OperationRow {
  workflowId: string;
  functionId: number;
  functionName: string;
  output: string | null;
  error: string | null;
  serialization: SerializationFormat | null;
  childWorkflowId: string | null;
  startedAt: number | null;
  completedAt: number | null;
}

export interface StoredValue {
  value: string;
  serialization: SerializationFormat;
}

/** Hot-path mutations, applied in batches (one transaction per batch, in this order of kinds). */
export type Write =
  /**
   * Insert a workflow unless its ID exists. `ownerToken` tells our own insert apart on a retried
   * commit. `claimed`: the same queued workflow already dequeued by the writer (PENDING on its
   * executor), to be inserted instead of `row` when no other workflow of its queue is ENQUEUED,
   * which saves the claim; a store may always insert `row` instead.
   */
  | { kind: "insertWorkflow"; row: WorkflowRow; ownerToken: string; claimed?: WorkflowRow }
  /**
   * Record an operation unless (workflowId, functionId) is recorded already — and only while the
   * workflow is PENDING on `executorId`: a cancelled or taken-over run can record nothing more.
   * `afterCancel`: or CANCELLED (still on `executorId`), or ENQUEUED on no executor (resumed onto a
   * queue), for an operation that was under way when that came; what it did stays done. Or
   * finished (SUCCESS or ERROR, on `executorId`): a step the workflow returned without awaiting.
   */
  | { kind: "recordOperation"; op: OperationRow; executorId: string; afterCancel?: boolean }
  /** Deliver a message unless `messageId` was delivered; the destination must exist. */
  | { kind: "send"; messageId: string; destinationId: string; topic: string; message: StoredValue; createdAt: number }
  /**
   * Take the oldest unconsumed message on a topic and record it as operation `op` (output = the
   * message), fenced like recordOperation. `deadline`: the timeout's wake-up time, recorded with
   * the first look whether a message is there or not (unless some run recorded it already).
   */
  | { kind: "recv"; destinationId: string; topic: string; op: OperationRow; executorId: string; deadline?: OperationRow }
  /** Set an event's value (last wins) and keep its history under the operation's function ID. */
  | { kind: "setEvent"; workflowId: string; key: string; functionId: number; value: StoredValue }
  /**
   * Append a value (or the end marker, `value: null`) to a stream; the offset is the next free one.
   * With `once`, a value already written by this (workflow, key, functionId) is not written again
   * (a workflow's own write replayed); without it (writes from inside a step) every call appends.
   */
  | { kind: "writeStream"; workflowId: string; key: string; functionId: number; once: boolean; value: StoredValue | null }
  /** Set the outcome of a workflow, only while it is PENDING on `executorId`. */
  | {
      kind: "completeWorkflow";
      workflowId: string;
      status: "SUCCESS" | "ERROR";
      output: string | null;
      error: string | null;
      completedAt: number;
      /** The queue the workflow ran from, whose dispatchers a completion may unblock. */
      queueName: string | null;
      executorId: string;
    }
  /**
   * Claim queued work as Store.claimQueued does, in the batch's transaction: only for a queue
   * without shared limits (no concurrency, rate limit or partitions). Applied last, so the
   * slots the batch's completions free can be filled in the same commit.
   */
  | { kind: "claimQueued"; request: ClaimRequest };

/** What a claim took, when the queue's next DELAYED workflow is due (null: none), and whether ENQUEUED work is left. */
export interface Claimed {
  claimed: { workflow: WorkflowRow; operations: OperationRow[] }[];
  nextDelayedAt: number | null;
  moreQueued: boolean;
  /** Of a rate-limited queue: in how many ms its window next lets a start in (its oldest start leaves it), if it holds any. */
  rateOpensInMs?: number;
}

export type WriteResult =
  /** `claimed`: the `claimed` form went in. */
  | { kind: "insertWorkflow"; inserted: true; claimed?: boolean }
  /** `existing` is the row that holds the ID, or null when a queued duplicate (same queue and deduplication ID) refused it. */
  | { kind: "insertWorkflow"; inserted: false; existing: WorkflowRow | null }
  | { kind: "recordOperation"; recorded: true }
  /** `existing` is the record that was there first, or null when the run is fenced off (not PENDING on that executor). */
  | { kind: "recordOperation"; recorded: false; existing: OperationRow | null }
  | { kind: "send"; delivered: boolean; destinationExists: boolean }
  | { kind: "recv"; message: StoredValue | null; existing: OperationRow | null; fenced: boolean }
  | { kind: "setEvent" }
  | { kind: "writeStream"; offset: number }
  | { kind: "completeWorkflow"; completed: boolean }
  | ({ kind: "claimQueued" } & Claimed);

/** The order in which a batch's kinds are applied inside its transaction. */
export const WRITE_ORDER: Write["kind"][] = [
  "insertWorkflow",
  "recordOperation",
  "send",
  "recv",
  "setEvent",
  "writeStream",
  "completeWorkflow",
  "claimQueued",
];

/**
 * Why the insert of `row` did not go in, as the error an all-or-nothing batch fails with:
 * its queue's deduplication ID is taken, or its ID is another workflow's. Undefined: it went in,
 * or the same workflow was there already (an idempotent start).
 */
export function refusalOf(row: WorkflowRow, result: WriteResult): Error | undefined {
  if (result.kind !== "insertWorkflow" || result.inserted) return undefined;
  if (result.existing === null) return new DuplicateWorkflowError(row.queueName ?? "", row.deduplicationId ?? "");
  if (result.existing.name !== row.name) return new WorkflowConflictError(row.workflowId, result.existing.name, row.name);
  return undefined;
}

/**
 * Wake keys of one event or stream key of a workflow: a waiter on one key is not woken by writes
 * to the others (a workflow publishing progress under one key while thousands wait for another
 * re-checked every one of them per write). A fork, which copies them all, wakes the workflow's
 * whole-workflow key (`event:<id>`, `stream:<id>`), which those waiters hear too.
 */
const wholeWorkflowKey = (kind: "event" | "stream", workflowId: string) => `${kind}:${workflowId}`;
const keyWakeKey = (kind: "event" | "stream", workflowId: string, key: string) => `${kind}:${workflowId}:${key}`;
/** What a waiter on one event or stream key listens to: that key's writes, and forks. */
export const wakeKeysOfKey = (kind: "event" | "stream", workflowId: string, key: string) =>
  [keyWakeKey(kind, workflowId, key), wholeWorkflowKey(kind, workflowId)];

/**
 * Wake keys travel to other processes joined by "\n" (NOTIFY payloads, the SQLite wake log), and
 * IDs and event keys may hold newlines: each key's backslashes and newlines go escaped.
 */
export const escapeWakeKey = (key: string) => key.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
export const splitWakeKeys = (joined: string) => joined.split("\n").map((key) => key.replace(/\\([\\n])/g, (_, c) => (c === "n" ? "\n" : "\\")));

/** What a committed write may have woken, across processes as well as in this one. */
export function wakeKeysOf(write: Write): string[] {
  switch (write.kind) {
    case "insertWorkflow":
      // An insert that may go in claimed wakes no dispatcher: if it is queued after all, the
      // writer, which held a slot for it, claims it. A new workflow wakes whoever waits for one
      // to appear ("created"); a key per workflow would make a batch's NOTIFY as long as its IDs.
      // A DELAYED one tells when it is due ("due:<epoch ms>:<queue>"), so that an executor whose
      // slots are all taken still promotes it then.
      if (write.row.status === "DELAYED") return [`due:${write.row.delayUntilEpochMs}:${write.row.queueName}`, "created"];
      return write.row.queueName && !write.claimed ? [`queue:${write.row.queueName}`, "created"] : ["created"];
    case "send":
      return [`message:${write.destinationId}`];
    case "setEvent":
      return [keyWakeKey("event", write.workflowId, write.key)];
    case "writeStream":
      return [keyWakeKey("stream", write.workflowId, write.key)];
    case "completeWorkflow":
      // Stream readers hear the status too: the workflow's end ends its streams.
      return [`status:${write.workflowId}`, ...(write.queueName ? [`queue:${write.queueName}`] : [])];
    default:
      return [];
  }
}

/** What a fork may wake: waits for a new workflow (as its insert would), and waits on its status and on the events and streams it copied. */
export function forkWakeKeys(row: WorkflowRow): string[] {
  const id = row.workflowId;
  return [...wakeKeysOf({ kind: "insertWorkflow", row, ownerToken: "" }), `status:${id}`, wholeWorkflowKey("event", id), wholeWorkflowKey("stream", id)];
}

/** Which descendants a cancel takes: a deadline's cancel spares children started with no deadline (timeoutSeconds null). */
export type CancelChildren = "none" | "all" | "timed";

/** Store-level filter for listing workflows: every array means "one of". */
export interface WorkflowFilter {
  workflowIds?: string[];
  status?: WorkflowStatusString[];
  startTime?: number;
  endTime?: number;
  name?: string[];
  appVersion?: string[];
  forkedFrom?: string[];
  parentWorkflowId?: string[];
  user?: string[];
  queueName?: string[];
  executorId?: string[];
  workflowIdPrefix?: string[];
  limit?: number;
  offset?: number;
  sortDesc?: boolean;
  loadInput?: boolean;
  loadOutput?: boolean;
  queuesOnly?: boolean;
  wasForkedFrom?: boolean;
  hasParent?: boolean;
}

/**
 * How long an executor that left no PENDING work is remembered after its last beat. A deployment
 * that names executors after its pods or hosts leaves one row per name ever used; past this
 * they go (at a launch), and one that beats again comes back. No lease comes near it, and an
 * executor's row matters only while it has work to take over or says which version is live.
 */
export const EXECUTOR_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface LoadedWorkflow {
  workflow: WorkflowRow;
  operations: OperationRow[];
}

export interface RecoverRequest {
  /** The executor that takes the work. */
  executorId: string;
  appVersion: string;
  /** Rows whose attempts exceed `maxRecoveryAttempts + 1` after counting this one are dead-lettered. */
  maxRecoveryAttempts: number;
  now: number;
  /**
   * Absent: take this executor's own PENDING work (recovery at launch), and forget the executors
   * silent for EXECUTOR_RETENTION_MS that left no PENDING work. Present: take the PENDING
   * work of every other executor whose heartbeat is older than `now - leaseMs` (takeover); each
   * row changes owner in one conditional update, so two executors never adopt the same workflow.
   */
  leaseMs?: number;
  /** Takeover only: the workflow names the taker can run; others stay for an executor that can. */
  workflowNames?: string[];
}

export interface ClaimRequest {
  queueName: string;
  executorId: string;
  appVersion: string;
  /** When the claim was asked for; the claim itself is stamped when it holds the queue (PostgreSQL: by the database's clock). */
  now: number;
  /** At most this many rows in all (this executor's free worker slots, or a batch size). */
  max: number;
  /** Partitioned queues: most running on this executor per partition, and how many run here now (by partition key). */
  perPartition?: { workerConcurrency: number; running: Record<string, number> };
  /** Workflow names this executor can run; others stay queued for an executor that can. */
  workflowNames: string[];
  /** Most PENDING workflows of the queue across all executors (per partition when partitioned). */
  concurrency?: number;
  /** Most starts in any window of `periodMs` across all executors (per partition when partitioned). */
  rateLimit?: { limit: number; periodMs: number };
  partitioned: boolean;
  /** Executors whose heartbeat is older are gone: the newest version among the others runs queued work of no version. */
  liveSince: number;
}

/** The partitions of a key whose workerConcurrency this executor's runs fill: a claim passes them over. */
export function partitionsFullHere({ perPartition }: ClaimRequest): string[] {
  if (!perPartition) return [];
  return Object.entries(perPartition.running).filter(([key, n]) => key !== "" && n >= perPartition.workerConcurrency).map(([key]) => key);
}

export interface ResumeOptions {
  queueName: string | null;
  executorId: string;
  appVersion: string;
  otherVersionsQueue: string;
  now: number;
}

export interface ForkRequest {
  workflowId: string;
  newWorkflowId: string;
  /** Operations with function ID below this are copied (with events and stream values). */
  startStep: number;
  /** Null: any executor's version may run it. */
  appVersion: string | null;
  /** Null: the fork starts PENDING on `executorId`; else it is ENQUEUED there. */
  queueName: string | null;
  partitionKey: string | null;
  executorId: string;
  timeoutMs: number | null;
  now: number;
}
export interface Store {
  readonly dialect: "sqlite" | "postgres";
  /**
   * Connect, create or upgrade the schema. Safe when several processes launch at once. With
   * `create: false` the schema is left as it is: a database without duro's tables, or with an
   * older schema than this code's, is a DatabaseError (on SQLite the caller checks that the file exists).
   */
  migrate(options?: { create?: boolean }): Promise<void>;
  /**
   * Apply a batch of writes in one transaction; results come back in the writes' order. With
   * `allOrNothing`, a workflow insert refused (see refusalOf) rolls the whole batch back and
   * throws the refusal.
   */
  write(batch: Write[], options?: { allOrNothing?: boolean }): Promise<WriteResult[]>;
  /** Workflows' rows, each with every recorded operation, in one read (those not found are left out). */
  loadWorkflows(workflowIds: string[]): Promise<LoadedWorkflow[]>;
  listWorkflows(filter: WorkflowFilter): Promise<WorkflowRow[]>;
  listOperations(workflowId: string, limit?: number, offset?: number): Promise<OperationRow[]>;
  /**
   * Take PENDING workflows of this app version for another run (this executor's own, or by
   * takeover those of executors gone silent): count the attempt, dead-letter those past the
   * limit (MAX_RECOVERY_ATTEMPTS_EXCEEDED), return the rest.
   */
  recoverPending(request: RecoverRequest): Promise<{ recovered: WorkflowRow[]; deadLettered: string[] }>;
  /** Latest value of one event / of all events of a workflow. */
  getEvent(workflowId: string, key: string): Promise<StoredValue | null>;
  getAllEvents(workflowId: string): Promise<Map<string, StoredValue>>;
  /** Stream values from `offset` on; `closed` once the end marker is among them. */
  readStream(workflowId: string, key: string, offset: number): Promise<{ values: StoredValue[]; closed: boolean }>;
  /** Whether the stream's end marker lies before `offset` (a reader that starts past the end reads nothing). */
  streamClosedBefore(workflowId: string, key: string, offset: number): Promise<boolean>;
  /**
   * Set CANCELLED on these workflows while not finished, and on their descendants: none, all, or
   * (`"timed"`, a deadline's cancel) those with a timeout or deadline, and theirs, and then only
   * those of the given workflows whose deadline has passed by `now` (a resume clears it); returns
   * the IDs that changed.
   */
  cancelWorkflows(workflowIds: string[], now: number, children: CancelChildren): Promise<string[]>;
  /**
   * Restart workflows not SUCCESS/ERROR: with a queue they become ENQUEUED on it, else PENDING on
   * `executorId` (taking `appVersion` if it had none, as a claim does, so a restart recovers it) —
   * but a row of an app version other than `appVersion` becomes ENQUEUED on `otherVersionsQueue`,
   * for an executor of its version. Attempts, deadline and deduplication are
   * reset. All or nothing: returns null (changing nothing) if any ID does not exist. Returns the
   * rows that changed.
   */
  resumeWorkflows(workflowIds: string[], options: ResumeOptions): Promise<WorkflowRow[] | null>;
  /** Copy a workflow into a new one that reuses operations before `startStep`; null if the original does not exist. */
  forkWorkflow(request: ForkRequest): Promise<WorkflowRow | null>;
  /** Move the start time of a DELAYED workflow; returns its queue, or null when it is not DELAYED. */
  setWorkflowDelay(workflowId: string, delayUntilEpochMs: number, now: number): Promise<string | null>;
  /**
   * Claim queued work for one executor, respecting the queue's limits: promotes DELAYED rows
   * whose time has come, then moves up to `max` ENQUEUED rows to PENDING on this executor
   * (counting an attempt, stamping the start and the deadline from the timeout). Returns the
   * claimed rows with their recorded operations (resumed and forked workflows have some), when
   * the queue's next DELAYED workflow is due (null: none), and whether ENQUEUED work is left.
   */
  claimQueued(request: ClaimRequest): Promise<Claimed>;
  /**
   * Housekeeping an executor asks for now and then (PostgreSQL with autovacuum off: autovacuum's
   * work on duro's tables, see maintenance.ts); returns what it did, e.g. "ANALYZE streams".
   */
  maintain?(): Promise<string[]>;
  /** Which of these queues hold ENQUEUED workflows, or DELAYED ones due by `now`: the safety poll's one read for all queues. */
  queuesWithWork(queueNames: string[], now: number): Promise<string[]>;
  /**
   * Records that this executor is alive, at `clock()` read when the write is made (a write retried
   * through an outage carries the time it finally went in, not when it was first tried); returns it.
   */
  heartbeat(executorId: string, appVersion: string, clock: () => number): Promise<number>;
  /**
   * A clean shutdown: the executor no longer counts as running `appVersion`, so work of no version
   * goes to the newest version still running at once, not after this executor's lease. Its
   * heartbeat stays (its PENDING work is taken over after the lease, as a dead executor's).
   */
  leave(executorId: string, appVersion: string): Promise<void>;
  /**
   * How much longer than a lease another executor may need to beat again once the database is
   * back after trouble (its reconnection backs off): a takeover waits this much more (servers only).
   */
  readonly reconnectSlackMs?: number;
  /** Called with wake keys committed by other processes (`null`: something changed, re-check all). */
  onExternalChange(listener: (keys: string[] | null) => void): void;
  /** Called whenever a connection to the database was lost or could not be made (servers only). */
  onConnectionLost?(listener: () => void): void;
  close(): Promise<void>;
}
