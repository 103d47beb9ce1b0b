/**
 * How PENDING work comes back to run here, three ways:
 *
 * - at launch: this executor's own workflows, left PENDING by its previous process;
 * - by takeover: the heartbeat keeps this executor's lease, and adopts the work of executors
 *   whose lease ran out (they died, or froze). Only once this executor's own beats have landed
 *   on time, with no connection lost, for a whole lease and the time another executor may take
 *   to reconnect: after an outage, a flickering database or a freeze the others' beats were held
 *   up too, and may land later than ours.
 *   And an executor that finds its own lease may have run out (it froze, or could not beat)
 *   checks which of its runs are still its own before any of them starts a step;
 * - after an interruption: a run whose durable operation could not reach the database (after
 *   the store's own retries) ends without an outcome and runs again once the database answers;
 * - as an orphan: a write the store gave up on (its reply lost) may still have committed, then
 *   or later, leaving a start's or a claim's row PENDING here with nothing running it (see adoptOrphans).
 *
 * Each time, the workflow's row and every recorded operation are loaded in one read and its
 * body runs again, answered from the record up to where it stopped.
 */
import { DatabaseError, MaxRecoveryAttemptsExceededError } from "../errors.js";
import type { LoadedWorkflow, WorkflowRow } from "../storage/store.js";
import type { Engine } from "./engine.js";
import { Recurring } from "./logger.js";
import { backedOff, settlesWithin, SHUTDOWN_STEP_MS } from "./timers.js";

/** An interruption this soon after a resume belongs to the same outage. */
const RELAPSE_MS = 60_000;
/** Workflows to run here loaded with one read. */
const LOAD_BATCH = 100;
/**
 * How long after the database flickered a write sent before may still commit: its bytes may sit in
 * the network, or in the server, well past the store's own retries (a dropped connection's unsent
 * data is still delivered; TCP gives up retransmitting after about 15 minutes).
 */
const LATE_COMMIT_MS = 20 * 60_000;

export class Recovery {
  private heartbeatTimer?: NodeJS.Timeout;
  private heartbeating = false;
  private readonly beatTrouble = new Recurring(() => this.engine.logger);
  private stopped = false;
  /** This executor's lease (set at start): others are presumed gone when their heartbeat is older. */
  leaseMs = 0;
  /** The time the last beat wrote (others judge the lease by it), when it landed, and since when beats land on time. */
  private lastWritten = 0;
  private lastLanded = 0;
  private onTimeSince = 0;
  private confirming?: Promise<void>;
  /** The beat being written, if any (a shutdown's leave must land after it). */
  private beating?: Promise<void>;
  /** Workflows whose run the database cut short, as they ran: each keeps its queue slot meanwhile. */
  private readonly interrupted = new Map<string, WorkflowRow>();
  private resuming = false;
  /** When the last interrupted workflows were resumed, and the tries' back-off (see resumeWhenReachable). */
  private lastResumed = -Infinity;
  private attempt = 0;
  /** Until when each beat looks for orphans (see adoptOrphans), and the recoveries under way meanwhile. */
  private orphansUntil = 0;
  private recovering = 0;
  /** Workflows this process is making PENDING here (a start, resume or fork under way), with how many such writes. */
  private readonly taking = new Map<string, number>();

  constructor(private readonly engine: Engine) {}

  /**
   * At launch: beats once, re-runs this executor's own PENDING workflows, then beats every third
   * of the lease. It takes over nobody during its first lease (and the store's reconnect slack):
   * others' beats may be held up.
   */
  async start(leaseMs: number): Promise<void> {
    const { engine } = this;
    this.leaseMs = leaseMs;
    await this.patiently(() => this.beat());
    // Beating from here on: loading thousands of recovered workflows takes seconds, and a lease
    // left to run out meanwhile would have another executor take over the runs starting here.
    // The heartbeat also keeps the process alive while launched, as a server's listening socket
    // would: an executor whose script ends with `await duro.launch()` goes on serving its queues.
    this.heartbeatTimer = setInterval(() => void this.heartbeatAndTakeOver(), this.interval);
    await this.recoveringWhile(async () => {
      const { recovered, deadLettered } = await this.patiently(() => engine.store.recoverPending({
        executorId: engine.executorId, appVersion: engine.appVersion, maxRecoveryAttempts: engine.maxRecoveryAttempts, now: Date.now(),
      }));
      this.deadLettered(deadLettered);
      await this.runAll(recovered, (_, error) => {
        throw error; // launch fails with it
      });
    });
    if (this.stopped) return;
    await this.warnOfOtherVersions().catch(() => undefined); // before launch() returns: one read
  }

  /**
   * Tells of this executor's PENDING work of other app versions, which it does not recover: in
   * development, editing any workflow after a crash changes the default version.
   */
  private async warnOfOtherVersions(): Promise<void> {
    const { engine } = this;
    const rows = await engine.store.listWorkflows({ status: ["PENDING"], executorId: [engine.executorId], loadInput: false, loadOutput: false, limit: 1000 });
    const others = rows.filter((r) => r.appVersion !== null && r.appVersion !== engine.appVersion);
    if (!others.length) return;
    engine.logger.warn(
      `${others.length} workflow(s) PENDING on executor ${engine.executorId} belong to another app version than this one ` +
        `(${engine.appVersion}), so they are not recovered here: run an executor of their version, set appVersion to theirs ` +
        `if the change is compatible, or cancel them and fork them onto this version (duro cancel <id>, then ` +
        `duro fork <id> --step N, N being the first operation to run again; the copy has a new ID).`,
      { appVersions: [...new Set(others.map((r) => r.appVersion))], workflowIds: others.slice(0, 10).map((r) => r.workflowId) },
    );
  }

  /**
   * A launch's first writes: another process's lock on a SQLite file (past the store's busy
   * timeout) is waited out for connectTimeoutSeconds, as opening the file waits it out.
   */
  private async patiently<T>(write: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.engine.config.connectTimeoutSeconds ?? 30) * 1000;
    for (;;) {
      try {
        return await write();
      } catch (error) {
        const code = String(((error as Error).cause as { code?: unknown } | undefined)?.code ?? "");
        if (!(error instanceof DatabaseError) || !/^SQLITE_(BUSY|LOCKED)/.test(code) || this.stopped || Date.now() >= deadline) throw error;
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
  }

  /** True while `workflowId` waits to run again after an interruption: its queue slot stays counted. */
  holdsSlot(workflowId: string): boolean {
    return this.interrupted.has(workflowId);
  }

  /**
   * Runs recovered or adopted workflows here, in order: at once, or when its queue's
   * workerConcurrency has a slot. Those to run at once are loaded LOAD_BATCH to a read (one
   * read each made a launch with 10,000 to recover take 7.6 s on PostgreSQL). A shutdown stops
   * it: the rest stay PENDING, to be recovered.
   */
  private async runAll(rows: WorkflowRow[], failed: (row: WorkflowRow, error: unknown) => void): Promise<void> {
    const { engine } = this;
    for (let i = 0; i < rows.length && !this.stopped; i += LOAD_BATCH) {
      const batch = rows.slice(i, i + LOAD_BATCH);
      const now = batch.filter((row) => !row.queueName || !engine.queues.get(row.queueName)?.adopt(row));
      let loaded: Map<string, LoadedWorkflow>;
      try {
        loaded = new Map((await engine.store.loadWorkflows(now.map((r) => r.workflowId))).map((l) => [l.workflow.workflowId, l]));
      } catch (error) {
        for (const row of now) failed(row, error);
        continue;
      }
      for (const row of now) {
        if (this.stopped) return;
        await this.resumeHere(row.workflowId, loaded.get(row.workflowId) ?? null).catch((error) => failed(row, error));
      }
    }
  }

  /**
   * Loads a workflow with its record (unless given it, or null for not found) and runs it here,
   * if it is PENDING here and its code is registered.
   */
  async resumeHere(workflowId: string, given?: LoadedWorkflow | null): Promise<void> {
    const { engine } = this;
    const previous = engine.running.get(workflowId);
    if (previous && !previous.stopped) return;
    if (previous) await engine.runEnds.get(workflowId); // a stopped run must end before the next one starts
    // A record read before a previous run ended may be stale: read it again then.
    const loaded = given !== undefined && !previous ? given : ((await engine.store.loadWorkflows([workflowId]))[0] ?? null);
    if (!loaded || loaded.workflow.status !== "PENDING" || loaded.workflow.executorId !== engine.executorId) return;
    // Past its deadline, it is cancelled rather than run (a run would stop at once and hand over
    // again, over and over while the cancel cannot be written).
    const { deadlineEpochMs } = loaded.workflow;
    if (deadlineEpochMs !== null && deadlineEpochMs <= Date.now()) return engine.deadlines.cancelDue(workflowId);
    // Another run here began and finished while the row was read (resume and a stopped run's
    // hand-over both look): the row read is stale, and the workflow must not run again.
    if (engine.outcomes.knows(workflowId)) return;
    const workflow = engine.workflows.get(loaded.workflow.name);
    if (!workflow) {
      engine.logger.warn(`Workflow ${workflowId} runs "${loaded.workflow.name}", which is not registered here; it stays PENDING.`);
      return;
    }
    engine.logger.info(`Recovering workflow ${workflowId} (${loaded.workflow.name}) from operation ${loaded.operations.length + 1}.`);
    engine.execute(loaded.workflow, loaded.operations, workflow);
  }

  /**
   * After a run stopped by a cancel or a move: while it finished its last step the workflow may
   * have become PENDING here again (resumed, or claimed back from a queue), and no new run could
   * start beside it. One read tells; if so, the workflow runs again from its record.
   */
  handOver(row: WorkflowRow): void {
    void this.resumeHere(row.workflowId).catch((error) => this.couldNotLoad(row, error));
  }

  /** A workflow to run here could not be loaded: if the database did not answer, it runs once it does. */
  private couldNotLoad(row: WorkflowRow, error: unknown): void {
    const { engine } = this;
    if (error instanceof DatabaseError) {
      engine.slots.count(row, 1); // as an interrupted run's, its slot stays counted until it runs
      this.resumeWhenReachable(row, error);
    } else if (engine.launched) {
      engine.logger.error(`Could not run workflow ${row.workflowId}: it stays PENDING until this executor restarts or is taken over.`, { error: String(error) });
    }
  }

  /**
   * Runs a workflow whose run the database cut short again from its checkpoints, once the
   * database answers. Nothing else would: its executor is alive, so no takeover or restart
   * recovers it. One loop serves all such workflows; while the database stays unreachable each
   * try waits out the store's own retries, and tries back off to 30 s in case it answers reads
   * but keeps failing writes.
   */
  resumeWhenReachable(row: WorkflowRow, cause?: unknown): void {
    const { engine } = this;
    if (!engine.launched) return;
    this.interrupted.set(row.workflowId, row);
    if (this.resuming) return;
    this.resuming = true;
    // Interrupted again soon after the last resume: the same outage (a database that answers
    // reads but refuses writes, as on a full disk, lets every resume run its next step body and
    // fail to record it), so the tries back off on from where they were, and nothing more is said.
    const relapse = Date.now() - this.lastResumed < RELAPSE_MS;
    if (!relapse) {
      this.attempt = 0;
      // One line per outage, not one per workflow: thousands may be running when it starts.
      engine.logger.warn(
        `Workflow ${row.workflowId} was interrupted: the database could not be reached, or refused a write` +
          `${cause instanceof DatabaseError ? ` (${cause.message})` : ""}. It, and any other workflow interrupted until ` +
          `the database answers, will run again from its checkpoints once it does.`,
      );
    }
    let resumed = 0;
    void (async () => {
      for (; this.interrupted.size && engine.launched; this.attempt++) {
        await backedOff(this.attempt, 30_000);
        for (const [id, row] of [...this.interrupted]) {
          if (!engine.launched) return;
          try {
            await this.resumeHere(id);
          } catch {
            break; // still unreachable: the rest wait for the next try
          }
          this.interrupted.delete(id);
          resumed++;
          // Not run here after all (finished, cancelled or taken over meanwhile): its slot is free.
          if (!engine.running.has(id)) engine.slots.count(row, -1);
        }
      }
      if (resumed && !relapse) engine.logger.info(`The database answers again: ${resumed} interrupted workflow(s) resumed.`);
      if (resumed) this.lastResumed = Date.now();
    })().finally(() => {
      this.resuming = false;
    });
  }

  /**
   * The database flickered: the others' beats may land late, so judge nobody for a lease; and a
   * write whose reply was lost may commit late, so look for orphans for a while.
   */
  distrust(): void {
    this.onTimeSince = Date.now();
    this.orphansUntil = Date.now() + LATE_COMMIT_MS;
  }

  /** Makes `workflowIds` PENDING here with `write` (a start, resume or fork), which then runs them: no orphans meanwhile. */
  async takingHere<T>(workflowIds: string[], write: () => Promise<T>): Promise<T> {
    for (const id of workflowIds) this.taking.set(id, (this.taking.get(id) ?? 0) + 1);
    try {
      return await write();
    } finally {
      for (const id of workflowIds) {
        const left = this.taking.get(id)! - 1;
        if (left) this.taking.set(id, left);
        else this.taking.delete(id);
      }
    }
  }

  private async recoveringWhile(recover: () => Promise<void>): Promise<void> {
    this.recovering++;
    try {
      await recover();
    } finally {
      this.recovering--;
    }
  }

  /**
   * Runs this executor's PENDING workflows that nothing here runs or is about to run. A write the
   * store gave up on (DatabaseError, its reply lost) may have committed anyway, then or later: a
   * start's row, or the rows a claim took, PENDING here with nothing running them, which no
   * takeover or restart would run while this executor lives. For a while after the database
   * flickered, each beat looks for them; not while a recovery, a claim or a start that may run
   * them is under way.
   */
  private async adoptOrphans(): Promise<void> {
    const { engine } = this;
    if (Date.now() > this.orphansUntil || this.recovering) return;
    const rows = await engine.store.listWorkflows({
      status: ["PENDING"], executorId: [engine.executorId], appVersion: [engine.appVersion], name: [...engine.workflows.keys()], loadInput: false, loadOutput: false,
    });
    if (this.recovering || !engine.launched) return;
    const orphans = rows.filter(({ workflowId: id, queueName }) =>
      !engine.running.has(id) && !this.taking.has(id) && !this.interrupted.has(id) && !engine.outcomes.knows(id) && !engine.deadlines.cancelling(id) &&
      !(queueName !== null && engine.queues.get(queueName)?.mayRun(id)));
    for (const row of orphans) engine.logger.warn(`Workflow ${row.workflowId} is PENDING on this executor with nothing running it (a write whose reply was lost committed after all): running it.`);
    await this.recoveringWhile(() => this.runAll(orphans, (row, error) => this.couldNotLoad(row, error)));
  }

  /** True when this executor's lease may have run out, until `confirmLease()` is done: a step must wait for it. */
  get leaseInDoubt(): boolean {
    return this.confirming !== undefined || (this.leaseMs > 0 && Date.now() >= this.lastWritten + this.leaseMs);
  }

  /**
   * Beats, then stops the runs here whose workflows are no longer PENDING on this executor (taken
   * over while its lease was out, or cancelled). While the database cannot be reached it keeps
   * trying: a step started meanwhile could not be recorded anyway.
   */
  confirmLease(): Promise<void> {
    this.confirming ??= (async () => {
      const checked = new Set<string>();
      for (let attempt = 0; this.engine.launched; attempt++) {
        try {
          await this.beat();
          // Runs that started while the rows were read (a claim's reply that waited out the
          // freeze, say) are checked too, before any run waiting for this goes on. (A few rounds:
          // what a busy queue claims after the beat landed is this executor's own.)
          for (let round = 0, ids = [...this.engine.running.keys()]; ids.length && round < 5; round++) {
            await this.engine.stopSuperseded(ids);
            for (const id of ids) checked.add(id);
            ids = [...this.engine.running.keys()].filter((id) => !checked.has(id));
          }
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 5_000)));
        }
      }
    })().finally(() => (this.confirming = undefined));
    return this.confirming;
  }

  /**
   * At a clean shutdown (after stop): this executor no longer counts as running its version (see
   * Store.leave). Bounded, so a database that does not answer does not hold the shutdown up.
   */
  async leave(): Promise<void> {
    if (!this.leaseMs) return; // never beat
    const { engine } = this;
    let late = false;
    const leaving = (async () => {
      await this.beating;
      if (!this.lastWritten) return; // no beat of it landed (a launch that failed at its first): nothing to take back
      await engine.store.leave(engine.executorId, engine.appVersion);
    })().catch((error) => {
      if (!late) engine.logger.warn("Could not record this executor's shutdown: work of no app version may wait for its lease to end.", { error: String(error) });
    });
    await settlesWithin(leaving, SHUTDOWN_STEP_MS);
    late = true;
  }

  /** Writes a heartbeat. One that lands later than two beats' interval starts the on-time count again. */
  private async beat(): Promise<void> {
    const beating = this.engine.store.heartbeat(this.engine.executorId, this.engine.appVersion, Date.now);
    this.beating = beating.then(() => undefined, () => undefined);
    const written = await beating;
    const landed = Date.now();
    if (landed - this.lastLanded > 2 * this.interval) this.onTimeSince = landed;
    this.lastLanded = landed;
    if (this.lastWritten && written - this.lastWritten > this.leaseMs) {
      this.engine.logger.warn(
        `This executor's lease ran out: ${((written - this.lastWritten) / 1000).toFixed(1)} s passed between two of its heartbeats (it was frozen, or could not ` +
          "write to the database). Other executors may have taken its workflows over: their runs here stop, and steps under way in them may have run twice.",
      );
    }
    this.lastWritten = Math.max(this.lastWritten, written);
  }

  /**
   * How long this executor's beats must have been on time before it judges others: a lease, and,
   * since others may reconnect more slowly after the same outage (each backs off on its own), the
   * store's slack for that.
   */
  private get trustAfterMs(): number {
    return this.leaseMs + (this.engine.store.reconnectSlackMs ?? 0);
  }

  private get interval(): number {
    return Math.max(50, this.leaseMs / 3);
  }

  /** Keeps this executor's lease alive and adopts the PENDING work of executors whose lease ran out. */
  private async heartbeatAndTakeOver(): Promise<void> {
    const { engine, leaseMs } = this;
    if (!engine.launched || this.heartbeating) return; // ticks must not pile up while the database is slow or down
    this.heartbeating = true;
    let taken: WorkflowRow[] = [];
    let beaten = false;
    this.recovering++;
    try {
      try {
        // Frozen, or cut off, past the lease: some of the runs here may be another executor's now.
        if (this.leaseInDoubt) await this.confirmLease();
        else await this.beat();
        beaten = true;
        const now = Date.now();
        if (now - this.onTimeSince >= this.trustAfterMs) {
          const { recovered, deadLettered } = await engine.store.recoverPending({
            executorId: engine.executorId, appVersion: engine.appVersion, maxRecoveryAttempts: engine.maxRecoveryAttempts, now, leaseMs,
            workflowNames: [...engine.workflows.keys()],
          });
          this.deadLettered(deadLettered);
          taken = recovered;
        }
        this.beatTrouble.passed("The heartbeat works again.");
      } catch (error) {
        if (engine.launched) this.beatTrouble.failed(`Heartbeat or takeover failed (${String(error)}); retrying at each beat`);
      } finally {
        this.heartbeating = false;
      }
      // Loaded after the beat is done, so that the next beats go on meanwhile.
      for (const row of taken) engine.logger.warn(`Took over workflow ${row.workflowId} from an executor whose lease expired.`);
      await this.runAll(taken, (row, error) => this.couldNotLoad(row, error));
    } finally {
      this.recovering--;
    }
    if (beaten) await this.adoptOrphans().catch(() => undefined); // looked for again at the next beat
  }

  /** Workflows a recovery parked for having crashed too often. */
  private deadLettered(ids: string[]): void {
    for (const id of ids) this.engine.logger.error(new MaxRecoveryAttemptsExceededError(id, this.engine.maxRecoveryAttempts).message);
    if (ids.length) this.engine.announce(["queue", ...ids.map((id) => `status:${id}`)]);
  }
}
