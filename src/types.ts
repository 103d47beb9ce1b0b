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

type OneOrMany = string | readonly string[];

export interface ListWorkflowsFilter {
  workflowIds?: readonly string[] | null | undefined;
  status?: WorkflowStatusString | readonly WorkflowStatusString[] | null | undefined;
  /** RFC 3339 timestamps (or Dates), compared with the creation time. */
  startTime?: string | Date | null | undefined;
  endTime?: string | Date | null | undefined;
  name?: OneOrMany | null | undefined;
  appVersion?: OneOrMany | null | undefined;
  forkedFrom?: OneOrMany | null | undefined;
  parentWorkflowId?: OneOrMany | null | undefined;
  user?: OneOrMany | null | undefined;
  queueName?: OneOrMany | null | undefined;
  executorId?: OneOrMany | null | undefined;
  workflowIdPrefix?: OneOrMany | null | undefined;
  limit?: number | null | undefined;
  offset?: number | null | undefined;
  sortDesc?: boolean | null | undefined;
  /** Default true. */
  loadInput?: boolean | null | undefined;
  /** Default true. */
  loadOutput?: boolean | null | undefined;
  queuesOnly?: boolean | null | undefined;
  wasForkedFrom?: boolean | null | undefined;
  hasParent?: boolean | null | undefined;
}

export interface StepOptions {
  /** Recorded name of the step (default: the registered name, or the function's name). */
  name?: string | null | undefined;
  /** Default false: one attempt. */
  retriesAllowed?: boolean | null | undefined;
  /** Delay before the first retry, in seconds (default 1). */
  intervalSeconds?: number | null | undefined;
  /** Attempts in all, when retries are allowed (default 3). */
  maxAttempts?: number | null | undefined;
  /** Each retry waits `intervalSeconds × backoffRate^i` (default 2). */
  backoffRate?: number | null | undefined;
}

/** Options bound to a workflow call with `.with(…)`. */
export interface StartOptions {
  workflowId?: string | null | undefined;
  queueName?: string | null | undefined;
  timeoutSeconds?: number | null | undefined;
  deadlineEpochMs?: number | null | undefined;
  priority?: number | null | undefined;
  deduplicationId?: string | null | undefined;
  partitionKey?: string | null | undefined;
  delaySeconds?: number | null | undefined;
  authenticatedUser?: string | null | undefined;
  appVersion?: string | null | undefined;
  serialization?: SerializationFormat | null | undefined;
}

/** How send, setEvent and writeStream store a value (default: the workflow's own format). */
export interface ValueOptions {
  serialization?: SerializationFormat | null | undefined;
  /** The reference library's name for `serialization` (give one or the other). */
  serializationType?: SerializationFormat | null | undefined;
}

/** recv/getEvent's timeout as an options object, for the reference's keyword form (`timeout_seconds=`); a plain number works too. */
export interface WaitOptions {
  timeoutSeconds?: number | null | undefined;
}

/** send's options, which may stand in the topic's place when there is no topic. */
export interface SendOptions extends ValueOptions {
  idempotencyKey?: string | null | undefined;
}

export interface WorkflowOptions {
  /** Default serialization of this workflow's inputs, output and error (default "default"). */
  serialization?: SerializationFormat | null | undefined;
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface DuroConfig {
  /** `sqlite:<path>`, `sqlite::memory:`, or `postgres://…`. Default: `DURO_DATABASE_URL`, else `sqlite:./.duro/duro.sqlite`. */
  databaseUrl?: string | null | undefined;
  /** This executor's identity; recovery on `launch()` takes this executor's PENDING work. Default `DURO_EXECUTOR_ID` or "local". */
  executorId?: string | null | undefined;
  /** Default: a hash of the registered workflows' sources. Only workflows of this version are recovered. */
  appVersion?: string | null | undefined;
  /** Default 100. A workflow recovered more often is parked as MAX_RECOVERY_ATTEMPTS_EXCEEDED. `null`: no limit. */
  maxRecoveryAttempts?: number | null | undefined;
  logger?: Logger | null | undefined;
  /** PostgreSQL: pooled connections (default 10). */
  poolSize?: number | null | undefined;
  /** How long `launch()` keeps retrying an unreachable database (or a SQLite file another process holds locked), in seconds (default 30). */
  connectTimeoutSeconds?: number | null | undefined;
  /** An executor silent this long is presumed dead and its work is taken over (default 30). */
  executorLeaseSeconds?: number | null | undefined;
  /** Safety re-check of every waiter for a lost wake-up, in seconds (default 5). */
  safetyPollSeconds?: number | null | undefined;
}

export interface WorkflowHandle<R> {
  readonly workflowId: string;
  /** Waits for the workflow to finish; returns its output or throws its error. */
  getResult(): Promise<R>;
  /** The workflow's status now (null if there is no such workflow), without waiting. */
  getStatus(): Promise<WorkflowStatus | null>;
}

export type ReturnWhen = "ALL_COMPLETED" | "FIRST_COMPLETED" | "FIRST_EXCEPTION";

export interface QueueOptions {
  /** Most workflows of this queue running at once across all executors. */
  concurrency?: number | null | undefined;
  /** Most workflows of this queue running at once on each executor. */
  workerConcurrency?: number | null | undefined;
  /** At most `limit` starts in any window of `periodSeconds`, across all executors. */
  rateLimit?: { limit: number; periodSeconds: number } | null | undefined;
  /** Accepted for the reference's API and changes nothing: as there now, every queue takes a `priority` (1 … 2³¹−1) and dequeues by it, 0 first, then FIFO. */
  priorityEnabled?: boolean | null | undefined;
  /** Every partition key is its own queue with the limits above; enqueues must give a partitionKey. */
  partitionQueue?: boolean | null | undefined;
  /** Safety poll for work that arrived without a wake-up, in seconds (default 1). */
  pollingIntervalSeconds?: number | null | undefined;
}

export interface ScheduleOptions {
  /** Start ticks missed while no executor ran (default false: skip them). */
  catchUp?: boolean | null | undefined;
  /** Enqueue each tick on this queue instead of starting it directly. */
  queueName?: string | null | undefined;
  /** IANA time zone for the cron expression (default: the process's). */
  timezone?: string | null | undefined;
}

export interface ForkOptions {
  /** The new workflow's ID (`workflowId` is accepted too); a new UUID by default. */
  newWorkflowId?: string | null | undefined;
  workflowId?: string | null | undefined;
  appVersion?: string | null | undefined;
  queueName?: string | null | undefined;
  /** The fork's partition on `queueName`, when that queue is partitioned. */
  partitionKey?: string | null | undefined;
  timeoutSeconds?: number | null | undefined;
}
