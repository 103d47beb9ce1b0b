/**
 * Queue dispatch. Each queue of an executor has one dispatcher, a small state machine:
 *
 *   idle ──trigger──▶ claiming ──claimed a full batch, or triggered meanwhile──▶ claiming
 *                        └──────────────otherwise──────────────▶ idle
 *
 * Triggers come from an enqueue or a completion in this process (directly), from other
 * processes (LISTEN/NOTIFY on PostgreSQL, data_version on SQLite), from a DELAYED workflow's
 * timer, and from the safety poll every `pollingIntervalSeconds`. A claim is one transaction
 * that respects every limit across executors (see Store.claimQueued); the claimed workflows
 * then run here like any other.
 *
 * A workflow enqueued in this process can skip the claim: when its queue has no shared limits
 * and this executor a free slot, the slot is reserved and the workflow inserted already
 * claimed, unless another workflow of the queue is waiting (see `reserve`).
 *
 * On PostgreSQL a busy queue also claims without a round trip of its own: a commit of
 * completions of its workflows carries a claim for the slots they free (see `rideAlong`).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Claimed, ClaimRequest, WorkflowRow, WriteResult } from "../storage/store.js";
import type { Submission } from "./committer.js";
import type { Engine } from "./engine.js";
import type { QueueOptions } from "../types.js";
import { Recurring } from "./logger.js";
import { MAX_TIMEOUT_MS, storedMs } from "./timers.js";
import { checkOptions, checkPositive, checkText, KEYS, optionalBoolean, type Given } from "./checks.js";

const CLAIM_BATCH = 100;
/**
 * On PostgreSQL a busy queue (workerConcurrency set, slots taken) runs in cohorts: a claim for
 * fewer than a quarter of the slots first waits this long for more to free up, so the
 * workflows claimed together take each step, and complete, in one commit. Claiming each slot
 * as it frees instead costs a statement per few workflows: a third more CPU per workflow.
 * (Claims of at most half the slots, meant to make two cohorts whose round trips overlap,
 * merged into one in practice, and drained no-op work 6–28 % slower than claims of every free slot.)
 * SQLite commits and claims one at a time on the event loop, with nothing to overlap: there
 * cohorts only leave slots idle, so each slot is claimed as it frees.
 */
const GATHER_MS = 1;

/** Limits are stored and compared as 32-bit integers. */
const MAX_LIMIT = 2 ** 31 - 1;

const positiveInt = (name: string, value: unknown) => checkPositive(name, value, { integer: true, max: MAX_LIMIT });

/** A rate limit's window in whole milliseconds (at least one), as claims count it. */
const periodMsOf = (periodSeconds: number) => Math.max(1, storedMs(periodSeconds * 1000));

export function validateQueueOptions(name: string, given: QueueOptions | null | undefined): Given<QueueOptions> {
  if (typeof name !== "string" || name === "") throw new InvalidArgumentError("A queue needs a non-empty name.");
  checkText("queue name", name);
  const options = checkOptions("WorkflowQueue", given, KEYS.queue);
  positiveInt("concurrency", options.concurrency);
  positiveInt("workerConcurrency", options.workerConcurrency);
  if (options.concurrency !== undefined && options.workerConcurrency !== undefined && options.workerConcurrency > options.concurrency) {
    throw new InvalidArgumentError(`workerConcurrency (${options.workerConcurrency}) cannot exceed concurrency (${options.concurrency}).`);
  }
  if (options.rateLimit !== undefined) {
    const { limit, periodSeconds } = checkOptions("rateLimit", options.rateLimit, ["limit", "periodSeconds"]);
    positiveInt("rateLimit.limit", limit);
    if (limit === undefined) throw new InvalidArgumentError("rateLimit needs a limit.");
    if (periodSeconds === undefined) throw new InvalidArgumentError("rateLimit needs a periodSeconds.");
    checkPositive("rateLimit.periodSeconds", periodSeconds);
  }
  optionalBoolean("partitionQueue", options.partitionQueue);
  optionalBoolean("priorityEnabled", options.priorityEnabled);
  checkPositive("pollingIntervalSeconds", options.pollingIntervalSeconds);
  return options;
}

/** This executor's runs per queue, and per partition key of each queue: what workerConcurrency counts. */
export class LocalSlots {
  private readonly queues = new Map<string, number>();
  private readonly partitions = new Map<string, Record<string, number>>();

  in(queueName: string): number {
    return this.queues.get(queueName) ?? 0;
  }

  byPartition(queueName: string): Record<string, number> {
    return this.partitions.get(queueName) ?? {};
  }

  /** Counts a run of a queued workflow in or out of its queue's (and partition's) slots. */
  count(row: WorkflowRow, delta: 1 | -1): void {
    if (!row.queueName) return;
    this.queues.set(row.queueName, this.in(row.queueName) + delta);
    if (row.partitionKey === null) return;
    const partitions = this.partitions.get(row.queueName) ?? {};
    partitions[row.partitionKey] = (partitions[row.partitionKey] ?? 0) + delta;
    if (partitions[row.partitionKey] === 0) delete partitions[row.partitionKey];
    this.partitions.set(row.queueName, partitions);
  }
}

export class QueueDispatcher {
  private busy = false;
  private again = false;
  /**
   * Set at launch once recovery has handed over this executor's own queued work (see adopt):
   * until then nothing claims, or the first notification heard would fill the slots that work
   * waits for.
   */
  private started = false;
  private stopped = false;
  private alarm?: { at: number; handle: { cancel(): void } };
  /** Slots held for workflows being inserted already claimed (see `reserve`). */
  private reserved = 0;
  /** Slots the claim in flight may fill. */
  private claiming = 0;
  /** The claim loop stopped for a claim riding on a commit: that claim's end looks again. */
  private deferred = false;
  /** Claims have failed since the last that worked (said once, not at every poll). */
  private readonly failing = new Recurring(() => this.engine.logger);
  /** The last claim took all it asked for: more work is likely waiting. */
  private full = false;
  /**
   * While every slot is taken, when to promote due DELAYED workflows anyway (see promoteDue): at
   * the earliest known wake-up time, and at least once a polling interval.
   */
  private promoteAt = 0;
  /** Workflows taken over or recovered here while their slots were full, in order, and those being loaded to run. */
  private adopted: WorkflowRow[] = [];
  private adopting: WorkflowRow[] = [];

  constructor(
    private readonly engine: Engine,
    readonly name: string,
    readonly options: Given<QueueOptions>,
  ) {}

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.engine.queuePoll.watch(this);
    this.trigger();
  }

  stop(): void {
    this.stopped = true;
    if (this.started) this.engine.queuePoll.unwatch(this);
    this.alarm?.handle.cancel();
  }

  /** How often the safety poll looks. */
  get pollMs(): number {
    return Math.min((this.options.pollingIntervalSeconds ?? 1) * 1000, MAX_TIMEOUT_MS);
  }

  trigger(): void {
    if (this.stopped || !this.started || !this.engine.launched) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    void this.claimLoop().finally(() => {
      this.busy = false;
      if (this.again) this.trigger(); // woken after the loop decided to stop
    });
  }

  /** Looks again if adopted work waits for a slot, or if the store shows claimable work (asked for every due queue at once). */
  safetyPoll(): void {
    if (this.adopted.length) this.trigger();
    else if (!this.stopped) this.engine.queuePoll.add(this);
  }

  /** Limits that hold across executors (concurrency, rate, partitions): claims of such a queue take turns in the store. */
  private get sharedLimits(): boolean {
    const { concurrency, rateLimit, partitionQueue } = this.options;
    return concurrency !== undefined || rateLimit !== undefined || partitionQueue === true;
  }

  /** Slots of workerConcurrency neither running, reserved, being claimed nor being filled by an adopted workflow. */
  private get open(): number {
    return this.options.workerConcurrency! - this.engine.slots.in(this.name) - this.reserved - this.claiming - this.adopting.length;
  }

  /**
   * Takes `row`, PENDING here after a takeover or a recovery, to run when workerConcurrency has
   * a slot for it (its partition's, on a partitioned queue), before any new claim: it counts
   * against the queue's shared limits meanwhile, as a PENDING row. False: this queue has no
   * workerConcurrency, and the caller runs it at once.
   */
  adopt(row: WorkflowRow): boolean {
    if (this.options.workerConcurrency === undefined || this.stopped) return false;
    this.adopted.push(row);
    this.trigger();
    return true;
  }

  /** Whether this queue may be about to run `workflowId` here: adopted, or a claim is under way. */
  mayRun(workflowId: string): boolean {
    return this.claiming > 0 || [...this.adopted, ...this.adopting].some((row) => row.workflowId === workflowId);
  }

  /** Workflows running here per partition, with the adopted ones waiting for a slot or loading. */
  private partitionLoad(): Record<string, number> {
    const load = { ...this.engine.slots.byPartition(this.name) };
    for (const row of [...this.adopted, ...this.adopting]) load[row.partitionKey ?? ""] = (load[row.partitionKey ?? ""] ?? 0) + 1;
    return load;
  }

  /** Starts the adopted workflows that have a slot; true while any wait or load. */
  private runAdopted(): boolean {
    const { workerConcurrency, partitionQueue } = this.options;
    const inPartition = (key: string | null) =>
      (this.engine.slots.byPartition(this.name)[key ?? ""] ?? 0) + this.adopting.filter((r) => r.partitionKey === key).length;
    for (let i = 0; i < this.adopted.length; ) {
      const row = this.adopted[i];
      if (partitionQueue ? inPartition(row.partitionKey) >= workerConcurrency! : this.open <= 0) {
        i++;
        continue;
      }
      this.adopted.splice(i, 1);
      this.adopting.push(row);
      const done = () => void this.adopting.splice(this.adopting.indexOf(row), 1);
      void this.engine.recovery.resumeHere(row.workflowId).then(
        () => (done(), this.trigger()),
        () => (done(), this.adopted.push(row)), // the database did not answer: tried again at the next poll
      );
    }
    return this.adopted.length + this.adopting.length > 0;
  }

  /** Cohorts (see GATHER_MS): a busy PostgreSQL queue with workerConcurrency and no partitions. */
  private get cohorts(): boolean {
    return this.options.workerConcurrency !== undefined && !this.options.partitionQueue && this.engine.store.dialect === "postgres";
  }

  private request(max: number): ClaimRequest {
    const { workerConcurrency, concurrency, rateLimit, partitionQueue = false } = this.options;
    return {
      queueName: this.name, executorId: this.engine.executorId, appVersion: this.engine.appVersion, now: Date.now(), max,
      workflowNames: [...this.engine.workflows.keys()], concurrency, partitioned: partitionQueue,
      rateLimit: rateLimit && { limit: rateLimit.limit, periodMs: periodMsOf(rateLimit.periodSeconds) },
      perPartition: partitionQueue && workerConcurrency !== undefined ? { workerConcurrency, running: this.partitionLoad() } : undefined,
      liveSince: Date.now() - this.engine.recovery.leaseMs,
    };
  }

  /** Runs what a claim of `asked` slots took; true when it took all it could (more may wait). */
  private took({ claimed, nextDelayedAt }: Claimed, asked: number): boolean {
    for (const { workflow, operations } of claimed) this.engine.executeRegistered(workflow, operations);
    this.delayedUntil(nextDelayedAt);
    this.full = claimed.length >= asked;
    return this.full;
  }

  /**
   * A DELAYED workflow of this queue becomes claimable at `at`: look again then, and promote it
   * then even if every slot is taken (see promoteDue).
   */
  delayedUntil(at: number | null): void {
    if (at === null) return;
    this.promoteAt = Math.min(this.promoteAt, at);
    this.wakeAt(at);
  }

  /**
   * With every slot taken, due DELAYED workflows still become ENQUEUED (as the reference library's
   * pass once a second does): they show as such, and take their place in the queue ahead of those
   * enqueued after them. A claim of none does it, when one is known to be due, and otherwise at
   * most once a polling interval (a delayed enqueue from elsewhere is learned of that way).
   */
  private async promoteDue(): Promise<void> {
    const now = Date.now();
    // Not yet: the alarm may have been set for something earlier (a rate limit's window), so set it again.
    if (now < this.promoteAt) return this.wakeAt(this.promoteAt);
    this.promoteAt = now + (this.options.pollingIntervalSeconds ?? 1) * 1000;
    this.delayedUntil((await this.engine.store.claimQueued(this.request(0))).nextDelayedAt);
  }

  private async claimLoop(): Promise<void> {
    let gathered = false;
    let asked = 0;
    try {
      for (;;) {
        this.again = false;
        const { workerConcurrency, rateLimit, partitionQueue } = this.options;
        // Adopted work first; each one's start looks again. On a partitioned queue the other
        // partitions' slots may still be claimed (the claim counts the adopted as running).
        if (this.runAdopted() && !partitionQueue) return await this.promoteDue();
        // A partitioned queue applies workerConcurrency per partition, in the claim itself.
        const perQueue = workerConcurrency !== undefined && !partitionQueue;
        // One claim at a time, so that workflows start in the order the queue gives them.
        if (this.claiming > 0) {
          this.deferred = true;
          return;
        }
        const free = Math.min(perQueue ? this.open : CLAIM_BATCH, CLAIM_BATCH);
        if (this.stopped) return;
        if (free <= 0) return await this.promoteDue();
        if (this.cohorts && !gathered && this.engine.slots.in(this.name) > 0 && free < Math.min(CLAIM_BATCH, workerConcurrency!) / 4) {
          gathered = true;
          await new Promise((resolve) => setTimeout(resolve, GATHER_MS));
          continue;
        }
        gathered = false;
        this.claiming += asked = free;
        const result = await this.engine.store.claimQueued(this.request(free));
        this.claiming -= asked;
        asked = 0;
        this.failing.passed(`Dispatching queue "${this.name}" works again.`);
        if (!this.took(result, free) && !this.again) {
          // Work held back by the rate limit becomes claimable once the window's oldest start leaves it.
          if (rateLimit && result.moreQueued) this.wakeAt(Date.now() + (result.rateOpensInMs ?? periodMsOf(rateLimit.periodSeconds) / rateLimit.limit) + 1);
          return;
        }
      }
    } catch (error) {
      this.claiming -= asked;
      if (this.stopped || !this.engine.launched) return;
      this.failing.failed(`Dispatching queue "${this.name}" failed (${error instanceof Error ? error.message : String(error)}); retrying at each poll`);
    }
  }

  /**
   * A claim to ride on a commit that completes `completing` of this queue's workflows here,
   * filling the slots they free in the same statement instead of one round trip later: on a
   * queue in cohorts whose last claim took all it asked for (so more is likely waiting), when
   * the slots make a cohort. Undefined: nothing to ride.
   */
  rideAlong(completing: number): Submission | undefined {
    // Adopted workflows waiting for a slot take the freed ones first (see adopt).
    if (!this.cohorts || this.sharedLimits || !this.full || this.claiming > 0 || this.adopted.length || this.stopped || !this.started || !this.engine.launched) return undefined;
    const free = Math.min(this.open + completing, CLAIM_BATCH);
    if (free < Math.min(CLAIM_BATCH, this.options.workerConcurrency!) / 4) return undefined;
    this.claiming += free;
    const settle = (result?: Claimed) => {
      this.claiming -= free;
      const deferred = this.deferred;
      this.deferred = false;
      // Looked at again once the completions have let go of their slots.
      if (!result || this.took(result, free) || result.moreQueued || deferred) setImmediate(() => this.trigger());
    };
    return {
      writes: [{ kind: "claimQueued", request: this.request(free) }],
      resolve: ([result]) => settle(result as Extract<WriteResult, { kind: "claimQueued" }>),
      reject: () => settle(),
    };
  }

  /**
   * Holds a slot for `row`, enqueued here, to be inserted already claimed: only on a queue
   * without shared limits (concurrency, rate, partitions), for this executor's application
   * version, with a free slot. Every true answer must be followed by one `release`.
   */
  reserve(row: WorkflowRow): boolean {
    if (this.stopped || !this.started || !this.engine.launched || this.sharedLimits) return false;
    if (row.status !== "ENQUEUED" || row.appVersion !== this.engine.appVersion || this.adopted.length) return false;
    if (this.options.workerConcurrency !== undefined && this.open <= 0) return false;
    this.reserved++;
    return true;
  }

  /** Gives the slot back: the workflow runs here now (`ran`), or it was queued and the dispatcher looks again. */
  release(ran: boolean): void {
    this.reserved--;
    if (!ran) this.trigger();
  }

  /** One timer per dispatcher, at the earliest time something is known to become claimable. */
  private wakeAt(at: number): void {
    if (this.alarm && this.alarm.at <= at && this.alarm.at > Date.now()) return;
    this.alarm?.handle.cancel();
    const handle = this.engine.timers.at(at, () => {
      this.alarm = undefined;
      this.trigger();
    });
    this.alarm = { at, handle };
  }
}

/**
 * What a batch about to commit may carry (see Committer's rider): when the batch is made only
 * of outcomes of queued workflows (and other workflows' step records), a claim for the slots
 * they free, for the queue with the most.
 */
export function riderOf(queues: Map<string, QueueDispatcher>, batch: Submission[]): Submission | undefined {
  const freed = new Map<string, number>();
  for (const { writes } of batch) {
    for (const w of writes) {
      if (w.kind === "recordOperation") continue;
      if (w.kind !== "completeWorkflow" || w.queueName === null) return undefined;
      freed.set(w.queueName, (freed.get(w.queueName) ?? 0) + 1);
    }
  }
  const [queue, completing] = [...freed].reduce((a, b) => (b[1] > a[1] ? b : a), ["", 0]);
  return queues.get(queue)?.rideAlong(completing);
}

/**
 * The safety polls of an executor's queues, and wake-ups meant for all of them, coalesced: the
 * queues of one polling interval share a timer, and the queues due in one turn of the event loop
 * ask the store once which of them hold claimable work (ENQUEUED, or DELAYED and due); only
 * those claim. 100 idle queues cost one read a second instead of 100 claims (125 transactions/s
 * and 14% of a core, measured), and one timer: with a timer each, their ticks drifted apart
 * and made 15 reads a second.
 */
export class QueuePoll {
  private due = new Set<QueueDispatcher>();
  private readonly failing = new Recurring(() => this.engine.logger);
  private readonly timers = new Map<number, { queues: Set<QueueDispatcher>; timer: NodeJS.Timeout }>();

  constructor(private readonly engine: Engine) {}

  watch(queue: QueueDispatcher): void {
    let group = this.timers.get(queue.pollMs);
    if (!group) {
      const queues = new Set<QueueDispatcher>();
      const timer = setInterval(() => {
        for (const q of queues) q.safetyPoll();
      }, queue.pollMs);
      timer.unref();
      this.timers.set(queue.pollMs, (group = { queues, timer }));
    }
    group.queues.add(queue);
  }

  unwatch(queue: QueueDispatcher): void {
    const group = this.timers.get(queue.pollMs);
    if (!group?.queues.delete(queue) || group.queues.size) return;
    clearInterval(group.timer);
    this.timers.delete(queue.pollMs);
  }

  add(queue: QueueDispatcher): void {
    if (!this.due.size) setImmediate(() => void this.run());
    this.due.add(queue);
  }

  private async run(): Promise<void> {
    const due = [...this.due];
    this.due.clear();
    try {
      const withWork = new Set(await this.engine.store.queuesWithWork(due.map((q) => q.name), Date.now()));
      this.failing.passed("Polling queues works again.");
      for (const queue of due) if (withWork.has(queue.name)) queue.trigger();
    } catch (error) {
      if (this.engine.launched) this.failing.failed(`Polling queues failed (${String(error)}); retrying at the next poll`);
    }
  }
}
