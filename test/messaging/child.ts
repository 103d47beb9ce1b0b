/**
 * The child process of the messaging crash tests: `MessagingChild` runs `worker.mjs` (a duro
 * application on the built package) with a JSON parameter object; the test awaits the JSON lines
 * it prints and SIGKILLs it at a precise point. The plumbing (events, kills, clean-up after each
 * test) is ../processes.ts; what is particular to this worker is here.
 */
import { fileURLToPath } from "node:url";
import { Child, requireBuild, type ChildEvent } from "../processes.js";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
requireBuild("the messaging crash tests");

/** Its events carry mode-specific fields (`i`, `m`, `output`, …) that the tests read freely. */
export interface MessagingEvent extends ChildEvent {
  [key: string]: any;
}

export class MessagingChild extends Child<MessagingEvent> {
  /** `node worker.mjs <url> <executorId> <params>`; see worker.mjs for the modes and their params. */
  constructor(url: string, executorId: string, params: Record<string, unknown>) {
    super(WORKER, [url, executorId, JSON.stringify(params)], "worker", { stdin: false });
  }

  named(ev: string): MessagingEvent[] {
    return this.events.filter((e) => e.ev === ev);
  }

  /** SIGKILLs the child if it still runs and waits until it is gone; true if that killed it. */
  kill(): Promise<boolean> {
    return this.sigkill();
  }

  /** Waits for "all-done" and a clean exit; returns the "all-done" event's output. */
  async finish(timeoutMs = 30_000): Promise<unknown> {
    const done = await this.waitForEvent((e) => e.ev === "all-done", "all-done", timeoutMs);
    const exit = await this.exited;
    if (exit.code !== 0) throw new Error(`worker ${this.pid} exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
    return done.output;
  }
}
