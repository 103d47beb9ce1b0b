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
import { createHash } from "node:crypto";
import { DatabaseError, DuroError, InvalidArgumentError } from "../errors.js";
import { deserializeInputs, inspectable, registerErrorClass, serialize, serializeError } from "../serialization.js";
import { openStore, DEFAULT_DATABASE_URL } from "../storage/open.js";
import type { CancelChildren, OperationRow, Store, WorkflowRow } from "../storage/store.js";
import type { DuroConfig, Logger, QueueOptions, ScheduleOptions, WorkflowOptions, WorkflowStatus } from "../types.js";
import { Committer } from "./committer.js";
import { als, WorkflowRun } from "./context.js";
import { consoleLogger, guardedLogger, Recurring } from "./logger.js";
import { toStatus } from "./management.js";
import { type Outcome, Outcomes } from "./outcomes.js";
import { LocalSlots, QueueDispatcher, QueuePoll, riderOf, validateQueueOptions } from "./queues.js";
import { checkConfig, checkKey, checkText, shown, type Given } from "./checks.js";
import { failedHere } from "./checkpoint.js";
import { Recovery } from "./recovery.js";
import { RowReader } from "./reads.js";
import { Schedule } from "./schedules.js";
import type { Start } from "./start.js";
import { MAX_TIMEOUT_MS, settlesWithin, SHUTDOWN_STEP_MS, Timers } from "./timers.js";
import { Deadlines } from "./deadlines.js";
import { Turns, Waiters } from "./waiters.js";

export interface RegisteredWorkflow {
  name: string;
  fn: (...args: any[]) => Promise<unknown>;
  /** The user's function source, which the default app version hashes. */
  source: string;
  options: Given<WorkflowOptions>;
}

/** Where a client puts workflows it resumes or forks: every executor dispatches it, without limits. */
export const INTERNAL_QUEUE = "_duro_internal";

/** Waiters, and runs, the safety poll looks at each time. */
const SAFETY_SHARE = 500;

export class Engine {
  readonly executorId: string;
  readonly logger: Logger;
  readonly databaseUrl: string;
  readonly maxRecoveryAttempts: number;
  readonly timers = new Timers();
  readonly deadlines: Deadlines = new Deadlines(this.timers, {
    cancel: (id) => this.cancel([id]), stopRun: (id) => this.stopRun(id, "cancelled"), runsHere: (id) => this.running.has(id), closed: () => this.closed,
  });
  readonly waiters = new Waiters(this.timers, () => this.listen());
  /** Subscribed to other processes' commits (an executor at launch; a client at its first wait). */
  private listening = false;
  readonly workflows = new Map<string, RegisteredWorkflow>();
  /** Runs executing in this process, by workflow ID, with the promise that settles when each ends. */
  readonly running = new Map<string, WorkflowRun>();
  readonly runEnds = new Map<string, Promise<void>>();
  /** Local runs per queue, and per partition of each queue, for workerConcurrency. */
  readonly slots = new LocalSlots();
  readonly queues = new Map<string, QueueDispatcher>();
  readonly queuePoll = new QueuePoll(this);
  private readonly schedules = new Map<string, Schedule>();
  /** Rows read by ID, batched (see reads.ts): without their input for waiters, whole for getStatus. */
  readonly rows = new RowReader(() => this.store, false);
  private readonly statuses = new RowReader(() => this.store, true);
  readonly outcomes = new Outcomes(this);
  private _store?: Store;
  private _committer?: Committer;
  private _appVersion?: string;
  /** appVersion, else DURO_APP_VERSION: when neither is set, the version is a hash of the code. */
  private readonly givenAppVersion?: string;
  private launching?: Promise<void>;
  private closing?: Promise<void>;
  /**
   * Launched, and recovery has handed this executor's own work to its queues: queues and
   * schedules registered from now on start at once (before, the launch starts them after recovery).
   */
  private serving = false;
  /** The store a launch is connecting to or migrating (closed by a shutdown meanwhile, to cut it short). */
  private opening?: Store;
  private safetyPoll?: NodeJS.Timeout;
  private safetyChecks = 0;
  private sweepPending?: NodeJS.Timeout;
  private closed = false;
  private readonly runTurns = new Turns();
  private readonly checkingCancels = new Recurring(() => this.logger);
  /** Brings PENDING work back to run here: at launch, by takeover, after an interruption. */
  readonly recovery = new Recovery(this);

  /** `client`: an engine that runs no workflows (DuroClient): no recovery, dispatch or heartbeat. */
  constructor(
    readonly config: Given<DuroConfig, "maxRecoveryAttempts">,
    readonly client = false,
    /** Whether a launch creates duro's tables where there are none (DuroClient's createSchema). */
    private readonly createSchema = true,
  ) {
    checkConfig(config);
    this.databaseUrl = config.databaseUrl ?? process.env.DURO_DATABASE_URL ?? DEFAULT_DATABASE_URL;
    this.executorId = config.executorId ?? process.env.DURO_EXECUTOR_ID ?? "local";
    this.logger = config.logger ? guardedLogger(config.logger) : consoleLogger();
    // null (the reference's None) or Infinity: no limit.
    this.maxRecoveryAttempts = config.maxRecoveryAttempts === null ? Infinity : config.maxRecoveryAttempts ?? 100;
    if (!(Number.isInteger(this.maxRecoveryAttempts) || this.maxRecoveryAttempts === Infinity) || this.maxRecoveryAttempts < 0) {
      throw new InvalidArgumentError(`maxRecoveryAttempts must be a non-negative integer, or null for no limit, got ${shown(config.maxRecoveryAttempts)}.`);
    }
    if (typeof this.executorId !== "string" || this.executorId.trim() === "") throw new InvalidArgumentError("executorId must be a non-empty string.");
    // Both are stored with every workflow started here and matched at recovery: kept exactly, as IDs are.
    checkText("executorId", this.executorId);
    this.givenAppVersion = config.appVersion ?? (client ? undefined : process.env.DURO_APP_VERSION || undefined); // a client's enqueues carry none
    if (this.givenAppVersion !== undefined) checkKey(config.appVersion != null ? "appVersion" : "DURO_APP_VERSION", this.givenAppVersion);
    // Its work arrives with a wake-up (a client's NOTIFY or commit), so its safety poll can be slow.
    if (!client) this.queues.set(INTERNAL_QUEUE, new QueueDispatcher(this, INTERNAL_QUEUE, { pollingIntervalSeconds: 5 }));
  }

  get store(): Store {
    if (!this._store) throw this.notLaunched();
    return this._store;
  }

  get committer(): Committer {
    if (!this._committer) throw this.notLaunched();
    return this._committer;
  }

  /** The error of an instance used before its launch got this far: shut down meanwhile, it says so; else it says to launch. */
  private notLaunched(): DuroError {
    return this.closed ? this.closedError() : new DuroError("duro is not launched: call `await duro.launch()` before starting or querying workflows.");
  }

  get launched(): boolean {
    return this._committer !== undefined && !this.closed;
  }

  /** The app version: configured (or DURO_APP_VERSION), else a hash of the registered workflows' names and sources. */
  get appVersion(): string {
    if (this._appVersion) return this._appVersion;
    if (this.givenAppVersion) return this.givenAppVersion;
    const hash = createHash("sha256");
    for (const name of [...this.workflows.keys()].sort()) hash.update(name).update("\0").update(this.workflows.get(name)!.source).update("\0");
    return hash.digest("hex").slice(0, 32);
  }

  register(workflow: RegisteredWorkflow): void {
    if (this.workflows.has(workflow.name)) throw new InvalidArgumentError(`A workflow named "${workflow.name}" is already registered; names must be unique.`);
    if (this._appVersion && !this.givenAppVersion) {
      this.logger.warn(`Workflow "${workflow.name}" was registered after launch(); register every workflow before launch() so the app version covers it.`);
    }
    this.workflows.set(workflow.name, workflow);
  }

  /** Whether shutdown() (or a client's close()) has begun. */
  get shutDown(): boolean {
    return this.closed;
  }

  closedError(): DuroError {
    return new DuroError(this.client ? "This DuroClient is closed; create a new one." : "This Duro instance was shut down; create a new one.");
  }

  launch(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    this.launching ??= this.doLaunch().catch((error) => {
      this.launching = undefined;
      throw error;
    });
    return this.launching;
  }

  private async doLaunch(): Promise<void> {
    if (!this.client) for (const schedule of this.schedules.values()) schedule.check();
    const leaseMs = (this.config.executorLeaseSeconds ?? 30) * 1000;
    const store = await openStore(this.databaseUrl, {
      poolSize: this.config.poolSize, connectTimeoutSeconds: this.config.connectTimeoutSeconds, idleInTransactionMs: leaseMs,
      warn: (message) => this.logger.warn(message), info: (message) => this.logger.info(message),
    });
    this.opening = store;
    try {
      await store.migrate({ create: this.createSchema });
    } catch (error) {
      await store.close().catch(() => undefined); // a connection kept open would keep the process alive
      if (this.closed) return; // shut down meanwhile: nothing was launched, and nothing is left running
      throw error;
    } finally {
      this.opening = undefined;
    }
    if (this.closed) return void (await store.close());
    this._appVersion = this.appVersion;
    this._store = store;
    try {
      await this.serve(store, leaseMs);
    } catch (error) {
      // Half launched (listening, polling, perhaps recovering): stop it all, as shutdown() does,
      // so the process can exit; a later launch() says to create a new instance.
      if (!this.closed) await (this.closing = this.close());
      throw error;
    }
  }

  private async serve(store: Store, leaseMs: number): Promise<void> {
    // Others were likely cut off too: judge nobody's lease for a while (see Recovery).
    store.onConnectionLost?.(() => this.recovery.distrust());
    this._committer = new Committer(store, (keys) => this.announce(keys), store.dialect === "postgres" ? 3 : 1, (batch) => riderOf(this.queues, batch), this);
    // A client that only enqueues never waits: it need not hold a LISTEN connection (nor
    // slow every NOTIFY by being one more listener) or poll SQLite's data_version.
    if (!this.client) this.listen();
    const pollMs = Math.min((this.config.safetyPollSeconds ?? 5) * 1000, MAX_TIMEOUT_MS);
    this.safetyPoll = setInterval(() => void this.safetyCheck(), pollMs);
    this.safetyPoll.unref();
    if (this.client) return;
    await this.recovery.start(leaseMs);
    if (this.closed) return; // shut down meanwhile
    this.serving = true;
    for (const queue of this.queues.values()) queue.start();
    // Those registered from here on start as they are added (see addSchedule), not here too.
    for (const schedule of [...this.schedules.values()]) await schedule.start();
  }

  /** Registers a queue; its dispatcher starts at launch (or at once if already launched). */
  addQueue(name: string, given: QueueOptions | null | undefined): void {
    const options = validateQueueOptions(name, given);
    if (this.queues.has(name)) throw new InvalidArgumentError(`A queue named "${name}" is already registered on this Duro instance.`);
    const queue = new QueueDispatcher(this, name, options);
    this.queues.set(name, queue);
    if (this.serving && this.launched) queue.start();
  }

  /** Registers a cron schedule; it starts ticking at launch (or at once if already launched). */
  async addSchedule(name: string, expression: string, workflowName: string, options: Given<ScheduleOptions>, start: Readonly<Start>): Promise<void> {
    if (this.closed) throw this.closedError();
    if (this.schedules.has(name)) throw new InvalidArgumentError(`A schedule named "${name}" is already registered.`);
    if (!this.workflows.has(workflowName)) throw new InvalidArgumentError(`No workflow named "${workflowName}" is registered on this Duro instance.`);
    const schedule = new Schedule(this, name, expression, workflowName, options, start);
    if (this.launching) schedule.check(); // launch() checked those registered before it
    this.schedules.set(name, schedule);
    if (this.serving && this.launched) await schedule.start();
  }

  /** Wakes what committed writes may have unblocked: waiters, and the dispatchers of queues. */
  announce(keys: Iterable<string>): void {
    this.waiters.wake(keys);
    this.triggerQueues(keys);
  }

  private triggerQueues(keys: Iterable<string>): void {
    for (const key of keys) {
      // Every queue: more than two ask the store first which of them have work (see QueuePoll).
      if (key === "queue") for (const queue of this.queues.values()) this.queues.size > 2 ? queue.safetyPoll() : queue.trigger();
      else if (key.startsWith("queue:")) this.queues.get(key.slice(6))?.trigger();
      else if (key.startsWith("due:")) {
        const colon = key.indexOf(":", 4);
        this.queues.get(key.slice(colon + 1))?.delayedUntil(Number(key.slice(4, colon)));
      }
    }
  }

  /** Every call resolves once the shutdown is done, a second one included. */
  shutdown(): Promise<void> {
    return (this.closing ??= this.close(this.launching));
  }

  /**
   * Stops everything. `launching`, a launch under way, is cut short where it can be (a connection
   * being retried) and let finish before the store closes; what it started meanwhile is stopped too.
   */
  private async close(launching?: Promise<void>): Promise<void> {
    this.closed = true;
    this.stopServing();
    if (launching) {
      void this.opening?.close().catch(() => undefined);
      await launching.catch(() => undefined);
      this.stopServing();
    }
    // Writes under way finish first; behind a link gone silent they would wait out a lost
    // connection's 60 s, so after SHUTDOWN_STEP_MS the store is closed under them instead (they fail as on a
    // lost connection, and their runs, still PENDING, run again later) and the farewell is skipped.
    const written = await settlesWithin(this._committer?.close(), SHUTDOWN_STEP_MS);
    if (!written) {
      this.logger.warn(
        `Writes under way did not finish within ${SHUTDOWN_STEP_MS / 1000} s of ${this.client ? "close()" : "shutdown()"}: closing the store under them ` +
          `(${this.client ? "their calls fail with DatabaseError" : "their workflows run again later"}).`,
      );
    }
    if (!this.client && written) await this.recovery.leave();
    this.waiters.close(() => new DuroError(this.client ? "The DuroClient was closed while waiting." : "duro was shut down while waiting."));
    this.timers.stop();
    await this._store?.close();
  }

  private stopServing(): void {
    clearInterval(this.safetyPoll);
    this.recovery.stop();
    clearTimeout(this.sweepPending);
    for (const queue of this.queues.values()) queue.stop();
    for (const schedule of this.schedules.values()) schedule.stop();
    for (const run of this.running.values()) run.stop("shutdown");
  }

  // ——— starting and running ———

  /** Runs a claimed or resumed workflow here if its code is registered (else it stays PENDING for takeover). */
  executeRegistered(row: WorkflowRow, operations: OperationRow[]): void {
    const workflow = this.workflows.get(row.name);
    if (workflow) this.execute(row, operations, workflow);
    else this.logger.warn(`Workflow ${row.workflowId} runs "${row.name}", which is not registered here.`);
  }

  /** Runs a workflow body in this process (fresh, or replaying `operations`). */
  execute(row: WorkflowRow, operations: OperationRow[], workflow: RegisteredWorkflow): void {
    // One run per workflow per process. A stopped run (cancelled, say, then resumed or claimed
    // here again before its step returned) hands over when it ends: see Recovery.handOver.
    if (this.running.has(row.workflowId)) return;
    const run = new WorkflowRun(
      row.workflowId, row.name, row.serialization, row.authenticatedUser, row.appVersion ?? this.appVersion, row.deadlineEpochMs,
      new Map(operations.map((op) => [op.functionId, op])), this,
    );
    this.running.set(row.workflowId, run);
    if (!this.recovery.holdsSlot(row.workflowId)) this.slots.count(row, 1); // else its slot was kept
    const deadline = this.deadlines.watchRun(row.workflowId, row.deadlineEpochMs);
    if (deadline) run.onStop(() => deadline.cancel());
    // Past its deadline: cancelled without running a step (cancelDue stops the run, then writes the cancel).
    if (row.deadlineEpochMs !== null && row.deadlineEpochMs <= Date.now()) this.deadlines.cancelDue(row.workflowId);
    const end = als.run({ run }, () => this.runBody(run, row, workflow)).finally(() => {
      this.runEnds.delete(row.workflowId);
      if (!this.recovery.holdsSlot(row.workflowId)) this.slots.count(row, -1);
      if (row.queueName) this.queues.get(row.queueName)?.trigger();
      if ((run.stopped === "cancelled" || run.stopped === "superseded") && !this.closed) this.recovery.handOver(row);
    });
    this.runEnds.set(row.workflowId, end);
  }

  private async runBody(run: WorkflowRun, row: WorkflowRow, workflow: RegisteredWorkflow): Promise<void> {
    let outcome: Outcome;
    try {
      run.checkStopped(); // e.g. claimed after its deadline: not a single line of it runs
      const args = deserializeInputs(row.inputs, row.serialization);
      outcome = { status: "SUCCESS", output: await workflow.fn(...args) };
    } catch (thrown) {
      const error = inspectable(thrown);
      outcome = { status: "ERROR", error };
      // The database, not the workflow, failed (a write the body caught and rethrew, a DuroClient's
      // call); not so an error recorded as an outcome (a step's, a child's): the workflow ends with it.
      if (failedHere(error)) run.stop("interrupted");
    }
    try {
      if (run.stopped) {
        // Cancelled (status already says so) or shutting down: write nothing. Interrupted: nor
        // that, since the failure is not the workflow's; it runs again from its checkpoints.
        if (run.stopped === "interrupted") this.recovery.resumeWhenReachable(row, outcome.error);
        return;
      }
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
        queueName: row.queueName, executorId: this.executorId,
      });
      // The outcome is remembered as stored, so callers here get what other processes get.
      if (result.completed) this.outcomes.remember(row.workflowId, outcome.status as "SUCCESS" | "ERROR", outcome.status === "SUCCESS" ? output : error, row.serialization);
      run.stop("finished");
      this.waiters.wake([`status:${row.workflowId}`]); // the commit's own wake-up came before we knew the outcome
    } catch (error) {
      if (error instanceof DatabaseError) this.recovery.resumeWhenReachable(row, error);
      else if (!this.closed) this.logger.error(`Could not record the outcome of workflow ${row.workflowId}: it stays PENDING until this executor restarts or is taken over.`, { error: String(error) });
    } finally {
      run.stop("finished");
      this.running.delete(row.workflowId);
    }
  }

  // ——— status ———

  async getStatus(workflowId: string): Promise<WorkflowStatus | null> {
    const row = await this.statuses.read(workflowId);
    return row ? toStatus(row) : null;
  }

  // ——— cancellation ———

  /**
   * Cancels workflows; a deadline's cancel takes the children too, those that have a deadline
   * (most share it anyway): one started with timeoutSeconds null was meant to outlive it.
   */
  async cancel(workflowIds: string[], children: CancelChildren = "timed"): Promise<void> {
    const changed = await this.store.cancelWorkflows(workflowIds, Date.now(), children);
    for (const id of changed) this.stopRun(id, "cancelled");
    this.announce(["queue", ...changed.map((id) => `status:${id}`)]);
  }

  private listen(): void {
    if (this.listening || !this._store) return;
    this.listening = true;
    this._store.onExternalChange((keys) => this.onExternalChange(keys));
  }

  private onExternalChange(keys: string[] | null): void {
    this.waiters.wake(keys);
    this.triggerQueues(keys ?? ["queue"]);
    if (keys === null) {
      // Something changed somewhere (SQLite): look for cancellations, at most every 100 ms.
      if (!this.sweepPending && this.running.size) {
        this.sweepPending = setTimeout(() => {
          this.sweepPending = undefined;
          void this.stopInterrupted([...this.running.keys()]);
        }, 100);
        this.sweepPending.unref();
      }
      return;
    }
    const touched = keys.filter((k) => k.startsWith("status:") && this.running.has(k.slice(7))).map((k) => k.slice(7));
    if (touched.length) void this.stopInterrupted(touched);
  }

  /** Stops a local run; whoever awaits its result looks again (it will not complete here). */
  stopRun(workflowId: string, reason: "cancelled" | "superseded"): void {
    const run = this.running.get(workflowId);
    if (!run || run.stopped) return;
    run.stop(reason);
    this.waiters.wake([`status:${workflowId}`]);
  }

  /** Stops local runs whose workflows another process cancelled, took over or finished (rows read as the waiters' are, batched). */
  async stopSuperseded(ids: string[]): Promise<void> {
    // Only the runs under way when the rows were asked for: a run started meanwhile (resumed onto
    // a queue, then claimed back here) was started from a newer row than the one read.
    const runs = new Map(ids.map((id) => [id, this.running.get(id)]));
    for (const row of await Promise.all(ids.map((id) => this.rows.read(id)))) {
      const run = row && this.running.get(row.workflowId);
      if (!run || run !== runs.get(row.workflowId) || run.stopped) continue;
      // Cancelled, dead-lettered, or resumed onto a queue: the outcome of an operation under way is kept.
      if (row.status === "CANCELLED" || row.status === "MAX_RECOVERY_ATTEMPTS_EXCEEDED" || row.status === "ENQUEUED") this.stopRun(row.workflowId, "cancelled");
      else if (row.status === "PENDING" && row.executorId !== this.executorId) {
        this.logger.info(`Workflow ${row.workflowId} is now run by executor ${row.executorId}; stopping this run here.`);
        this.stopRun(row.workflowId, "superseded");
      } else if (row.status !== "PENDING") {
        // Finished by the executor that took it over (or by this run, whose outcome is recorded).
        this.stopRun(row.workflowId, "superseded");
      }
    }
  }

  private async stopInterrupted(ids: string[]): Promise<void> {
    try {
      await this.stopSuperseded(ids);
      this.checkingCancels.passed("Checking for cancelled workflows works again.");
    } catch (error) {
      if (!this.closed) this.checkingCancels.failed(`Could not check for cancelled workflows (${String(error)}); trying again at the next safety poll`);
    }
  }

  /**
   * The safety poll: what a missed wake-up would have told. Waiters and runs are looked at a
   * share at a time, so its cost stays bounded however many wait (10,000 waiting in recv cost a
   * quarter of a core when all were checked every poll); each is looked at within a few minutes.
   */
  private async safetyCheck(): Promise<void> {
    if (this.closed) return;
    this.waiters.wakeSome(SAFETY_SHARE);
    this.triggerQueues(["queue"]);
    // At the first poll and every sixth after (30 s by default), an executor lets the store look after its tables.
    if (!this.client && this.safetyChecks++ % 6 === 0) {
      void this.store.maintain?.().then(
        (done) => done.length && this.logger.debug(`Table housekeeping: ${done.join(", ")}.`),
        (error) => this.logger.debug("Table housekeeping failed; tried again later.", { error: String(error) }),
      );
    }
    if (this.running.size) await this.stopInterrupted(this.runTurns.take([...this.running.keys()], SAFETY_SHARE));
  }
}
