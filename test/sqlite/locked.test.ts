/**
 * SQLite's "cannot write now" (another process holding the file's write lock past the busy
 * timeout, a full disk) is the embedded counterpart of an unreachable PostgreSQL: a workflow
 * whose checkpoint hits it is interrupted and runs again from its checkpoints, and does not fail.
 * Opening waits out a lock when it must write; a damaged file is a DatabaseError that says so.
 */
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { closeSync, openSync, writeSync } from "node:fs";
import { AwaitedWorkflowCancelledError, DatabaseError, Duro, DuroClient } from "../../src/index.js";
import { busy } from "../../src/storage/sqlite/file.js";
import { clockPast, gate, quietLogger, range, sleep, sleepingPastDeadline, useDuro, waitFor, within } from "../helpers.js";

afterEach(() => {
  busy.timeoutMs = 10_000;
});

describe("sqlite: the file locked by another process, or damaged", () => {
  const t = useDuro("sqlite");

  it("a checkpoint that cannot get the write lock interrupts the run, which finishes once the lock is free; nothing ends in ERROR", async () => {
    busy.timeoutMs = 50;
    const duro = t.duro();
    const release = gate();
    let runs = 0;
    const step = duro.registerStep("charge", async (n: number) => {
      runs++;
      await release.promise;
      return n * 2;
    });
    const wf = duro.registerWorkflow("locked", async (n: number) => (await step(n)) + 1);
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: "locked-1" }), 20);
    await waitFor(() => runs === 1, 10_000, "the step running");

    const other = new Database(t.url.slice("sqlite:".length));
    other.exec("BEGIN IMMEDIATE"); // another process's long write transaction
    release.open();
    // The checkpoint fails (busy), the run ends without an outcome and is tried again.
    await waitFor(() => runs >= 2, 10_000, "the run tried again");
    expect((await duro.getWorkflowStatus("locked-1"))?.status).toBe("PENDING");
    other.exec("COMMIT");
    other.close();

    expect(await within(10_000, handle.getResult(), "the result once the lock is free")).toBe(41);
    expect((await duro.getWorkflowStatus("locked-1"))?.status).toBe("SUCCESS");
    expect((await duro.listWorkflowSteps("locked-1")).map((s) => [s.functionId, s.output])).toEqual([[1, 40]]);
  });

  it("a deadline that passes while the file is locked still holds: the run stops at it, and the cancel lands once it can", async () => {
    busy.timeoutMs = 50;
    const duro = t.duro();
    const { runs, start } = sleepingPastDeadline(duro);
    await duro.launch();
    const { handle, startedAt } = await start();
    const other = new Database(t.url.slice("sqlite:".length));
    other.exec("BEGIN IMMEDIATE"); // the cancel cannot be written
    await clockPast(startedAt + 2_000); // past the deadline, and past the sleep's end
    other.exec("COMMIT");
    other.close();
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(runs.after, "steps run past the deadline").toBe(0);
  });

  it("waiting out another process's lock does not block this process's event loop", async () => {
    const duro = t.duro();
    const double = duro.registerWorkflow("double", async (n: number) => n * 2);
    await duro.launch();
    const other = new Database(t.url.slice("sqlite:".length));
    other.exec("BEGIN IMMEDIATE");
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    const result = double(21); // its start waits for the lock
    await sleep(1500);
    other.exec("COMMIT");
    other.close();
    expect(await result).toBe(42);
    clearInterval(ticker);
    expect(longest, "the longest gap between 5 ms ticks, in ms").toBeLessThan(500);
  });

  it("a stall of this process while it waits for the lock is not counted as the other process's lock", async () => {
    busy.timeoutMs = 300;
    const duro = t.duro();
    const double = duro.registerWorkflow("double", async (n: number) => n * 2);
    await duro.launch();
    const other = new Database(t.url.slice("sqlite:".length));
    other.exec("BEGIN IMMEDIATE");
    const result = double(21); // its start waits for the lock
    await sleep(50);
    const stalled = Date.now();
    while (Date.now() - stalled < 600); // this process busy for twice the timeout (a long synchronous task)
    setTimeout(() => {
      other.exec("COMMIT"); // held 100 ms more after the stall: 250 ms of lock in all
      other.close();
    }, 100);
    // Before, the first try after the stall found the lock held and the deadline past: DatabaseError.
    expect(await result).toBe(42);
  });

  it("opening: an up-to-date file is read while another process holds its write lock; a fresh one waits for it, up to connectTimeoutSeconds", async () => {
    busy.timeoutMs = 50;
    const first = t.duro();
    const path = t.url.slice("sqlite:".length);
    const double = first.registerWorkflow("double", async (n: number) => n * 2);
    await first.launch();
    expect(await double(4)).toBe(8);
    await first.shutdown();

    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");
    const reader = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    expect((await within(5_000, reader.listWorkflows(), "a read beside the lock")).map((w) => w.output)).toEqual([8]);
    other.exec("COMMIT");
    other.close();
    await reader.close();

    const fresh = `${path}.fresh`;
    const locker = new Database(fresh);
    locker.exec("BEGIN IMMEDIATE");
    const late = new Duro({ databaseUrl: `sqlite:${fresh}`, logger: quietLogger, connectTimeoutSeconds: 0.3 });
    const error = await late.launch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as Error).message).toMatch(/lock/);
    const patient = new Duro({ databaseUrl: `sqlite:${fresh}`, logger: quietLogger });
    const launched = patient.launch();
    await sleep(300);
    locker.exec("COMMIT");
    locker.close();
    await within(5_000, launched, "launch once the lock is free");
    expect(await patient.listWorkflows()).toEqual([]);
    await patient.shutdown();
  });

  it("an executor's launch on an up-to-date file waits out a lock held past the busy timeout, up to connectTimeoutSeconds", async () => {
    busy.timeoutMs = 50;
    const first = t.duro();
    await first.launch(); // creates and migrates the file
    await first.shutdown();
    const locker = new Database(t.url.slice("sqlite:".length));
    locker.exec("BEGIN IMMEDIATE");
    const hasty = new Duro({ databaseUrl: t.url, logger: quietLogger, connectTimeoutSeconds: 0.2 });
    const error = await hasty.launch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as Error).message).toMatch(/lock/);
    const patient = t.duro();
    const launched = patient.launch();
    await sleep(300); // six busy timeouts: the first heartbeat failed with DatabaseError here before
    locker.exec("COMMIT");
    locker.close();
    await within(5_000, launched, "launch once the lock is free");
  });

  it("a damaged file is a DatabaseError that says so, at launch and at a client's first call", async () => {
    const first = t.duro();
    const pad = first.registerWorkflow("pad", async (n: number) => "x".repeat(500) + n);
    await first.launch();
    for (let i = 0; i < 200; i++) await pad(i);
    await first.shutdown();
    const path = t.url.slice("sqlite:".length);
    const file = openSync(path, "r+");
    writeSync(file, Buffer.alloc(3000, 0x5a), 0, 3000, 2 * 4096); // the third page
    closeSync(file);
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    for (const attempt of [t.duro().launch(), client.listWorkflows()]) {
      const error = await attempt.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DatabaseError);
      expect((error as Error).message).toMatch(/damaged/);
    }
    await client.close();
  });

  it("schedule ticks due while the file is locked are started, each once, when it is free", async () => {
    busy.timeoutMs = 50;
    const duro = t.duro();
    const tick = duro.registerWorkflow("tick", async (at: Date) => at.toISOString());
    await duro.schedule("every", "* * * * * *", tick);
    await duro.launch();
    const ticks = async () => {
      const rows = await duro.listWorkflows({ workflowIdPrefix: "sched:every:", loadInput: false });
      return rows.map((row) => Date.parse(row.workflowId.slice("sched:every:".length)));
    };
    await waitFor(async () => (await ticks()).length >= 1, 10_000, "a first tick");
    const other = new Database(t.url.slice("sqlite:".length));
    other.exec("BEGIN IMMEDIATE");
    await sleep(2500);
    other.exec("COMMIT");
    other.close();
    const free = Date.now();
    await waitFor(async () => (await ticks()).at(-1)! >= free, 10_000, "a tick after the lock");
    const seen = await ticks();
    expect(seen, "one tick a second, none lost or doubled").toEqual(range((seen.at(-1)! - seen[0]) / 1000 + 1).map((i) => seen[0] + (i - 1) * 1000));
    expect(seen.filter((at) => at > free - 2500 && at < free).length, "ticks due while locked").toBeGreaterThanOrEqual(2);
  });
});
