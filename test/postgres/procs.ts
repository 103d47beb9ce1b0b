/**
 * Child processes for the PostgreSQL fault tests: each runs a small duro application on the
 * BUILT package (dist/), reports progress as JSON lines on stdout, and takes commands as lines on
 * stdin ("shutdown", and the script's own). The plumbing (events, signals, clean-up after each
 * test) is ../processes.ts; what is particular to these scripts is here.
 */
import { fileURLToPath } from "node:url";
import { Child, requireBuild, type ChildEvent } from "../processes.js";

requireBuild("the PostgreSQL fault tests");

export interface ProcEvent extends ChildEvent {
  wf?: string;
  step?: number;
}

export class Proc extends Child<ProcEvent> {
  /** `script`: a file next to this one; `params` goes to it as one JSON argument. */
  constructor(script: string, params: unknown, name = script) {
    super(fileURLToPath(new URL(`./${script}`, import.meta.url)), [JSON.stringify(params)], name);
  }

  /** SIGKILLs the process (if still running) and waits until it is gone; true if that killed it. */
  kill(): Promise<boolean> {
    return this.sigkill();
  }

  /** Asks for a clean shutdown and waits for exit code 0 (SIGKILL after `timeoutMs`). */
  async shutdown(timeoutMs = 20_000): Promise<void> {
    this.command("shutdown");
    const timer = setTimeout(() => this.killNow(), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    if (exit.code !== 0) throw new Error(`${this.name} (pid ${this.pid}) exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
  }
}
