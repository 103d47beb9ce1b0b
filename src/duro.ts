/**
 * `Duro`: the public API of one executor. Each method documents what it records and what
 * happens on replay; the work is done in `engine/`.
 */
import { InvalidArgumentError } from "./errors.js";
import { currentContext, currentRun } from "./engine/context.js";
import { Engine } from "./engine/engine.js";
import { contextLogger } from "./engine/logger.js";
import { cancel, checkIds, fork, listWorkflows, listWorkflowSteps, resume, setWorkflowDelay } from "./engine/management.js";
import { enqueueMany, start, startOptions as checkedStart, type Start } from "./engine/start.js";
import { checkFormat, checkKey, checkOptions, checkSeconds, KEYS } from "./engine/checks.js";
import * as ops from "./engine/operations.js";
import * as streams from "./engine/streams.js";
import type {
  DuroConfig, ForkOptions, ListWorkflowsFilter, Logger, ReturnWhen, ScheduleOptions, SendOptions, StartOptions, StepInfo, StepOptions, ValueOptions, WaitOptions,
  WorkflowHandle, WorkflowOptions, WorkflowStatus,
} from "./types.js";
import { checkpoint, failedHere } from "./engine/checkpoint.js";

/** A registered workflow: call it to run it durably and get its result; `.with()` binds start options. */
export type Workflow<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  readonly workflowName: string;
  readonly startOptions: Readonly<StartOptions>;
  /** The same workflow with these start options bound (merged over those already bound). */
  with(options: StartOptions | null): Workflow<A, R>;
};

/**
 * An executor: registers workflows, steps and queues, then `launch()` recovers the interrupted
 * work in its database and runs what is started or enqueued. Inside a workflow or step, its
 * durable operations (`sleep`, `recv`, `setEvent`, …) and context getters apply to the current run.
 */
export class Duro {
  /** @internal */
  readonly engine: Engine;
  readonly logger: Logger;

  constructor(config: DuroConfig | null = {}) {
    this.engine = new Engine(checkOptions("new Duro", config, KEYS.config, ["maxRecoveryAttempts"]));
    this.logger = contextLogger(this.engine.logger);
  }

  // ——— registration and life cycle ———

  /**
   * Registers `fn` as a durable workflow named `name` and returns a callable with the same
   * signature. Register every workflow before `launch()`: recovery can only run registered code.
   */
  registerWorkflow<A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R> | R, given?: WorkflowOptions | null): Workflow<A, R> {
    if (typeof name !== "string" || name === "") throw new InvalidArgumentError("A workflow needs a non-empty name.");
    checkKey("workflow name", name);
    if (typeof fn !== "function") throw new InvalidArgumentError(`registerWorkflow("${name}") needs a function.`);
    const options = checkOptions("registerWorkflow", given, KEYS.workflow);
    checkFormat(options.serialization);
    this.engine.register({ name, fn: async (...args: unknown[]) => fn(...(args as A)), source: fn.toString(), options });
    const bind = (startOptions: StartOptions): Workflow<A, R> => {
      const call = async (...args: A): Promise<R> => (await this.startWorkflow(call as Workflow<A, R>, ...args)).getResult();
      return Object.assign(call, {
        workflowName: name,
        startOptions: Object.freeze({ ...startOptions }),
        // Options given as undefined, or null, leave the bound ones as they are (a null deadline is no deadline).
        with: (more: StartOptions | null) => bind({ ...startOptions, ...checkedStart("with", more) }),
      });
    };
    return bind({});
  }

  /**
   * Registers `fn` as a step. Inside a workflow each call is checkpointed: it runs (with the
   * retry policy of `options`) and its output or error is recorded; on replay the record is
   * returned without running. Outside a workflow, or inside another step, it just runs.
   */
  registerStep<A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R> | R, options?: StepOptions | null): (...args: A) => Promise<R> {
    if (typeof name !== "string" || name === "") throw new InvalidArgumentError("A step needs a non-empty name.");
    const policy = ops.stepPolicy("registerStep", options);
    const stepName = checkKey("step name", policy.name ?? name);
    if (typeof fn !== "function") throw new InvalidArgumentError(`registerStep("${name}") needs a function.`);
    return (...args: A) => ops.runStep(this.engine, stepName, fn, args, policy) as Promise<R>;
  }

  /** Runs `fn` as an inline checkpointed step (see registerStep). */
  async runStep<R>(fn: () => Promise<R> | R, options?: StepOptions | null): Promise<R> {
    if (typeof fn !== "function") throw new InvalidArgumentError("runStep() needs a function.");
    const policy = ops.stepPolicy("runStep", options);
    return ops.runStep(this.engine, policy.name ?? (fn.name || "runStep"), fn, [], policy) as Promise<R>;
  }

  /** Connects, migrates the schema, and recovers this executor's PENDING workflows. */
  launch(): Promise<void> {
    return this.engine.launch();
  }

  /** Stops running workflows at their next durable operation and releases the database. */
  shutdown(): Promise<void> {
    return this.engine.shutdown();
  }

  // ——— starting workflows and their results ———

  /**
   * Starts a workflow in the background; resolves once it is durably recorded (it will then run
   * to completion even across crashes). Starting an ID that exists returns its handle without
   * running anything. Inside a workflow this starts a child: a recorded operation, with the
   * child's ID defaulting to `<parentId>-<functionId>`.
   * @throws WorkflowConflictError when the ID belongs to another workflow; SerializationError
   *   when an argument cannot be stored (nothing is written).
   */
  async startWorkflow<A extends unknown[], R>(workflow: Workflow<A, R>, ...args: A): Promise<WorkflowHandle<R>> {
    const name = workflow?.workflowName;
    if (typeof name !== "string") throw new InvalidArgumentError("startWorkflow() needs a workflow returned by registerWorkflow().");
    const workflowId = await start(this.engine, name, args, workflow.startOptions);
    return this.handle<R>(workflowId);
  }

  /**
   * A handle to a workflow. @throws WorkflowNotFoundError when it does not exist — unless
   * `existingWorkflow` is false, for a workflow that is yet to be started.
   */
  async retrieveWorkflow<R = unknown>(workflowId: string, existingWorkflow: boolean | { existingWorkflow?: boolean | null | undefined } | null = true): Promise<WorkflowHandle<R>> {
    return this.handle<R>(workflowId, await ops.allowsMissing(this.engine, workflowId, existingWorkflow));
  }

  /** Waits for a workflow's result (recorded as an operation inside a workflow). */
  getResult<R = unknown>(workflowId: string): Promise<R> {
    return ops.getResult(this.engine, workflowId) as Promise<R>;
  }

  /** The workflow's status, or null if there is none (recorded inside a workflow). */
  getWorkflowStatus(workflowId: string): Promise<WorkflowStatus | null> {
    return ops.getWorkflowStatus(this.engine, workflowId);
  }

  /**
   * Waits for the first of these workflows to finish; the winner is recorded. @throws InvalidArgumentError for an empty list.
   * `pollingIntervalSec` is accepted as the reference has it, and unused: a finish wakes the wait.
   */
  async waitFirst<H extends WorkflowHandle<unknown>>(handles: readonly H[], options?: { pollingIntervalSec?: number | null | undefined } | null): Promise<H> {
    if (!Array.isArray(handles)) throw new InvalidArgumentError("waitFirst() needs an array of workflow handles.");
    const { pollingIntervalSec } = checkOptions("waitFirst", options, ["pollingIntervalSec"]);
    if (pollingIntervalSec !== undefined) checkSeconds("pollingIntervalSec", pollingIntervalSec);
    const id = await ops.waitFirst(this.engine, handles.map((h) => h?.workflowId));
    return handles.find((h) => h.workflowId === id)!;
  }

  /**
   * Waits on handles or promises like Python's asyncio.wait; which ones were done is recorded,
   * so a replay takes the same branch.
   */
  async wait<T extends WorkflowHandle<unknown> | Promise<unknown>>(
    items: readonly T[],
    options: { returnWhen?: ReturnWhen | null | undefined; timeoutSeconds?: number | null | undefined } | null = {},
  ): Promise<{ done: T[]; pending: T[] }> {
    if (!Array.isArray(items) || items.length === 0 || !items.every((item) => isHandle(item) || typeof (item as Promise<unknown>)?.then === "function")) {
      throw new InvalidArgumentError("wait() needs a non-empty array of workflow handles or promises (as asyncio.wait does).");
    }
    // Outside a workflow a handle's wait is given up once the split is known (`signal`); inside,
    // its getResult is a durable operation of the run that goes on, as the reference's pending tasks do.
    const watch = (item: T, signal: AbortSignal): ops.Watched => {
      if (!isHandle(item)) return { settled: item as Promise<unknown>, looked: new Promise((resolve) => setImmediate(resolve)) };
      const settled = (item.getResult as (signal?: AbortSignal) => Promise<unknown>)(signal);
      const looked = this.engine.outcomes.finished(item.workflowId).then((done) => done && settled.catch(() => {}), () => undefined);
      return { settled, looked, lost: (error) => failedHere(error) || this.engine.shutDown };
    };
    return ops.wait(this.engine, items, watch, options);
  }

  // ——— durable context operations ———

  /** Durable sleep: the wake-up time is recorded, so a recovered workflow sleeps only what remains. */
  sleep(seconds: number): Promise<void> {
    return ops.sleep(this.engine, seconds);
  }

  /** The current time in epoch ms, recorded inside a workflow (a replay returns the same value). */
  now(): Promise<number> {
    return ops.now(this.engine);
  }

  /** A random UUID, recorded inside a workflow. */
  randomUUID(): Promise<string> {
    return ops.randomUUID(this.engine);
  }

  /**
   * Sends a message to a workflow; with `idempotencyKey` it is delivered once however often sent.
   * With no topic, the options may stand in its place. @throws WorkflowNotFoundError
   */
  send(destinationId: string, message: unknown, topic?: string | null, options?: SendOptions | null): Promise<void>;
  send(destinationId: string, message: unknown, options: SendOptions): Promise<void>;
  send(destinationId: string, message: unknown, topic?: string | null | SendOptions, options?: SendOptions | null): Promise<void> {
    return ops.send(this.engine, destinationId, message, topic, options);
  }

  /**
   * Receives the oldest message on `topic` (workflow only), waiting up to `timeoutSeconds`
   * (default 60; a number or `{ timeoutSeconds }`); null on timeout.
   */
  recv<T = unknown>(topic?: string | null, timeoutSeconds?: number | WaitOptions | null): Promise<T | null>;
  recv<T = unknown>(options: WaitOptions): Promise<T | null>;
  recv<T = unknown>(topic?: string | null | WaitOptions, timeoutSeconds?: number | WaitOptions | null): Promise<T | null> {
    return ops.recv(this.engine, topic, timeoutSeconds) as Promise<T | null>;
  }

  /** Publishes an event of this workflow (workflow or step only); the last value wins. */
  setEvent(key: string, value: unknown, options?: ValueOptions | null): Promise<void> {
    return ops.setEvent(this.engine, key, value, options);
  }

  /** The latest value of a workflow's event, waiting up to `timeoutSeconds` (default 60) for it; null on timeout. */
  getEvent<T = unknown>(workflowId: string, key: string, timeoutSeconds?: number | WaitOptions | null): Promise<T | null> {
    return ops.getEvent(this.engine, workflowId, key, timeoutSeconds) as Promise<T | null>;
  }

  /** Latest values of every event of a workflow. */
  getAllEvents(workflowId: string): Promise<Record<string, unknown>> {
    return ops.getAllEvents(this.engine, workflowId);
  }

  /** Appends a value to this workflow's stream `key` (workflow or step only). */
  writeStream(key: string, value: unknown, options?: ValueOptions | null): Promise<void> {
    return streams.writeStream(this.engine, key, value, options);
  }

  /** Closes this workflow's stream `key`: readers end after the values written so far. */
  closeStream(key: string): Promise<void> {
    return streams.closeStream(this.engine, key);
  }

  /**
   * Reads a workflow's stream in order until it is closed or the workflow ends.
   * @throws StreamTimeoutError when no value arrives within `timeoutSeconds` (per value).
   */
  readStream<T = unknown>(workflowId: string, key: string, options?: { offset?: number | null | undefined; timeoutSeconds?: number | null | undefined } | null): AsyncIterable<T> {
    return streams.readStream(this.engine, workflowId, key, options) as AsyncIterable<T>;
  }

  /** True on a new run (records a marker) or one that recorded this patch; false on runs from before it. */
  patch(name: string): Promise<boolean> {
    return ops.patch(this.engine, name);
  }

  /** Always true; skips the marker of a patch that is being retired. */
  deprecatePatch(name: string): Promise<boolean> {
    return ops.deprecatePatch(this.engine, name);
  }

  // ——— context variables ———

  /** The running workflow's ID; `undefined` outside a workflow. */
  get workflowId(): string | undefined {
    return currentContext()?.run.workflowId;
  }

  /** The running step's position in its workflow (its `functionId`); `undefined` outside a step. */
  get stepId(): number | undefined {
    return currentContext()?.step?.stepId;
  }

  /** Inside a step: its ID, and with retries on, the 0-based attempt and the most there will be (else null). */
  get stepStatus(): { stepId: number; currentAttempt: number | null; maxAttempts: number | null } | undefined {
    const step = currentContext()?.step;
    return step ? { ...step } : undefined;
  }

  /** The user the running workflow was started for (`authenticatedUser`); `undefined` outside a workflow. */
  get authenticatedUser(): string | null | undefined {
    return currentContext()?.run.authenticatedUser;
  }

  /** The running workflow's app version; outside one, this executor's. */
  get appVersion(): string {
    return currentContext()?.run.appVersion ?? this.engine.appVersion;
  }

  /** This executor's ID (`executorId`, `DURO_EXECUTOR_ID`, or "local"). */
  get executorId(): string {
    return this.engine.executorId;
  }

  /** Whether the caller runs inside a workflow (a step included). */
  isInWorkflow(): boolean {
    return currentContext() !== undefined;
  }

  /** Whether the caller runs inside a step. */
  isInStep(): boolean {
    return currentContext()?.step !== undefined;
  }

  // ——— management ———

  /**
   * Enqueues one workflow per argument list, all in one transaction: either every one is
   * enqueued or none is (a deduplicated one throws DuplicateWorkflowError and nothing is written).
   */
  async enqueueMany<A extends unknown[], R>(workflow: Workflow<A, R>, argsList: readonly A[]): Promise<WorkflowHandle<R>[]> {
    if (typeof workflow?.workflowName !== "string") throw new InvalidArgumentError("enqueueMany() needs a workflow returned by registerWorkflow().");
    const ids = await enqueueMany(this.engine, workflow.workflowName, argsList, workflow.startOptions);
    return ids.map((id) => this.handle<R>(id));
  }

  /**
   * Runs `workflow` on a cron schedule (5 fields, or 6 with seconds first: `"0 * * * *"` is hourly), with the
   * tick's time (a Date) as its input. Each tick runs exactly once across all executors sharing
   * the database; ticks missed while every executor was down are skipped unless `catchUp`.
   */
  async schedule(name: string, cron: string, workflow: Workflow<[Date], unknown>, options?: ScheduleOptions | null): Promise<void> {
    if (typeof workflow?.workflowName !== "string") throw new InvalidArgumentError("schedule() needs a workflow returned by registerWorkflow().");
    // Options bound with with() apply to every tick, but for those a tick cannot share with the others.
    const { queueName, ...bound } = workflow.startOptions;
    for (const key of ["workflowId", "deadlineEpochMs", "deduplicationId", "partitionKey"] as const) {
      if (bound[key] != null) throw new InvalidArgumentError(`schedule() starts each tick as a workflow of its own: ${key} cannot be bound to a scheduled workflow.`);
    }
    const given = checkOptions("schedule", options, KEYS.schedule);
    return this.engine.addSchedule(name, cron, workflow.workflowName, { ...given, queueName: given.queueName ?? queueName ?? undefined }, bound as Start);
  }

  // ——— management (each is a recorded operation when called inside a workflow) ———

  /** Workflows matching `filter` (see ListWorkflowsFilter), oldest first unless `sortDesc`. */
  listWorkflows(filter: ListWorkflowsFilter | null = {}): Promise<WorkflowStatus[]> {
    return this.managed("listWorkflows", () => listWorkflows(this.engine, filter));
  }

  /** Workflows waiting in or running from a queue (ENQUEUED, DELAYED or PENDING). */
  listQueuedWorkflows(filter: Omit<ListWorkflowsFilter, "queuesOnly"> | null = {}): Promise<WorkflowStatus[]> {
    return this.managed("listQueuedWorkflows", () => listWorkflows(this.engine, { ...filter, queuesOnly: true }));
  }

  /** The recorded operations of a workflow, by function ID (none for an unknown ID, as the reference library: a listing, not a lookup). */
  listWorkflowSteps(workflowId: string, options: { limit?: number | null | undefined; offset?: number | null | undefined } | null = {}): Promise<StepInfo[]> {
    return this.managed("listWorkflowSteps", () => listWorkflowSteps(this.engine, workflowId, options));
  }

  /**
   * Sets CANCELLED, removes it from its queue and stops it at its next durable operation; with
   * `cancelChildren`, the same for its descendants. Finished and unknown workflows are left alone.
   */
  cancelWorkflow(workflowId: string, options?: { cancelChildren?: boolean | null | undefined } | null): Promise<void> {
    return this.cancelWorkflows([workflowId], options);
  }

  cancelWorkflows(workflowIds: readonly string[], options?: { cancelChildren?: boolean | null | undefined } | null): Promise<void> {
    return this.managed("cancelWorkflow", () => cancel(this.engine, workflowIds, options));
  }

  /**
   * Restarts a workflow (CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED, or still queued) from its last
   * completed step, here and now — or, with `queueName`, through that queue. Finished workflows
   * are left alone. @throws WorkflowNotFoundError
   */
  async resumeWorkflow<R = unknown>(workflowId: string, options: { queueName?: string | null | undefined } | null = {}): Promise<WorkflowHandle<R>> {
    const [handle] = await this.resumeWorkflows<R>([workflowId], options);
    return handle;
  }

  /** resumeWorkflow for several workflows: all or nothing. */
  async resumeWorkflows<R = unknown>(workflowIds: readonly string[], options: { queueName?: string | null | undefined } | null = {}): Promise<WorkflowHandle<R>[]> {
    await this.managed("resumeWorkflow", () => resume(this.engine, checkIds(workflowIds), options));
    return workflowIds.map((id) => this.handle<R>(id));
  }

  /**
   * Starts a new workflow that reuses the recorded outputs (and events, stream values) of the
   * operations before `startStep` and runs the rest; it records `forkedFrom`. A `startStep` of 1
   * or less runs everything again; one past the record or more reuses every recorded output.
   * @throws WorkflowNotFoundError
   */
  async forkWorkflow<R = unknown>(
    workflowId: string,
    startStep: number,
    options: ForkOptions | null = {},
  ): Promise<WorkflowHandle<R>> {
    const id = await this.managed("forkWorkflow", () => fork(this.engine, workflowId, startStep, options));
    return this.handle<R>(id);
  }

  /** Moves the start of a DELAYED workflow: exactly one of `delaySeconds` (from now) or `delayUntilEpochMs`. */
  setWorkflowDelay(workflowId: string, options: { delaySeconds?: number | null | undefined; delayUntilEpochMs?: number | null | undefined } | null): Promise<void> {
    return this.managed("setWorkflowDelay", () => setWorkflowDelay(this.engine, workflowId, options));
  }

  /** Management calls inside a workflow are operations: their results are recorded (their errors are not, as in the reference library). */
  private async managed<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = currentRun(this.engine);
    return run ? checkpoint(this.engine, run, `duro.${name}`, fn, {}, "always", () => false) : fn();
  }

  private handle<R>(workflowId: string, untilCreated = false): WorkflowHandle<R> {
    return ops.handleOf<R>(this.engine, workflowId, untilCreated);
  }
}

function isHandle(item: unknown): item is WorkflowHandle<unknown> {
  return typeof item === "object" && item !== null && typeof (item as WorkflowHandle<unknown>).workflowId === "string" && typeof (item as WorkflowHandle<unknown>).getResult === "function";
}
