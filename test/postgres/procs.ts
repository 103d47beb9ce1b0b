/**
 * Child processes for the PostgreSQL fault tests: each runs a small duro application on the
 * BUILT package (dist/), reports progress as JSON lines on stdout, and takes commands as lines on
 * stdin. The test can SIGKILL, SIGSTOP or SIGCONT it and await any event it printed. Every child
 * still running when a test ends is killed (afterEach), and when the test process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

const DIST = fileURLToPath(new URL("../../dist/index.js", import.meta.url));
if (!existsSync(DIST)) throw new Error("dist/ is missing: the PostgreSQL fault tests run the built package; run `npm run build` first.");

export interface ProcEvent {
  ev: string;
  pid: number;
  t: number;
  wf?: string;
  step?: number;
  [key: string]: unknown;
}

const live = new Set<Proc>();
afterEach(async () => {
  await Promise.all([...live].map((p) => p.kill()));
});
process.on("exit", () => {
  for (const p of live) p.killNow();
});

interface Pending {
  predicate: (e: ProcEvent) => boolean;
  resolve: (e: ProcEvent) => void;
  reject: (error: Error) => void;
}

export class Proc {
  readonly events: ProcEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  stderr = "";
  private readonly child: ChildProcess;
  private pending: Pending[] = [];

  /** `script`: a file next to this one; `params` goes to it as one JSON argument. */
  constructor(
    script: string,
    params: unknown,
    readonly name = script,
  ) {
    const path = fileURLToPath(new URL(`./${script}`, import.meta.url));
    this.child = spawn(process.execPath, [path, JSON.stringify(params)], { stdio: ["pipe", "pipe", "pipe"] });
    live.add(this);
    let buffered = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        let event: ProcEvent;
        try {
          event = JSON.parse(line) as ProcEvent;
        } catch {
          event = { ev: "stdout", line, pid: this.pid, t: Date.now() };
        }
        this.onEvent(event);
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.child.stdin!.on("error", () => {}); // writing to a killed child
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        const error = new Error(`${this.name} (pid ${this.pid}) exited (code ${code}, signal ${signal}) before the awaited event.\nstderr:\n${this.stderr}`);
        for (const p of this.pending.splice(0)) p.reject(error);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onEvent(e: ProcEvent): void {
    this.events.push(e);
    this.pending = this.pending.filter((p) => {
      if (!p.predicate(e)) return true;
      p.resolve(e);
      return false;
    });
  }

  /** The first event (already seen or future) matching `predicate`. */
  waitForEvent(predicate: (e: ProcEvent) => boolean, what: string, timeoutMs = 30_000): Promise<ProcEvent> {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`${this.name} (pid ${this.pid}) already exited before ${what}.\nstderr:\n${this.stderr}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = this.pending.filter((p) => p !== entry);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} from ${this.name} (pid ${this.pid}).\nstderr:\n${this.stderr}`));
      }, timeoutMs);
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
      this.pending.push(entry);
    });
  }

  waitFor(ev: string, timeoutMs?: number): Promise<ProcEvent> {
    return this.waitForEvent((e) => e.ev === ev, `"${ev}"`, timeoutMs);
  }

  /** Resolves once `count` events named `ev` have arrived (counting those already seen). */
  waitForCount(ev: string, count: number, timeoutMs = 30_000): Promise<void> {
    const target = () => this.count(ev) >= count;
    if (target()) return Promise.resolve();
    return this.waitForEvent(() => target(), `${count} × "${ev}"`, timeoutMs).then(() => undefined);
  }

  count(ev: string): number {
    return this.events.filter((e) => e.ev === ev).length;
  }

  /** Sends one command line on stdin. */
  command(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(signal);
  }

  /** SIGKILLs the process (if still running) and waits until it is gone. */
  async kill(): Promise<boolean> {
    if (this.exit) return false;
    this.child.kill("SIGCONT"); // a stopped process dies of SIGKILL too, but be tidy
    this.child.kill("SIGKILL");
    const exit = await this.exited;
    return exit.signal === "SIGKILL";
  }

  killNow(): void {
    if (!this.exit) this.child.kill("SIGKILL");
  }

  /** Asks for a clean shutdown and waits for exit code 0. */
  async shutdown(timeoutMs = 20_000): Promise<void> {
    this.command("shutdown");
    const timer = setTimeout(() => this.killNow(), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    if (exit.code !== 0) throw new Error(`${this.name} (pid ${this.pid}) exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
  }
}
