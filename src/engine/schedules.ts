/**
 * Cron schedules. Each tick starts the schedule's workflow with the tick's time as its input and
 * the ID `sched:<name>:<ISO time>`; every executor runs the same timers, and because a workflow
 * ID is an idempotency key, each tick runs exactly once across all of them. Ticks missed while
 * every executor was down are skipped unless `catchUp` is set, which starts each missed tick
 * (after the last one recorded; the latest MAX_CATCH_UP of them) at launch, then those that came
 * due meanwhile. A tick whose start fails because the database cannot be reached, or refuses the
 * write for now (not accepting connections, read-only during a failover), is started once it
 * takes it. Cron parsing is croner's (5 fields, or 6 with seconds).
 */
import { Cron } from "croner";
import { DatabaseError, DuroError, InvalidArgumentError } from "../errors.js";
import type { ScheduleOptions } from "../types.js";
import type { Engine } from "./engine.js";
import { checkKey, checkText, MAX_KEY_BYTES, optionalBoolean, type Given } from "./checks.js";
import { queueOf, start, validateStart, type Start } from "./start.js";

const MAX_CATCH_UP = 1000;

/** A refusal by duro itself (a conflicting ID, a bad argument) is final; anything the database says may pass. */
const retryable = (error: unknown) => error instanceof DatabaseError || !(error instanceof DuroError);

export class Schedule {
  private readonly cron: Cron;
  private timer?: { cancel(): void };
  private stopped = false;
  /** Ticks whose start failed because the database could not be reached, oldest first. */
  private unstarted: number[] = [];
  private retrying = false;
  /** Ends the retry loop's wait early: a tick just started, so the database answers again. */
  private wake?: () => void;

  constructor(
    private readonly engine: Engine,
    readonly name: string,
    readonly expression: string,
    readonly workflowName: string,
    readonly options: Given<ScheduleOptions>,
    /** The start options bound to the workflow (`with()`), given to each tick. */
    private readonly startOptions: Readonly<Start> = {},
  ) {
    if (typeof name !== "string" || name === "" || name.includes(":")) throw new InvalidArgumentError("A schedule needs a non-empty name without ':'.");
    checkText("A schedule's name", name);
    // Its ticks' IDs, sched:<name>:<ISO time>, are IDs like any other: "sched:", ":" and the time take 31 bytes.
    const most = MAX_KEY_BYTES - 31;
    if (Buffer.byteLength(name) > most) throw new InvalidArgumentError(`A schedule's name is limited to ${most} bytes: its ticks' workflow IDs are sched:<name>:<ISO time>.`);
    // croner also takes a seventh field (years); duro's expressions are 5 fields, or 6 with seconds.
    const fields = typeof expression === "string" ? expression.trim().split(/\s+/).length : 0;
    if (options.timezone !== undefined && (typeof options.timezone !== "string" || options.timezone.trim() === "")) {
      throw new InvalidArgumentError(`timezone must be an IANA time zone name such as "Europe/Paris", got ${JSON.stringify(options.timezone)}.`);
    }
    optionalBoolean("catchUp", options.catchUp);
    // Whether such a queue is declared can wait for launch (queues may be declared after it); its type cannot.
    if (options.queueName !== undefined) checkKey("queueName", options.queueName);
    // croner also takes a Date or an ISO time (a single run), which a schedule is not; its nicknames (@hourly, …) are cron.
    const nickname = typeof expression === "string" && expression.trim().startsWith("@");
    if (!nickname && (fields < 5 || fields > 6)) {
      throw new InvalidArgumentError(`Invalid cron expression ${JSON.stringify(expression)}: give 5 fields, or 6 with seconds first (or a nickname such as @hourly).`);
    }
    try {
      this.cron = new Cron(expression, { paused: true, timezone: options.timezone });
    } catch (error) {
      throw new InvalidArgumentError(`Invalid cron expression "${expression}": ${(error as Error).message}`, { cause: error });
    }
    let next: Date | null;
    try {
      next = this.cron.nextRun(); // an unknown time zone shows only here
    } catch (error) {
      throw new InvalidArgumentError(`Invalid time zone ${JSON.stringify(options.timezone)} for schedule "${name}": ${(error as Error).message}`, { cause: error });
    }
    if (!next) throw new InvalidArgumentError(`The cron expression "${expression}" of schedule "${name}" never fires (a day no month has, say).`);
  }

  /** Its queue must be declared by the time it starts ticking (queues may be declared after it). */
  check(): void {
    if (this.options.queueName !== undefined && queueOf(this.engine, this.options.queueName)?.options.partitionQueue) {
      throw new InvalidArgumentError(`Queue "${this.options.queueName}" is partitioned, and a schedule's ticks have no partition key: schedule onto a queue without partitionQueue.`);
    }
    // What a tick's start would refuse (a priority without a queue, say), refused now rather than at every tick.
    validateStart(this.engine, { ...this.startOptions, queueName: this.options.queueName });
  }

  tickId(at: number): string {
    return `sched:${this.name}:${new Date(at).toISOString()}`;
  }

  async start(): Promise<void> {
    let from = new Date();
    if (this.options.catchUp) {
      const [last] = await this.engine.store.listWorkflows({ workflowIdPrefix: [`sched:${this.name}:`], sortDesc: true, limit: 1, loadInput: false, loadOutput: false });
      if (last) {
        const lastTick = Date.parse(last.workflowId.slice(`sched:${this.name}:`.length));
        // The latest MAX_CATCH_UP missed ticks, oldest first; one more tells whether any older one is left out.
        const missed = this.cron.previousRuns(MAX_CATCH_UP + 1, new Date()).map((tick) => tick.getTime()).filter((tick) => tick > lastTick).reverse();
        if (missed.length > MAX_CATCH_UP) {
          missed.shift();
          this.engine.logger.warn(
            `Schedule "${this.name}" missed more than ${MAX_CATCH_UP} ticks since ${new Date(lastTick).toISOString()}: ` +
              `catching up on the latest ${MAX_CATCH_UP}, from ${new Date(missed[0]).toISOString()}; the older ones are skipped.`,
          );
        }
        for (const tick of missed) {
          if (this.stopped) return; // shut down meanwhile: the ticks left are caught up at the next launch
          await this.fire(tick);
        }
        // Go on from the last tick started: those that came due while catching up start next.
        if (missed.length) from = new Date(missed[missed.length - 1]);
      }
    }
    this.arm(from);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.wake?.();
  }

  private arm(after: Date): void {
    const next = this.cron.nextRun(after);
    if (!next || this.stopped) return;
    this.timer = this.engine.timers.at(next.getTime(), () => {
      void this.fire(next.getTime());
      this.arm(next);
    });
  }

  private async fire(at: number): Promise<void> {
    try {
      await this.startTick(at);
      this.wake?.();
    } catch (error) {
      if (this.stopped) return;
      if (retryable(error)) return this.whenReachable(at, error);
      this.engine.logger.error(`Schedule "${this.name}" could not start its tick at ${new Date(at).toISOString()}.`, { error: String(error) });
    }
  }

  private startTick(at: number): Promise<unknown> {
    return start(this.engine, this.workflowName, [new Date(at)], { ...this.startOptions, workflowId: this.tickId(at), queueName: this.options.queueName });
  }

  /**
   * Starts a tick the database was unreachable for once it answers, late but once: this executor
   * was up at the tick's time, so the tick is not one missed while every executor was down. One
   * loop per schedule serves every such tick, oldest first; tries back off to 30 s, and a later
   * tick that starts cuts the wait short.
   */
  private whenReachable(at: number, error?: unknown): void {
    this.unstarted.push(at);
    if (this.unstarted.length > MAX_CATCH_UP) this.unstarted.shift();
    if (this.retrying) return;
    this.retrying = true;
    if (error !== undefined) {
      this.engine.logger.warn(
        `Schedule "${this.name}" could not start its tick at ${new Date(at).toISOString()}: ${(error instanceof Error ? error.message : String(error)).replace(/\.$/, "")}. ` +
          `It will start that tick, and any other due until the database takes them, once it does.`,
      );
    }
    void (async () => {
      for (let attempt = 0; this.unstarted.length && !this.stopped; attempt++) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(100 * 2 ** attempt, 30_000)).unref();
          this.wake = () => (clearTimeout(timer), resolve());
        });
        this.wake = undefined;
        while (this.unstarted.length && !this.stopped) {
          try {
            await this.startTick(this.unstarted[0]);
          } catch (error) {
            if (retryable(error)) break; // still unreachable or refusing: try again later
            this.engine.logger.error(`Schedule "${this.name}" could not start its tick at ${new Date(this.unstarted[0]).toISOString()}.`, { error: String(error) });
          }
          this.unstarted.shift();
        }
      }
    })().finally(() => {
      this.retrying = false;
      if (this.unstarted.length && !this.stopped) this.whenReachable(this.unstarted.pop()!); // one came in as the loop ended
    });
  }
}
