/**
 * The engine of one executor: it owns the store, the group committer, the timer heap and the
 * waiters, keeps the in-memory truth of every workflow it runs, and starts, runs, recovers and
 * completes them. It never writes SQL: everything durable goes through the Store interface.
 *
 * Life of a workflow here: start (one write: its row, plus the parent's record for a child) →
 * run the body under AsyncLocalStorage, each durable call answered from the record or run and
 * recorded (one write each, group-committed) → complete (one conditional write with the
 * outcome). Recovery loads the row and all operations in one read and runs the body again.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  AwaitedWorkflowCancelledError, DuroError, InvalidArgumentError, MaxRecoveryAttemptsExceededError, WorkflowCancelledError,
  WorkflowConflictError, WorkflowNotFoundError,
} from "../errors.js";
import {
  deserialize, deserializeError, deserializeInputs, registerErrorClass, serialize, serializeError, serializeInputs,
  type SerializationFormat,
} from "../serialization.js";
import { openStore, DEFAULT_DATABASE_URL } from "../storage/open.js";
import type { OperationRow, Store, WorkflowRow, WriteResult } from "../storage/store.js";
import type { DuroConfig, Logger, StartOptions, WorkflowOptions, WorkflowStatus } from "../types.js";
import { Committer } from "./committer.js";
import { als, currentRun, WorkflowRun } from "./context.js";
import { consoleLogger } from "./logger.js";
import { Timers } from "./timers.js";
import { Waiters } from "./waiters.js";

export interface RegisteredWorkflow {
  name: string;
  fn: (...args: any[]) => Promise<unknown>;
  options: WorkflowOptions;
}

/** A finished workflow's outcome as seen in this process (the original objects, not copies). */
interface Outcome {
  status: WorkflowRow["status"];
  output?: unknown;
  error?: unknown;
}

const TERMINAL = new Set(["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]);
const OUTCOME_CACHE_SIZE = 10_000;

export class Engine {
  readonly executorId: string;
  readonly logger: Logger;
  readonly databaseUrl: string;
  readonly maxRecoveryAttempts: number;
  readonly timers = new Timers();
  readonly waiters = new Waiters(this.timers);
  readonly workflows = new Map<string, RegisteredWorkflow>();
  /** Runs executing in this process, by workflow ID. */
  readonly running = new Map<string, WorkflowRun>();
  /** Recent outcomes of workflows finished here, so local getResult needs no read. */
  private readonly outcomes = new Map<string, Outcome>();
  private _store?: Store;
  private _committer?: Committer;
  private _appVersion?: string;
  private launching?: Promise<void>;
  private safetyPoll?: NodeJS.Timeout;
  private closed = false;

  constructor(readonly config: DuroConfig) {
    this.databaseUrl = config.databaseUrl ?? process.env.DURO_DATABASE_URL ?? DEFAULT_DATABASE_URL;
    this.executorId = config.executorId ?? process.env.DURO_EXECUTOR_ID ?? "local";
    this.logger = config.logger ?? consoleLogger();
    this.maxRecoveryAttempts = config.maxRecoveryAttempts ?? 100;
    if (!Number.isInteger(this.maxRecoveryAttempts) || this.maxRecoveryAttempts < 0) {
      throw new InvalidArgumentError(`maxRecoveryAttempts must be a non-negative integer, got ${config.maxRecoveryAttempts}.`);
    }
    if (typeof this.executorId !== "string" || this.executorId.trim() === "") throw new InvalidArgumentError("executorId must be a non-empty string.");
  }

  get store(): Store {
    if (!this._store) throw new DuroError("duro is not launched: call `await duro.launch()` before starting or querying workflows.");
    return this._store;
  }

  get committer(): Committer {
    if (!this._committer) throw new DuroError("duro is not launched: call `await duro.launch()` before starting or querying workflows.");
    return this._committer;
  }

  get launched(): boolean {
    return this._committer !== undefined && !this.closed;
  }

  /** The app version: configured, or a hash of the registered workflows' names and sources. */
  get appVersion(): string {
    if (this._appVersion) return this._appVersion;
    if (this.config.appVersion) return this.config.appVersion;
    const hash = createHash("sha256");
    for (const name of [...this.workflows.keys()].sort()) hash.update(name).update("\0").update(this.workflows.get(name)!.fn.toString()).update("\0");
    return hash.digest("hex").slice(0, 32);
  }

  register(workflow: RegisteredWorkflow): void {
    if (this.workflows.has(workflow.name)) throw new InvalidArgumentError(`A workflow named "${workflow.name}" is already registered; names must be unique.`);
    if (this._appVersion && !this.config.appVersion) {
      this.logger.warn(`Workflow "${workflow.name}" was registered after launch(); register every workflow before launch() so the app version covers it.`);
    }
    this.workflows.set(workflow.name, workflow);
  }

  launch(): Promise<void> {
    if (this.closed) return Promise.reject(new DuroError("This Duro instance was shut down; create a new one."));
    this.launching ??= this.doLaunch().catch((error) => {
      this.launching = undefined;
      throw error;
    });
    return this.launching;
  }

  private async doLaunch(): Promise<void> {
    const store = await openStore(this.databaseUrl, { poolSize: this.config.poolSize, connectTimeoutSeconds: this.config.connectTimeoutSeconds });
    await store.migrate();
    this._appVersion = this.appVersion;
    this._store = store;
    this._committer = new Committer(store, (keys) => this.waiters.wake(keys));
    store.onExternalChange((keys) => this.onExternalChange(keys));
    const pollMs = (this.config.safetyPollSeconds ?? 1) * 1000;
    this.safetyPoll = setInterval(() => void this.safetyCheck(), pollMs);
    this.safetyPoll.unref();
    await this.recover();
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.safetyPoll);
    for (const run of this.running.values()) run.stop("shutdown");
    await this.launching?.catch(() => undefined);
    await this._committer?.close();
    this.waiters.abortAll(new DuroError("duro was shut down while waiting."));
    this.timers.stop();
    await this._store?.close();
  }

  // ——— starting and running ———

  /**
   * Starts `name` with `args` (or returns the existing workflow with that ID). Inside a
   * workflow this is the operation that starts a child: its ID defaults to `<parent>-<N>`.
   */
  async start(name: string, args: unknown[], options: StartOptions): Promise<string> {
    const workflow = this.workflows.get(name);
    if (!workflow) throw new InvalidArgumentError(`No workflow named "${name}" is registered on this Duro instance.`);
    validateStartOptions(options);
    const parent = currentRun();
    const functionId = parent?.allocate();
    if (parent && functionId !== undefined) {
      const recorded = parent.replay(functionId, name);
      if (recorded) {
        if (recorded.error) throw this.errorOf(recorded);
        return recorded.childWorkflowId!;
      }
      parent.checkStopped();
    }
    const workflowId = options.workflowId ?? (parent ? `${parent.workflowId}-${functionId}` : randomUUID());
    const serialization = options.serialization ?? workflow.options.serialization ?? "default";
    const inputs = serializeInputs(args, serialization); // fails before anything is written
    const now = Date.now();
    const deadline = options.deadlineEpochMs ?? (options.timeoutSeconds !== undefined ? now + options.timeoutSeconds * 1000 : parent?.deadlineEpochMs ?? null);
    const row: WorkflowRow = {
      workflowId, status: "PENDING", name, authenticatedUser: options.authenticatedUser ?? parent?.authenticatedUser ?? null,
      inputs, output: null, error: null, serialization, executorId: this.executorId, appVersion: options.appVersion ?? this.appVersion,
      createdAt: now, updatedAt: now, startedAt: now, completedAt: null, recoveryAttempts: 1, queueName: null, priority: 0,
      deduplicationId: null, partitionKey: null, timeoutMs: options.timeoutSeconds !== undefined ? Math.round(options.timeoutSeconds * 1000) : null,
      deadlineEpochMs: deadline, delayUntilEpochMs: null, parentWorkflowId: parent?.workflowId ?? null, forkedFrom: null, wasForkedFrom: false,
    };
    const ownerToken = randomUUID();
    const writes: Parameters<Committer["submit"]>[0] = [{ kind: "insertWorkflow", row, ownerToken }];
    if (parent && functionId !== undefined) {
      writes.push({ kind: "recordOperation", op: operation(parent.workflowId, functionId, name, { childWorkflowId: workflowId, startedAt: now }) });
    }
    const [inserted] = (await this.committer.submit(writes)) as [Extract<WriteResult, { kind: "insertWorkflow" }>];
    if (inserted.inserted) {
      if (row.status === "PENDING" && row.executorId === this.executorId) this.execute(row, [], workflow);
    } else if (inserted.existing && inserted.existing.name !== name) {
      throw new WorkflowConflictError(workflowId, inserted.existing.name, name);
    }
    return workflowId;
  }

  /** Runs a workflow body in this process (fresh, or replaying `operations`). */
  execute(row: WorkflowRow, operations: OperationRow[], workflow: RegisteredWorkflow): void {
    if (this.running.has(row.workflowId)) return; // one run per workflow per process
    const run = new WorkflowRun(
      row.workflowId, row.name, row.serialization, row.authenticatedUser, row.appVersion ?? this.appVersion, row.deadlineEpochMs,
      new Map(operations.map((op) => [op.functionId, op])),
    );
    this.running.set(row.workflowId, run);
    if (row.deadlineEpochMs !== null) {
      const timer = this.timers.at(row.deadlineEpochMs, () => void this.cancel([row.workflowId]).catch(() => undefined));
      run.onStop(() => timer.cancel());
    }
    void als.run({ run }, () => this.runBody(run, row, workflow));
  }

  private async runBody(run: WorkflowRun, row: WorkflowRow, workflow: RegisteredWorkflow): Promise<void> {
    let outcome: Outcome;
    try {
      const args = deserializeInputs(row.inputs, row.serialization);
      outcome = { status: "SUCCESS", output: await workflow.fn(...args) };
    } catch (error) {
      outcome = { status: "ERROR", error };
    }
    try {
      if (run.stopped) return; // cancelled (status already says so) or shutting down: write nothing
      if (outcome.error instanceof Error) registerErrorClass(outcome.error.constructor as new () => Error);
      let output: string | null = null;
      let error: string | null = null;
      if (outcome.status === "SUCCESS") {
        try {
          output = serialize(outcome.output, row.serialization);
        } catch (serializationError) {
          outcome = { status: "ERROR", error: serializationError };
        }
      }
      if (outcome.status === "ERROR") error = serializeError(outcome.error, row.serialization);
      const result = await this.committer.submitOne({
        kind: "completeWorkflow", workflowId: row.workflowId, status: outcome.status as "SUCCESS" | "ERROR", output, error, completedAt: Date.now(),
      });
      if (result.completed) this.remember(row.workflowId, outcome);
    } catch (error) {
      if (!this.closed) this.logger.error(`Could not record the outcome of workflow ${row.workflowId}; it will be recovered.`, { error: String(error) });
    } finally {
      run.stop("finished");
      this.running.delete(row.workflowId);
    }
  }

  private remember(workflowId: string, outcome: Outcome): void {
    this.outcomes.set(workflowId, outcome);
    if (this.outcomes.size > OUTCOME_CACHE_SIZE) this.outcomes.delete(this.outcomes.keys().next().value!);
  }

  /** Re-runs this executor's PENDING workflows (called by launch). */
  async recover(): Promise<void> {
    const { recovered, deadLettered } = await this.store.recoverPending({
      executorId: this.executorId, appVersion: this.appVersion, maxRecoveryAttempts: this.maxRecoveryAttempts, now: Date.now(),
    });
    for (const id of deadLettered) this.logger.error(new MaxRecoveryAttemptsExceededError(id, this.maxRecoveryAttempts).message);
    if (deadLettered.length) this.waiters.wake(deadLettered.map((id) => `status:${id}`));
    for (const row of recovered) await this.resumeHere(row.workflowId);
  }

  /** Loads a workflow with its record and runs it here, if its code is registered. */
  async resumeHere(workflowId: string): Promise<void> {
    if (this.running.has(workflowId)) return;
    const loaded = await this.store.loadWorkflow(workflowId);
    if (!loaded || loaded.workflow.status !== "PENDING") return;
    const workflow = this.workflows.get(loaded.workflow.name);
    if (!workflow) {
      this.logger.warn(`Workflow ${workflowId} runs "${loaded.workflow.name}", which is not registered here; it stays PENDING.`);
      return;
    }
    this.logger.info(`Recovering workflow ${workflowId} (${loaded.workflow.name}) from operation ${loaded.operations.length + 1}.`);
    this.execute(loaded.workflow, loaded.operations, workflow);
  }

  // ——— results and status ———

  /** Waits for a workflow to finish; its output, or throws its error. */
  async awaitResult(workflowId: string, deadline = Infinity): Promise<{ done: false } | { done: true; outcome: Outcome }> {
    let outcome: Outcome | undefined;
    const done = await this.waiters.wait(
      `status:${workflowId}`,
      async () => {
        const local = this.outcomes.get(workflowId);
        if (local) {
          outcome = local;
          return true;
        }
        const [row] = await this.store.listWorkflows({ workflowIds: [workflowId] });
        if (!row) throw new WorkflowNotFoundError(workflowId);
        if (!TERMINAL.has(row.status)) return false;
        outcome = {
          status: row.status,
          output: row.status === "SUCCESS" ? deserialize(row.output, row.serialization) : undefined,
          error: row.status === "ERROR" && row.error !== null ? deserializeError(row.error, row.serialization) : undefined,
        };
        return true;
      },
      deadline,
    );
    return done ? { done: true, outcome: outcome! } : { done: false };
  }

  /** The value a finished outcome gives to `getResult()` callers. */
  settle(workflowId: string, outcome: Outcome): unknown {
    switch (outcome.status) {
      case "SUCCESS":
        return outcome.output;
      case "ERROR":
        throw outcome.error;
      case "CANCELLED":
        throw new AwaitedWorkflowCancelledError(workflowId);
      default:
        throw new MaxRecoveryAttemptsExceededError(workflowId, this.maxRecoveryAttempts);
    }
  }

  async getStatus(workflowId: string): Promise<WorkflowStatus | null> {
    const [row] = await this.store.listWorkflows({ workflowIds: [workflowId] });
    return row ? toStatus(row) : null;
  }

  // ——— cancellation ———

  async cancel(workflowIds: string[]): Promise<void> {
    const changed = await this.store.cancelWorkflows(workflowIds, Date.now());
    for (const id of changed) this.running.get(id)?.stop("cancelled");
    this.waiters.wake(workflowIds.map((id) => `status:${id}`));
  }

  private onExternalChange(keys: string[] | null): void {
    this.waiters.wake(keys);
    if (keys === null) return;
    const touched = keys.filter((k) => k.startsWith("status:") && this.running.has(k.slice(7))).map((k) => k.slice(7));
    if (touched.length) void this.stopCancelled(touched);
  }

  /** Stops local runs whose workflows another process cancelled. */
  private async stopCancelled(ids: string[]): Promise<void> {
    try {
      const rows = await this.store.listWorkflows({ workflowIds: ids, status: ["CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"], loadInput: false, loadOutput: false });
      for (const row of rows) this.running.get(row.workflowId)?.stop("cancelled");
    } catch (error) {
      this.logger.warn("Could not check for cancelled workflows.", { error: String(error) });
    }
  }

  private async safetyCheck(): Promise<void> {
    if (this.closed) return;
    this.waiters.wake(null);
    if (this.running.size) await this.stopCancelled([...this.running.keys()]);
  }

  // ——— helpers for durable operations ———

  /** Decodes a recorded operation's error. */
  errorOf(op: OperationRow): Error {
    return deserializeError(op.error!, op.serialization ?? "default");
  }

  /** The recorded outcome of an operation: returns its output or throws its error. */
  replayed(op: OperationRow): unknown {
    if (op.error !== null) throw this.errorOf(op);
    return deserialize(op.output, op.serialization ?? "default");
  }

  /** Records an operation's outcome; returns what is recorded (ours, or a concurrent run's). */
  async record(run: WorkflowRun, functionId: number, name: string, startedAt: number, result: { output?: unknown; error?: unknown }, extra: Partial<OperationRow> = {}): Promise<unknown> {
    let output: string | null = null;
    let error: string | null = null;
    let failed = "error" in result;
    let thrown = result.error;
    if (!failed) {
      try {
        output = serialize(result.output, "default");
      } catch (serializationError) {
        failed = true;
        thrown = serializationError;
      }
    }
    if (failed) {
      if (thrown instanceof Error) registerErrorClass(thrown.constructor as new () => Error);
      error = serializeError(thrown, "default");
    }
    const written = await this.committer.submitOne({
      kind: "recordOperation",
      op: operation(run.workflowId, functionId, name, { output, error, serialization: "default", startedAt, completedAt: Date.now(), ...extra }),
    });
    if (!written.recorded) return this.replayed(written.existing);
    if (failed) throw thrown;
    return result.output;
  }

  /**
   * The shape of every simple durable operation: answer from the record, or check for a stop,
   * run `body`, record its outcome (errors too), and return it.
   */
  async checkpoint<T>(run: WorkflowRun, name: string, body: (functionId: number) => Promise<T>): Promise<T> {
    const functionId = run.allocate();
    const recorded = run.replay(functionId, name);
    if (recorded) return this.replayed(recorded) as T;
    run.checkStopped();
    const startedAt = Date.now();
    let result: { output?: unknown; error?: unknown };
    try {
      result = { output: await body(functionId) };
    } catch (error) {
      if (error instanceof WorkflowCancelledError || run.stopped) throw error;
      result = { error };
    }
    run.checkStopped();
    return (await this.record(run, functionId, name, startedAt, result)) as T;
  }
}

export function operation(workflowId: string, functionId: number, functionName: string, fields: Partial<OperationRow> = {}): OperationRow {
  return {
    workflowId, functionId, functionName, output: null, error: null, serialization: null, childWorkflowId: null, startedAt: null, completedAt: null,
    ...fields,
  };
}

function validateStartOptions(options: StartOptions): void {
  const { workflowId, timeoutSeconds, deadlineEpochMs, serialization } = options;
  if (workflowId !== undefined && (typeof workflowId !== "string" || workflowId.trim() === "")) {
    throw new InvalidArgumentError("workflowId must be a non-empty string.");
  }
  if (timeoutSeconds !== undefined && !(typeof timeoutSeconds === "number" && timeoutSeconds > 0 && Number.isFinite(timeoutSeconds))) {
    throw new InvalidArgumentError(`timeoutSeconds must be a positive number, got ${timeoutSeconds}.`);
  }
  if (deadlineEpochMs !== undefined && !(typeof deadlineEpochMs === "number" && Number.isFinite(deadlineEpochMs) && deadlineEpochMs >= 0)) {
    throw new InvalidArgumentError(`deadlineEpochMs must be a non-negative epoch time in milliseconds, got ${deadlineEpochMs}.`);
  }
  if (serialization !== undefined && serialization !== "default" && serialization !== "portable") {
    throw new InvalidArgumentError(`serialization must be "default" or "portable", got ${JSON.stringify(serialization)}.`);
  }
}

export function toStatus(row: WorkflowRow): WorkflowStatus {
  const status: WorkflowStatus = {
    workflowId: row.workflowId, status: row.status, workflowName: row.name, queueName: row.queueName, executorId: row.executorId,
    appVersion: row.appVersion, authenticatedUser: row.authenticatedUser, recoveryAttempts: row.recoveryAttempts, createdAt: row.createdAt,
    updatedAt: row.updatedAt, startedAtEpochMs: row.startedAt, completedAtEpochMs: row.completedAt, timeoutMs: row.timeoutMs,
    deadlineEpochMs: row.deadlineEpochMs, delayUntilEpochMs: row.delayUntilEpochMs, priority: row.priority, deduplicationId: row.deduplicationId,
    partitionKey: row.partitionKey, parentWorkflowId: row.parentWorkflowId, forkedFrom: row.forkedFrom, wasForkedFrom: row.wasForkedFrom,
  };
  if (row.inputs !== null) status.input = deserializeInputs(row.inputs, row.serialization);
  if (row.output !== null) status.output = deserialize(row.output, row.serialization);
  if (row.error !== null) status.error = deserializeError(row.error, row.serialization);
  return status;
}

export type { Outcome, SerializationFormat };
