/**
 * The state of one workflow execution in this process, carried by AsyncLocalStorage.
 *
 * Replay: a run starts with every operation recorded so far (one read on recovery, none for a
 * fresh start). Each durable call takes the next function ID synchronously — so steps started
 * together with Promise.all are numbered in call order — and either answers from the record or
 * runs and records. A recorded name that differs from the call is a NonDeterminismError.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { setMaxListeners } from "node:events";
import { DuroError, NonDeterminismError, WorkflowCancelledError } from "../errors.js";
import type { SerializationFormat } from "../serialization.js";
import type { OperationRow } from "../storage/store.js";

export interface StepState {
  stepId: number;
  currentAttempt: number | null;
  maxAttempts: number | null;
}

export interface Context {
  run: WorkflowRun;
  step?: StepState;
}

/** Typed by what duro uses of AsyncLocalStorage, so that its published types need no Node typings. */
export const als: { getStore(): Context | undefined; run<R>(store: Context, fn: () => R): R } = new AsyncLocalStorage<Context>();

/**
 * Why a run must stop at its next durable operation: cancelled (or timed out), this executor is
 * shutting down, another executor took the workflow over, the database could not be reached
 * for a durable operation (see Recovery.resumeWhenReachable), or its body is done.
 */
export type StopReason = "cancelled" | "shutdown" | "superseded" | "interrupted" | "finished";

export class WorkflowRun {
  private nextFunctionId = 1;
  private stopListeners = new Set<() => void>();
  /** Made on the first wait (see `signal`): most runs never wait, and an AbortController is not free. */
  private controller?: AbortController;
  stopped: StopReason | null = null;
  /** A stream read of this run is waiting for its value (see readStream). */
  readingStream = false;
  /** Topics a recv of this run waits on (one at a time per topic). */
  readonly receiving = new Set<string>();

  constructor(
    readonly workflowId: string,
    readonly workflowName: string,
    readonly serialization: SerializationFormat,
    readonly authenticatedUser: string | null,
    readonly appVersion: string,
    /** Absolute deadline propagated to children, or null. */
    readonly deadlineEpochMs: number | null,
    private readonly recorded: Map<number, OperationRow>,
    /** The engine that runs it: only its calls are the run's operations (see currentContext). */
    readonly owner: Owner,
  ) {}

  /** Takes the next function ID (call order). */
  allocate(): number {
    return this.nextFunctionId++;
  }

  /** The recorded operation at `functionId`, checking it is the one being asked for. */
  replay(functionId: number, name: string): OperationRow | undefined {
    const op = this.recorded.get(functionId);
    if (op && op.functionName !== name) throw new NonDeterminismError(this.workflowId, functionId, op.functionName, name);
    return op;
  }

  /** The recorded operation the next durable call would meet, without taking its ID (patch markers). */
  peekNext(): OperationRow | undefined {
    return this.recorded.get(this.nextFunctionId);
  }

  /** Throws if the run has been told to stop (cancel, timeout, shutdown). A memory lookup. */
  checkStopped(): void {
    if (this.stopped && this.stopped !== "finished") throw new WorkflowCancelledError(this.workflowId);
  }

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = reason;
    if (reason !== "finished") this.controller?.abort(new WorkflowCancelledError(this.workflowId));
    for (const listener of this.stopListeners) listener();
    this.stopListeners.clear();
  }

  /**
   * Aborted (with a WorkflowCancelledError) when the run is told to stop: ends its waits at once.
   * Each wait listens to it, and a run may wait on any number of things at once (a fan-out to
   * many children), so Node's leak warning past 10 listeners is off; every wait removes its
   * listener when it settles.
   */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      setMaxListeners(0, this.controller.signal);
      if (this.stopped && this.stopped !== "finished") this.controller.abort(new WorkflowCancelledError(this.workflowId));
    }
    return this.controller.signal;
  }

  /** Calls `listener` when the run is stopped. */
  onStop(listener: () => void): void {
    if (this.stopped) listener();
    else this.stopListeners.add(listener);
  }
}

/** What a run knows of the engine that runs it. */
export interface Owner {
  readonly client: boolean;
}

/**
 * The context of the current workflow run, if any. Given `engine`, the one a call was made on:
 * a DuroClient's calls in a workflow (not in its steps) are made as from outside one (not checkpointed, as
 * the client's name says), and another Duro instance's are refused: their writes would go to its
 * database, where this run has no workflow.
 */
export function currentContext(engine?: Owner): Context | undefined {
  const ctx = als.getStore();
  // In a step, durable calls run plainly, another instance's too.
  if (!ctx || !engine || ctx.step || ctx.run.owner === engine) return ctx;
  if (engine.client) return undefined;
  throw new DuroError(
    `Workflow "${ctx.run.workflowName}" (ID ${ctx.run.workflowId}) runs on another Duro instance than the one this call was made on. ` +
      "In a workflow, call the steps and methods of the instance that registered it.",
  );
}

/** The current workflow run of `engine`, unless in a step (where durable calls run plainly) or outside a workflow. */
export function currentRun(engine: Owner): WorkflowRun | undefined {
  const ctx = currentContext(engine);
  return ctx && !ctx.step ? ctx.run : undefined;
}
