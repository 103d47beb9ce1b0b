/**
 * What `getResult()` callers get: a workflow's output or error once it has finished, waited for
 * without polling (its completion wakes `status:<id>`). Outcomes of workflows finished in this
 * process are remembered as stored, so a local getResult needs no read and gets what any other
 * process would: its own copy, made when it asks.
 */
import { AwaitedWorkflowCancelledError, MaxRecoveryAttemptsExceededError, WorkflowNotFoundError } from "../errors.js";
import { deserialize, deserializeThrown, type SerializationFormat } from "../serialization.js";
import type { WorkflowRow } from "../storage/store.js";
import { asOutcome } from "./checkpoint.js";
import type { Engine } from "./engine.js";

/** A finished workflow's outcome. */
export interface Outcome {
  status: WorkflowRow["status"];
  output?: unknown;
  error?: unknown;
  /** Of a parked workflow: the limit it exceeded (see parkedLimit). */
  maxRecoveryAttempts?: number;
  /** Of a workflow cancelled when its deadline passed: its timeout, if it had one. */
  timedOutAfterMs?: number | null;
}

/** Cancelled at or after its deadline: by it (a cancel call before it would have come first). */
const timedOut = (row: WorkflowRow) =>
  row.status === "CANCELLED" && row.deadlineEpochMs !== null && (row.completedAt ?? row.updatedAt) >= row.deadlineEpochMs;

/**
 * The maxRecoveryAttempts that parked a workflow, from its count: every recovery counts one and
 * checks, and the executor with limit N parks it at N + 2 (its first run, then N recoveries).
 * So a caller in another process, or with another limit, is told the limit that applied.
 */
const parkedLimit = (row: WorkflowRow) => Math.max(0, row.recoveryAttempts - 2);

const TERMINAL = new Set(["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]);
/** The latest outcomes remembered: at most this many, */
const CACHE_SIZE = 10_000;
/** holding at most this many characters of stored values (a worker returning large results kept up to 10,000 of them), */
const CACHE_CHARS = 8 * 2 ** 20;
/** of which one value at most this many: a larger one is read back from the database when asked for. */
const CACHED_VALUE_CHARS = 64 * 2 ** 10;

/** A workflow that finished here: its stored output or error (undefined: too large to keep, read it back). */
interface Finished {
  status: "SUCCESS" | "ERROR";
  value: string | null | undefined;
  serialization: SerializationFormat;
}

export class Outcomes {
  private readonly recent = new Map<string, Finished>();
  private chars = 0;

  constructor(private readonly engine: Engine) {}

  remember(workflowId: string, status: Finished["status"], value: string | null, serialization: SerializationFormat): void {
    const kept = value === null || value.length <= CACHED_VALUE_CHARS ? value : undefined;
    this.forget(workflowId);
    this.recent.set(workflowId, { status, value: kept, serialization });
    this.chars += kept?.length ?? 0;
    // Oldest tenth at once: finding a Map's first key walks past the slots of earlier deletions.
    while (this.recent.size > CACHE_SIZE || this.chars > CACHE_CHARS) {
      let evict = Math.ceil(this.recent.size / 10);
      for (const key of this.recent.keys()) {
        if (evict-- <= 0) break;
        this.forget(key);
      }
    }
  }

  private forget(workflowId: string): void {
    this.chars -= this.recent.get(workflowId)?.value?.length ?? 0;
    this.recent.delete(workflowId);
  }

  /**
   * Waits for a workflow to finish and gives its output, or throws its error;
   * AwaitedWorkflowCancelledError / MaxRecoveryAttemptsExceededError when it was parked.
   * `untilCreated`: a workflow that does not exist yet is awaited rather than an error.
   */
  async wait(workflowId: string, signal?: AbortSignal, untilCreated = false): Promise<unknown> {
    const { waiters, running, rows } = this.engine;
    if (untilCreated) {
      // Inserts wake "created", forks the new workflow's status key.
      const exists = async () => running.has(workflowId) || (await rows.read(workflowId)) !== undefined;
      await waiters.wait([`status:${workflowId}`, "created"], exists, Infinity, signal);
    }
    let outcome!: Outcome;
    await waiters.wait(
      `status:${workflowId}`,
      async () => {
        const local = this.recent.get(workflowId);
        if (local && local.value !== undefined) {
          const { status, value, serialization } = local;
          outcome = status === "SUCCESS" ? { status, output: deserialize(value, serialization) } : { status, error: asOutcome(deserializeThrown(value!, serialization)) };
          return true;
        }
        const run = running.get(workflowId);
        if (run && !run.stopped) return false; // running here: its completion will wake us, no read needed
        const row = await rows.read(workflowId);
        if (!row) throw new WorkflowNotFoundError(workflowId);
        if (!TERMINAL.has(row.status)) return false;
        outcome = {
          status: row.status,
          output: row.status === "SUCCESS" ? deserialize(row.output, row.serialization) : undefined,
          error: row.status === "ERROR" && row.error !== null ? asOutcome(deserializeThrown(row.error, row.serialization)) : undefined,
          maxRecoveryAttempts: row.status === "MAX_RECOVERY_ATTEMPTS_EXCEEDED" ? parkedLimit(row) : undefined,
          timedOutAfterMs: timedOut(row) ? row.timeoutMs : undefined,
        };
        return true;
      },
      Infinity,
      signal,
    );
    switch (outcome.status) {
      case "SUCCESS":
        return outcome.output;
      case "ERROR":
        throw outcome.error;
      case "CANCELLED":
        throw new AwaitedWorkflowCancelledError(workflowId, outcome.timedOutAfterMs);
      default:
        throw new MaxRecoveryAttemptsExceededError(workflowId, outcome.maxRecoveryAttempts ?? this.engine.maxRecoveryAttempts);
    }
  }

  /** Whether this process saw the workflow finish (no read). */
  knows(workflowId: string): boolean {
    return this.recent.has(workflowId);
  }

  /** Whether the workflow has finished, as wait's first look finds it (no read if this process knows). */
  async finished(workflowId: string): Promise<boolean> {
    if (this.recent.get(workflowId)) return true;
    const run = this.engine.running.get(workflowId);
    if (run && !run.stopped) return false;
    const row = await this.engine.rows.read(workflowId);
    return row !== undefined && TERMINAL.has(row.status);
  }
}
