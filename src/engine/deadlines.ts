/**
 * Workflow deadlines watched by this process: a run's own, while it runs here, and those of
 * workflows this process queued, until they run here. Each is one entry of the shared timer; at
 * the deadline the workflow is cancelled, and the cancel takes it only if it is unfinished and
 * its stored deadline still due (a resume clears it), so a watch outlived by what it watched
 * (a workflow run elsewhere, resumed, or finished) does nothing.
 */
import type { TimerHandle, Timers } from "./timers.js";

export class Deadlines {
  /** Workflows this process queued with a deadline, until they run here. */
  private readonly queued = new Map<string, TimerHandle>();

  constructor(
    private readonly timers: Timers,
    private readonly cancel: (workflowId: string) => void,
    private readonly runsHere: (workflowId: string) => boolean,
  ) {}

  /** A workflow queued here, with a deadline: cancelled at it even while it waits in its queue. */
  watchQueued(workflowId: string, deadlineEpochMs: number): void {
    if (this.runsHere(workflowId)) return; // inserted already claimed, and running: its run watches
    this.queued.get(workflowId)?.cancel();
    // The watch holds nothing open: a process that ends leaves the cancel to the dequeue.
    this.queued.set(workflowId, this.timers.at(deadlineEpochMs, () => {
      this.queued.delete(workflowId);
      if (!this.runsHere(workflowId)) this.cancel(workflowId);
    }, false));
  }

  /** A run starting here: it takes over the watch from its queueing, until it stops. */
  watchRun(workflowId: string, deadlineEpochMs: number | null): TimerHandle | undefined {
    this.queued.get(workflowId)?.cancel();
    this.queued.delete(workflowId);
    return deadlineEpochMs === null ? undefined : this.timers.at(deadlineEpochMs, () => this.cancel(workflowId));
  }
}
