/**
 * A small, self-contained child-process harness for the messaging crash tests (to be folded into
 * the shared one later). `MessagingChild` runs `worker.mjs` (a duro application on the built
 * package) with a JSON parameter object, follows the JSON lines it prints on stdout so a test can
 * await a precise point, and SIGKILLs it there. Every child still running when a test ends is
 * SIGKILLed, so a failed test never leaves one behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
if (!existsSync(fileURLToPath(new URL("../../dist/index.js", import.meta.url)))) {
  throw new Error("dist/ is missing: the messaging crash tests run the built package; run `npm run build` first (npm test does).");
}

export interface ChildEvent {
  ev: string;
  pid: number;
  t: number;
  [key: string]: any;
}

const live = new Set<MessagingChild>();
afterEach(async () => {
  await Promise.all([...live].map((c) => c.kill()));
});
process.on("exit", () => {
  for (const c of live) c.killNow();
});

interface Pending {
  predicate: (e: ChildEvent) => boolean;
  resolve: (e: ChildEvent) => void;
  reject: (error: Error) => void;
}

export class MessagingChild {
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  stderr = "";
  private readonly child: ChildProcess;
  private pending: Pending[] = [];

  /** `node worker.mjs <url> <executorId> <params>`; see worker.mjs for the modes and their params. */
  constructor(url: string, executorId: string, params: Record<string, unknown>) {
    this.child = spawn(process.execPath, [WORKER, url, executorId, JSON.stringify(params)], { stdio: ["ignore", "pipe", "pipe"] });
    live.add(this);
    let buffered = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        let event: ChildEvent;
        try {
          event = JSON.parse(line) as ChildEvent;
        } catch {
          event = { ev: "stdout", line, pid: this.pid, t: Date.now() };
        }
        this.onEvent(event);
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      // "close" comes after stdout is drained: every event printed has been seen.
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        const error = new Error(`worker ${this.pid} exited (code ${code}, signal ${signal}) before the awaited event.\nstderr:\n${this.stderr}`);
        for (const p of this.pending.splice(0)) p.reject(error);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onEvent(e: ChildEvent): void {
    this.events.push(e);
    this.pending = this.pending.filter((p) => {
      if (!p.predicate(e)) return true;
      p.resolve(e);
      return false;
    });
  }

  /** The first event (already seen or future) matching `predicate`. */
  waitForEvent(predicate: (e: ChildEvent) => boolean, what: string, timeoutMs = 30_000): Promise<ChildEvent> {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`worker ${this.pid} already exited before ${what}.\nstderr:\n${this.stderr}`));
    return new Promise((resolve, reject) => {
      const entry: Pending = {
        predicate,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.pending = this.pending.filter((p) => p !== entry);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} from worker ${this.pid}.\nstderr:\n${this.stderr}`));
      }, timeoutMs);
      this.pending.push(entry);
    });
  }

  /** The event that makes `count` events named `ev`. */
  waitForCount(ev: string, count: number, timeoutMs = 30_000): Promise<ChildEvent> {
    let n = 0;
    return this.waitForEvent((e) => e.ev === ev && ++n >= count, `${count} × "${ev}"`, timeoutMs);
  }

  named(ev: string): ChildEvent[] {
    return this.events.filter((e) => e.ev === ev);
  }

  /** SIGKILLs the child if it still runs and waits until it is gone; true if that killed it. */
  async kill(): Promise<boolean> {
    if (this.exit) return false;
    this.child.kill("SIGKILL");
    return (await this.exited).signal === "SIGKILL";
  }

  killNow(): void {
    if (!this.exit) this.child.kill("SIGKILL");
  }

  /** Waits for "all-done" and a clean exit; returns the "result" event's output. */
  async finish(timeoutMs = 30_000): Promise<unknown> {
    const done = await this.waitForEvent((e) => e.ev === "all-done", "all-done", timeoutMs);
    const exit = await this.exited;
    if (exit.code !== 0) throw new Error(`worker ${this.pid} exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
    return done.output;
  }
}
