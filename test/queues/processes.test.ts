/**
 * Queue limits with executors as real processes (worker.mjs, running the built package): the
 * global concurrency and the rate limit hold across processes, and an enqueue from another
 * process starts work without waiting for a poll. The step bodies of every process append
 * enter/exit lines to one shared log; the file's order is the order in which they happened.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { backends, freshDatabaseUrl, useClients, waitFor, type Backend } from "../helpers.js";
import { Child, requireBuild, type ChildEvent } from "../processes.js";
import { maxInWindow } from "./support.js";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
requireBuild("these tests");

/** A line of the shared log the step bodies append to. */
interface Event {
  ev: string;
  id?: string;
  pid: number;
  t: number;
}

/** `node worker.mjs <url> <executorId> <logPath> <mode>`: an executor that runs until its stdin closes. */
class Executor extends Child {
  /** Resolves once it has launched; rejects if it exits first. */
  readonly ready: Promise<ChildEvent>;

  constructor(url: string, executorId: string, logPath: string, mode = "") {
    super(WORKER, [url, executorId, logPath, mode], `executor ${executorId}`);
    this.ready = this.waitFor("ready");
  }

  /** Closes its stdin: it shuts down and exits 0. */
  async stop(): Promise<void> {
    this.endInput();
    const { code } = await this.exited;
    expect(code, this.stderr).toBe(0);
  }
}

const newClient = useClients();
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** `n` executor processes on a fresh database, a client on it, and the shared log. */
async function start(backend: Backend, n: number, mode = "") {
  const url = freshDatabaseUrl(backend);
  const dir = mkdtempSync(join(tmpdir(), "duro-queues-"));
  dirs.push(dir);
  const logPath = join(dir, "bodies.jsonl");
  const client = newClient(url);
  await client.listWorkflows({ limit: 1 }); // create the schema before the processes race to
  const executors = Array.from({ length: n }, (_, i) => new Executor(url, `proc-${i}`, logPath, mode));
  await Promise.all(executors.map((e) => e.ready));
  const read = (): Event[] =>
    existsSync(logPath)
      ? readFileSync(logPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Event)
      : [];
  return { client, executors, read };
}

describe.each(backends)("%s", (backend) => {
  it("never exceeds the global concurrency across three processes", async () => {
    const { client, executors, read } = await start(backend, 3);
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
    const { client, executors, read } = await start(backend, 3);
    const handles = await client.enqueueMany<string>({ workflowName: "job", queueName: "r" }, Array.from({ length: 12 }, (_, i) => [`r${i}`, 1]));
    await Promise.all(handles.map((h) => h.getResult()));
    const statuses = await client.listWorkflows({ queueName: "r", loadOutput: false });
    await Promise.all(executors.map((e) => e.stop()));
    const claimedAt = new Map(statuses.map((s) => [(s.input as [string, number])[0], s.startedAtEpochMs!]));
    expect(claimedAt.size).toBe(12);
    expect(maxInWindow([...claimedAt.values()], 500)).toBeLessThanOrEqual(3);
    // Every body ran after the claim the limit counted. (How close together bodies enter is up to
    // the machine's load: a process that stalls runs its claimed bodies late, and together.)
    const entered = read().filter((e) => e.ev === "enter");
    expect(entered).toHaveLength(12);
    for (const e of entered) expect(e.t, e.id).toBeGreaterThanOrEqual(claimedAt.get(e.id!)!);
  });

  it("starts work enqueued from another process at once, although the executor polls every 30 s", async () => {
    const { client, executors } = await start(backend, 1);
    const [executor] = executors;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const handle = await client.enqueue<string>({ workflowName: "ping", queueName: "p" }, `p${i}`);
      const enqueued = Date.now();
      await handle.getResult();
      // The result can arrive before the executor's log line of the start has been read.
      const started = () => executor.events.find((e) => e.ev === "ping" && e.id === `p${i}`);
      await waitFor(() => started() !== undefined, 5000, `the start of p${i} in the executor's log`);
      latencies.push(started()!.t - enqueued);
    }
    await executor.stop();
    expect(Math.max(...latencies), `latencies: ${latencies.join(", ")} ms`).toBeLessThan(500);
  });

  it("keeps a launched executor process up, serving its queues, with nothing else to do", async () => {
    // A worker script whose last line is `await duro.launch()` must not exit: it is there to run queued work.
    const { client, executors } = await start(backend, 1, "bare");
    const [executor] = executors;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(executor.alive, `the executor process exited after launch: ${JSON.stringify(executor.events.at(-1))}`).toBe(true);
    const handle = await client.enqueue<string>({ workflowName: "ping", queueName: "p" }, "still-there");
    expect(await Promise.race([handle.getResult(), new Promise((resolve) => setTimeout(() => resolve("timed out"), 5_000))])).toBe("still-there");
  });
});

// SQLite has no clock of its own: its executors share a machine, and the process clock.
describe("postgres", () => {
  it("holds the rate limit by the database's clock when the executors' clocks disagree by 3 s", async () => {
    const { client, executors, read } = await start("postgres", 3, "skewed");
    // Each process runs two at a time, each job for most of a window: the three take turns.
    const handles = await client.enqueueMany<string>({ workflowName: "job", queueName: "s" }, Array.from({ length: 12 }, (_, i) => [`s${i}`, 300]));
    await Promise.all(handles.map((h) => h.getResult()));
    const statuses = await client.listWorkflows({ queueName: "s", loadOutput: false });
    await Promise.all(executors.map((e) => e.stop()));
    expect(maxInWindow(statuses.map((s) => s.startedAtEpochMs!), 500)).toBeLessThanOrEqual(3);
    // The bodies, by the true time: no process's clock let it start more than its share.
    const entered = read().filter((e) => e.ev === "enter");
    expect(entered).toHaveLength(12);
    expect(new Set(entered.map((e) => e.pid)).size).toBeGreaterThanOrEqual(2);
    expect(maxInWindow(entered.map((e) => e.t), 300)).toBeLessThanOrEqual(3);
  });
});
