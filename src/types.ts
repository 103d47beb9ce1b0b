/** The public types of duro's API (names are part of the contract; see SPEC.md). */
import type { SerializationFormat } from "./serialization.js";
import type { WorkflowStatusString } from "./storage/store.js";

export type { SerializationFormat, WorkflowStatusString };

export interface WorkflowStatus {
  workflowId: string;
  status: WorkflowStatusString;
  workflowName: string;
  /** Absent when not loaded (`loadInput: false` / `loadOutput: false`). */
  input?: unknown[];
  output?: unknown;
  error?: Error;
  queueName: string | null;
  executorId: string | null;
  appVersion: string | null;
  authenticatedUser: string | null;
  recoveryAttempts: number;
  createdAt: number;
  updatedAt: number;
  startedAtEpochMs: number | null;
  completedAtEpochMs: number | null;
  timeoutMs: number | null;
  deadlineEpochMs: number | null;
  delayUntilEpochMs: number | null;
  priority: number;
  deduplicationId: string | null;
  partitionKey: string | null;
  parentWorkflowId: string | null;
  forkedFrom: string | null;
  wasForkedFrom: boolean;
}

export interface StepInfo {
  functionId: number;
  functionName: string;
  output: unknown;
  error: Error | null;
  childWorkflowId: string | null;
  startedAtEpochMs: number | null;
  completedAtEpochMs: number | null;
}

type OneOrMany = string | string[];

export interface ListWorkflowsFilter {
  workflowIds?: string[] | null;
  status?: WorkflowStatusString | WorkflowStatusString[] | null;
  /** RFC 3339 timestamps (or Dates), compared with the creation time. */
  startTime?: string | Date | null;
  endTime?: string | Date | null;
  name?: OneOrMany | null;
  appVersion?: OneOrMany | null;
  forkedFrom?: OneOrMany | null;
  parentWorkflowId?: OneOrMany | null;
  user?: OneOrMany | null;
  queueName?: OneOrMany | null;
  executorId?: OneOrMany | null;
  workflowIdPrefix?: OneOrMany | null;
  limit?: number | null;
  offset?: number | null;
  sortDesc?: boolean | null;
  /** Default true. */
  loadInput?: boolean | null;
  /** Default true. */
  loadOutput?: boolean | null;
  queuesOnly?: boolean | null;
  wasForkedFrom?: boolean | null;
  hasParent?: boolean | null;
}

export interface StepOptions {
  /** Recorded name of the step (default: the registered name, or the function's name). */
  name?: string | null;
  /** Default false: one attempt. */
  retriesAllowed?: boolean | null;
  /** Delay before the first retry, in seconds (default 1). */
  intervalSeconds?: number | null;
  /** Attempts in all, when retries are allowed (default 3). */
  maxAttempts?: number | null;
  /** Each retry waits `intervalSeconds × backoffRate^i` (default 2). */
  backoffRate?: number | null;
}

/** Options bound to a workflow call with `.with(…)`. */
export interface StartOptions {
  workflowId?: string | null;
  queueName?: string | null;
  timeoutSeconds?: number | null;
  deadlineEpochMs?: number | null;
  priority?: number | null;
  deduplicationId?: string | null;
  partitionKey?: string | null;
  delaySeconds?: number | null;
  authenticatedUser?: string | null;
  appVersion?: string | null;
  serialization?: SerializationFormat | null;
}

/** How send, setEvent and writeStream store a value (default: the workflow's own format). */
export interface ValueOptions {
  serialization?: SerializationFormat | null;
  /** The reference library's name for `serialization` (give one or the other). */
  serializationType?: SerializationFormat | null;
}

/** recv/getEvent's timeout as an options object, for the reference's keyword form (`timeout_seconds=`); a plain number works too. */
export interface WaitOptions {
  timeoutSeconds?: number | null;
}

/** send's options, which may stand in the topic's place when there is no topic. */
export interface SendOptions extends ValueOptions {
  idempotencyKey?: string | null;
}

export interface WorkflowOptions {
  /** Default serialization of this workflow's inputs, output and error (default "default"). */
  serialization?: SerializationFormat | null;
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface DuroConfig {
  /** `sqlite:<path>`, `sqlite::memory:`, or `postgres://…`. Default: `DURO_DATABASE_URL`, else `sqlite:./.duro/duro.sqlite`. */
  databaseUrl?: string | null;
  /** This executor's identity; recovery on `launch()` takes this executor's PENDING work. Default `DURO_EXECUTOR_ID` or "local". */
  executorId?: string | null;
  /** Default: a hash of the registered workflows' sources. Only workflows of this version are recovered. */
  appVersion?: string | null;
  /** Default 100. A workflow recovered more often is parked as MAX_RECOVERY_ATTEMPTS_EXCEEDED. `null`: no limit. */
  maxRecoveryAttempts?: number | null;
  logger?: Logger | null;
  /** PostgreSQL: pooled connections (default 10). */
  poolSize?: number | null;
  /** How long `launch()` keeps retrying an unreachable database (or a SQLite file another process holds locked), in seconds (default 30). */
  connectTimeoutSeconds?: number | null;
  /** An executor silent this long is presumed dead and its work is taken over (default 30). */
  executorLeaseSeconds?: number | null;
  /** Safety re-check of every waiter for a lost wake-up, in seconds (default 5). */
  safetyPollSeconds?: number | null;
}

export interface WorkflowHandle<R> {
  readonly workflowId: string;
  /** Waits for the workflow to finish; returns its output or throws its error. */
  getResult(): Promise<R>;
  getStatus(): Promise<WorkflowStatus | null>;
}

export type ReturnWhen = "ALL_COMPLETED" | "FIRST_COMPLETED" | "FIRST_EXCEPTION";

export interface QueueOptions {
  /** Most workflows of this queue running at once across all executors. */
  concurrency?: number | null;
  /** Most workflows of this queue running at once on each executor. */
  workerConcurrency?: number | null;
  /** At most `limit` starts in any window of `periodSeconds`, across all executors. */
  rateLimit?: { limit: number; periodSeconds: number } | null;
  /** Accepted for the reference's API and changes nothing: as there now, every queue takes a `priority` (1 … 2³¹−1) and dequeues by it, 0 first, then FIFO. */
  priorityEnabled?: boolean | null;
  /** Every partition key is its own queue with the limits above; enqueues must give a partitionKey. */
  partitionQueue?: boolean | null;
  /** Safety poll for work that arrived without a wake-up, in seconds (default 1). */
  pollingIntervalSeconds?: number | null;
}

export interface ScheduleOptions {
  /** Start ticks missed while no executor ran (default false: skip them). */
  catchUp?: boolean | null;
  /** Enqueue each tick on this queue instead of starting it directly. */
  queueName?: string | null;
  /** IANA time zone for the cron expression (default: the process's). */
  timezone?: string | null;
}

export interface ForkOptions {
  /** The new workflow's ID (`workflowId` is accepted too); a new UUID by default. */
  newWorkflowId?: string | null;
  workflowId?: string | null;
  appVersion?: string | null;
  queueName?: string | null;
  /** The fork's partition on `queueName`, when that queue is partitioned. */
  partitionKey?: string | null;
  timeoutSeconds?: number | null;
}
