/**
 * Queue limits with executors as real processes (worker.mjs, running the built package): the
 * global concurrency and the rate limit hold across processes, and an enqueue from another
 * process starts work without waiting for a poll. The step bodies of every process append
 * enter/exit lines to one shared log; the file's order is the order in which they happened.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DuroClient } from "../../src/index.js";
import { backends, freshDatabaseUrl, quietLogger } from "../helpers.js";
import { maxInWindow } from "./support.js";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
if (!existsSync(fileURLToPath(new URL("../../dist/index.js", import.meta.url)))) {
  throw new Error("dist/ is missing: these tests run the built package; run `npm run build` first (npm test does).");
}

interface Event {
  ev: string;
  id?: string;
  pid: number;
  t: number;
}

class Executor {
  readonly events: Event[] = [];
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private stderr = "";

  constructor(url: string, executorId: string, logPath: string, mode = "") {
    this.child = spawn(process.execPath, [WORKER, url, executorId, logPath, mode], { stdio: ["pipe", "pipe", "pipe"] });
    let buffered = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as Event);
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    this.ready = new Promise((resolve, reject) => {
      const check = setInterval(() => {
        if (this.events.some((e) => e.ev === "ready")) {
          clearInterval(check);
          resolve();
        }
      }, 5);
      void this.exited.then((code) => {
        clearInterval(check);
        reject(new Error(`executor ${executorId} exited with ${code} before it was ready:\n${this.stderr}`));
      });
    });
  }

  /** Closes its stdin: it shuts down and exits 0. */
  async stop(): Promise<void> {
    this.child.stdin!.end();
    const code = await this.exited;
    expect(code, this.stderr).toBe(0);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(): void {
    if (this.alive) this.child.kill("SIGKILL");
  }
}

const live: Executor[] = [];
const clients: DuroClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const e of live.splice(0)) e.kill();
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe.each(backends)("%s", (backend) => {
  /** `n` executor processes on a fresh database, a client on it, and the shared log. */
  async function start(n: number, mode = "") {
    const url = freshDatabaseUrl(backend);
    const dir = mkdtempSync(join(tmpdir(), "duro-queues-"));
    dirs.push(dir);
    const logPath = join(dir, "bodies.jsonl");
    const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
    clients.push(client);
    await client.listWorkflows({ limit: 1 }); // create the schema before the processes race to
    const executors = Array.from({ length: n }, (_, i) => new Executor(url, `proc-${i}`, logPath, mode));
    live.push(...executors);
    await Promise.all(executors.map((e) => e.ready));
    const read = (): Event[] =>
      existsSync(logPath)
        ? readFileSync(logPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Event)
        : [];
    return { client, executors, read };
  }

  it("never exceeds the global concurrency across three processes", async () => {
    const { client, executors, read } = await start(3);
    const argsList = Array.from({ length: 60 }, (_, i) => [`j${i}`, 25 + (i % 4) * 10]);
    const handles = await client.enqueueMany<string>({ workflowName: "job", queueName: "q" }, argsList);
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(argsList.map(([id]) => id));
    await Promise.all(executors.map((e) => e.stop()));

    const events = read();
    let running = 0;
    let max = 0;
    const perPid = new Map<number, { running: number; max: number }>();
    for (const e of events) {
      const delta = e.ev === "enter" ? 1 : -1;
      running += delta;
      max = Math.max(max, running);
      const p = perPid.get(e.pid) ?? { running: 0, max: 0 };
      p.running += delta;
      p.max = Math.max(p.max, p.running);
      perPid.set(e.pid, p);
    }
    expect(events.filter((e) => e.ev === "enter").map((e) => e.id).sort()).toEqual(argsList.map(([id]) => id).sort());
    expect(max).toBeLessThanOrEqual(4);
    for (const [, p] of perPid) expect(p.max).toBeLessThanOrEqual(2);
    // The work was shared: more than one process ran it, more than one process's worth at once.
    expect(perPid.size).toBeGreaterThanOrEqual(2);
    expect(max).toBeGreaterThanOrEqual(3);
  });

  it("never lets the rate limit be exceeded in any window across three processes", async () => {
    const { client, executors, read } = await start(3);
    const handles = await client.enqueueMany<string>({ workflowName: "job", queueName: "r" }, Array.from({ length: 12 }, (_, i) => [`r${i}`, 1]));
    await Promise.all(handles.map((h) => h.getResult()));
    const statuses = await client.listWorkflows({ queueName: "r", loadInput: false, loadOutput: false });
    await Promise.all(executors.map((e) => e.stop()));
    const claimedAt = statuses.map((s) => s.startedAtEpochMs!);
    expect(claimedAt).toHaveLength(12);
    expect(maxInWindow(claimedAt, 500)).toBeLessThanOrEqual(3);
    const entered = read().filter((e) => e.ev === "enter").map((e) => e.t);
    expect(entered).toHaveLength(12);
    expect(maxInWindow(entered, 300)).toBeLessThanOrEqual(3);
  });

  it("starts work enqueued from another process at once, although the executor polls every 30 s", async () => {
    const { client, executors } = await start(1);
    const [executor] = executors;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const handle = await client.enqueue<string>({ workflowName: "ping", queueName: "p" }, `p${i}`);
      const enqueued = Date.now();
      await handle.getResult();
      latencies.push(executor.events.find((e) => e.ev === "ping" && e.id === `p${i}`)!.t - enqueued);
    }
    await executor.stop();
    expect(Math.max(...latencies), `latencies: ${latencies.join(", ")} ms`).toBeLessThan(500);
  });

  it("keeps a launched executor process up, serving its queues, with nothing else to do", async () => {
    // A worker script whose last line is `await duro.launch()` must not exit: it is there to run queued work.
    const { client, executors } = await start(1, "bare");
    const [executor] = executors;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(executor.alive, `the executor process exited after launch: ${JSON.stringify(executor.events.at(-1))}`).toBe(true);
    const handle = await client.enqueue<string>({ workflowName: "ping", queueName: "p" }, "still-there");
    expect(await Promise.race([handle.getResult(), new Promise((resolve) => setTimeout(() => resolve("timed out"), 5_000))])).toBe("still-there");
  });
});
