/**
 * Child processes, for the suites that need real ones (crash/, postgres/, queues/processes):
 * a `.mjs` script run by this Node binary, usually on the built package (dist/). The script
 * reports progress as JSON lines on stdout (`{"ev": …, "pid": …, "t": …}`); the test awaits those
 * events, writes command lines on its stdin, signals it, and SIGKILLs it at a chosen point.
 *
 * What each suite's script does and says stays with the suite (a subclass per suite); only the
 * plumbing is here. Every child still running when a test ends is SIGKILLed, so a failed test
 * never leaves one behind to disturb the next, and so is any left when the test process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

/** One JSON line a child printed. A line that is not JSON arrives as `{ ev: "stdout", line }`. */
export interface ChildEvent {
  ev: string;
  pid: number;
  t: number;
  [key: string]: unknown;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Throws at import time when dist/ is missing: the child scripts import the built package. */
export function requireBuild(suite: string): void {
  if (!existsSync(fileURLToPath(new URL("../dist/index.js", import.meta.url)))) {
    throw new Error(`dist/ is missing: ${suite} run the built package; run \`npm run build\` first (npm test does).`);
  }
}

// Typed by what the clean-up needs, so children of every event type fit in one set.
const live = new Set<Pick<Child, "sigkill" | "killNow">>();
afterEach(async () => {
  await Promise.all([...live].map((c) => c.sigkill()));
});
process.on("exit", () => {
  // Last resort (the test process itself is going): nothing can be awaited any more.
  for (const c of live) c.killNow();
});

interface Pending<E> {
  predicate: (e: E) => boolean;
  resolve: (e: E) => void;
  reject: (error: Error) => void;
}

/** One running `node <script> …args`. */
export class Child<E extends ChildEvent = ChildEvent> {
  readonly events: E[] = [];
  readonly exited: Promise<ChildExit>;
  exit: ChildExit | null = null;
  stderr = "";
  private readonly child: ChildProcess;
  private pending: Pending<E>[] = [];

  /** `script`: an absolute path; `name`: how failures refer to it. Without `stdin`, stdin is closed. */
  constructor(script: string, args: string[], readonly name: string, { stdin = true } = {}) {
    this.child = spawn(process.execPath, [script, ...args], { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
    live.add(this);
    let buffered = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) this.onEvent(parse<E>(line, this.pid));
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.child.stdin?.on("error", () => {}); // writing to a child that was just killed
    this.exited = new Promise((resolve) => {
      // "close" comes after the child's stdout is drained, so every event it printed has been
      // seen before a waiter is told it exited.
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        const error = new Error(`${this.describe()} exited (code ${code}, signal ${signal}) before the awaited event.\nstderr:\n${this.stderr}`);
        for (const p of this.pending.splice(0)) p.reject(error);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Not yet exited (as the OS last told us, which may be before its output is drained). */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private describe(): string {
    return `${this.name} (pid ${this.pid})`;
  }

  private onEvent(e: E): void {
    this.events.push(e);
    this.pending = this.pending.filter((p) => {
      if (!p.predicate(e)) return true;
      p.resolve(e);
      return false;
    });
  }

  /**
   * The first event (already seen or future) matching `predicate`; rejects if the child exits
   * first or `timeoutMs` passes. `predicate` sees every event once, in order, so it may count.
   */
  waitForEvent(predicate: (e: E) => boolean, what: string, timeoutMs = 30_000): Promise<E> {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`${this.describe()} already exited before ${what}.\nstderr:\n${this.stderr}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = this.pending.filter((p) => p !== entry);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} from ${this.describe()}.\nstderr:\n${this.stderr}`));
      }, timeoutMs);
      const entry: Pending<E> = {
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
      this.pending.push(entry);
    });
  }

  /** The first event named `ev`. */
  waitFor(ev: string, timeoutMs?: number): Promise<E> {
    return this.waitForEvent((e) => e.ev === ev, `"${ev}"`, timeoutMs);
  }

  /** The event that makes `count` events named `ev` (counting those already seen). */
  waitForCount(ev: string, count: number, timeoutMs = 30_000): Promise<E> {
    let n = 0;
    return this.waitForEvent((e) => e.ev === ev && ++n >= count, `${count} × "${ev}"`, timeoutMs);
  }

  count(ev: string): number {
    return this.events.filter((e) => e.ev === ev).length;
  }

  /** Sends one command line on the child's stdin. */
  command(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Closes the child's stdin (EOF). */
  endInput(): void {
    this.child.stdin!.end();
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** SIGKILLs the child (if still running) and waits until it is gone; true if that killed it. */
  async sigkill(): Promise<boolean> {
    if (this.exit) return false;
    this.child.kill("SIGCONT"); // a stopped process dies of SIGKILL too, but be tidy
    this.child.kill("SIGKILL");
    const exit = await this.exited;
    return exit.signal === "SIGKILL";
  }

  /** SIGKILL without waiting, for paths that cannot await. */
  killNow(): void {
    if (!this.exit) this.child.kill("SIGKILL");
  }
}

function parse<E extends ChildEvent>(line: string, pid: number): E {
  try {
    return JSON.parse(line) as E;
  } catch {
    // A stray line (a warning printed by a library, say) must not crash the test process.
    return { ev: "stdout", line, pid, t: Date.now() } as ChildEvent as E;
  }
}
