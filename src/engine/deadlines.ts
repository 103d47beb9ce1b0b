/**
 * Workflow deadlines watched by this process: a run's own, while it runs here, and those of
 * workflows this process queued, until they run here. Each is one entry of the shared timer. At
 * the deadline the run here, if any, stops, and the cancel is written, tried again while the
 * database cannot take it (a deadline that passes during an outage still holds). The cancel
 * takes the workflow only if it is unfinished and its stored deadline still due (a resume clears
 * it), so a watch outlived by what it watched (a workflow run elsewhere, resumed, or finished)
 * does nothing.
 */
import { DatabaseError } from "../errors.js";
import { backedOff, type TimerHandle, type Timers } from "./timers.js";

export interface DeadlineActions {
  /** Writes the cancel of a workflow whose deadline passed (and of its descendants with one). */
  cancel(workflowId: string): Promise<void>;
  stopRun(workflowId: string): void;
  runsHere(workflowId: string): boolean;
  closed(): boolean;
}

export class Deadlines {
  /** Workflows this process queued with a deadline, until they run here. */
  private readonly queued = new Map<string, TimerHandle>();
  /** Workflows whose deadline passed, with their cancel being written. */
  private readonly cancels = new Set<string>();

  constructor(private readonly timers: Timers, private readonly act: DeadlineActions) {}

  /** A workflow queued here, with a deadline: cancelled at it even while it waits in its queue. */
  watchQueued(workflowId: string, deadlineEpochMs: number): void {
    if (this.act.runsHere(workflowId)) return; // inserted already claimed, and running: its run watches
    this.queued.get(workflowId)?.cancel();
    // The watch holds nothing open: a process that ends leaves the cancel to the dequeue.
    this.queued.set(workflowId, this.timers.at(deadlineEpochMs, () => {
      this.queued.delete(workflowId);
      if (!this.act.runsHere(workflowId)) this.cancelDue(workflowId);
    }, false));
  }

  /** A run starting here: it takes over the watch from its queueing, until it stops. */
  watchRun(workflowId: string, deadlineEpochMs: number | null): TimerHandle | undefined {
    this.queued.get(workflowId)?.cancel();
    this.queued.delete(workflowId);
    return deadlineEpochMs === null ? undefined : this.timers.at(deadlineEpochMs, () => this.cancelDue(workflowId));
  }

  /** The deadline passed: stops the run here, and writes the cancel until it lands. */
  cancelDue(workflowId: string): void {
    this.act.stopRun(workflowId);
    if (this.cancels.has(workflowId)) return;
    this.cancels.add(workflowId);
    void (async () => {
      for (let attempt = 0; !this.act.closed(); attempt++) {
        try {
          return await this.act.cancel(workflowId);
        } catch (error) {
          if (!(error instanceof DatabaseError)) return;
          await backedOff(attempt, 5_000);
        }
      }
    })().finally(() => this.cancels.delete(workflowId));
  }

  /** Whether a deadline's cancel of the workflow is being written here. */
  cancelling(workflowId: string): boolean {
    return this.cancels.has(workflowId);
  }
}
