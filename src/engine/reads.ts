/**
 * Workflow rows read by ID, for waiters (getResult, a handle waiting for its workflow to exist)
 * and for getStatus. Reads asked for in the same turn of the event loop go as one query per 500
 * IDs: a caller that awaits 10,000 handles at once, or a safety poll that re-checks every
 * waiter, costs a few round trips instead of one each. Each read is made after it was asked
 * for, so it is as fresh as a read of its own would be.
 */
import type { Store, WorkflowRow } from "../storage/store.js";

const CHUNK = 500;

interface Asked {
  resolve: (row: WorkflowRow | undefined) => void;
  reject: (error: unknown) => void;
}

export class RowReader {
  private asked = new Map<string, Asked[]>();

  constructor(
    private readonly store: () => Store,
    private readonly loadInput: boolean,
  ) {}

  /** The workflow's row (`undefined`: no such workflow). */
  read(workflowId: string): Promise<WorkflowRow | undefined> {
    return new Promise((resolve, reject) => {
      if (this.asked.size === 0) setImmediate(() => this.flush());
      const callers = this.asked.get(workflowId);
      if (callers) callers.push({ resolve, reject });
      else this.asked.set(workflowId, [{ resolve, reject }]);
    });
  }

  private flush(): void {
    const asked = this.asked;
    this.asked = new Map();
    const ids = [...asked.keys()];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      const settle = (each: (callers: Asked[], id: string) => void) => chunk.forEach((id) => each(asked.get(id)!, id));
      Promise.resolve()
        .then(() => this.store().listWorkflows({ workflowIds: chunk, loadInput: this.loadInput }))
        .then(
          (rows) => {
            const byId = new Map(rows.map((row) => [row.workflowId, row]));
            settle((callers, id) => callers.forEach((c) => c.resolve(byId.get(id))));
          },
          (error) => settle((callers) => callers.forEach((c) => c.reject(error))),
        );
    }
  }
}
