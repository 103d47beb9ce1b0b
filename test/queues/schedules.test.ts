/** Cron schedules: each tick runs exactly once across executors; missed ticks only with catchUp. */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, WorkflowQueue, type Duro } from "../../src/index.js";
import { backends, quietLogger, sleep, useDuro, waitFor } from "../helpers.js";

interface Run {
  executor: string;
  workflowId: string;
  input: unknown;
}

const tickTime = (workflowId: string, name: string) => Date.parse(workflowId.slice(`sched:${name}:`.length));

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  /** An executor whose workflow "tick" records its runs in `runs`, scheduled every second as `name`. */
  async function executor(executorId: string, runs: Run[], name: string, options: { catchUp?: boolean; queueName?: string } = {}): Promise<Duro> {
    const duro = t.duro({ executorId, appVersion: "v1" });
    const tick = duro.registerWorkflow("tick", async (at: Date) => {
      runs.push({ executor: executorId, workflowId: duro.workflowId!, input: at });
    });
    if (options.queueName) new WorkflowQueue(duro, options.queueName);
    await duro.schedule(name, "* * * * * *", tick, options);
    await duro.launch();
    return duro;
  }

  const ticks = (runs: Run[], name: string) => runs.map((r) => tickTime(r.workflowId, name)).sort((a, b) => a - b);

  it("runs each tick exactly once across two executors, with the tick's time as input and ID sched:<name>:<ISO time>", async () => {
    const runs: Run[] = [];
    const launchedAt = Date.now();
    const e1 = await executor("e1", runs, "every-second");
    const e2 = await executor("e2", runs, "every-second");
    await waitFor(() => new Set(runs.map((r) => r.workflowId)).size >= 3, 10_000, "three ticks");
    await e1.shutdown();
    await e2.shutdown();
    const ids = runs.map((r) => r.workflowId);
    expect(new Set(ids).size, `a tick ran twice: ${ids.join(", ")}`).toBe(ids.length);
    for (const run of runs) {
      expect(run.workflowId).toMatch(/^sched:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
      expect(run.input).toBeInstanceOf(Date);
      expect((run.input as Date).getTime()).toBe(tickTime(run.workflowId, "every-second"));
      expect((run.input as Date).toISOString()).toBe(run.workflowId.slice("sched:every-second:".length));
    }
    const times = ticks(runs, "every-second");
    expect(times[0]).toBeGreaterThan(launchedAt - 1000);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBe(1000);
    const observer = t.duro({ executorId: "observer", appVersion: "v1" });
    await observer.launch();
    const stored = await observer.listWorkflows({ workflowIdPrefix: "sched:every-second:" });
    expect(stored.map((s) => s.workflowId).sort()).toEqual([...ids].sort());
    for (const s of stored) expect(s).toMatchObject({ status: "SUCCESS", workflowName: "tick" });
  });

  it("skips ticks missed while every executor was down, and replays them with catchUp", async () => {
    const name = "missed";
    const runs: Run[] = [];
    const first = await executor("e1", runs, name);
    await waitFor(() => runs.length >= 1, 5_000, "a first tick");
    await first.shutdown();
    const lastBeforeGap = Math.max(...ticks(runs, name));

    await sleep(2200); // at least two ticks pass with no executor up
    const relaunchedAt = Date.now();
    const second = await executor("e2", runs, name);
    await waitFor(() => ticks(runs, name).some((at) => at > relaunchedAt), 5_000, "a tick after the relaunch");
    await second.shutdown();
    // Nothing between the last tick before the gap and the relaunch was run.
    expect(ticks(runs, name).filter((at) => at > lastBeforeGap && at < relaunchedAt)).toEqual([]);
    const lastBeforeSecondGap = Math.max(...ticks(runs, name));

    await sleep(2200);
    const beforeThird = Date.now();
    const third = await executor("e3", runs, name, { catchUp: true });
    const caughtUp = Date.now();
    // Every tick after the last recorded one, up to now, is run (once).
    await waitFor(() => {
      const after = ticks(runs, name).filter((at) => at > lastBeforeSecondGap);
      return after.length >= 3 && after.every((at, i) => at === lastBeforeSecondGap + (i + 1) * 1000) && after[after.length - 1] >= caughtUp - 1000;
    }, 5_000, "the missed ticks to be caught up");
    await third.shutdown();
    const ids = runs.map((r) => r.workflowId);
    expect(new Set(ids).size).toBe(ids.length);
    // The ticks that passed while no executor was up (at least two in 2.2 s) were run by the catching-up executor.
    const caught = runs.filter((r) => tickTime(r.workflowId, name) > lastBeforeSecondGap && tickTime(r.workflowId, name) < beforeThird);
    expect(caught.length).toBeGreaterThanOrEqual(2);
    for (const r of caught) expect(r.executor).toBe("e3");
  });

  it("catches up on the latest 1,000 missed ticks at most, and says that older ones were skipped", async () => {
    const warnings: string[] = [];
    const duro = t.duro({ logger: { ...quietLogger, warn: (message: string) => void warnings.push(message) } });
    const started: number[] = [];
    const tick = duro.registerWorkflow("tick", async (at: Date) => void started.push(at.getTime()));
    await duro.launch();
    // The last recorded tick was 1,500 s ago.
    const last = Math.floor(Date.now() / 1000) * 1000 - 1_500_000;
    await (await duro.startWorkflow(tick.with({ workflowId: `sched:cap:${new Date(last).toISOString()}` }), new Date(last))).getResult();
    started.length = 0;
    await duro.schedule("cap", "* * * * * *", tick, { catchUp: true });
    await waitFor(() => started.length >= 1000, 30_000, "1,000 ticks to be caught up");
    const caught = [...started].sort((a, b) => a - b).slice(0, 1000);
    expect(caught.every((at, i) => i === 0 || at === caught[i - 1] + 1000)).toBe(true);
    expect(caught[999]).toBeGreaterThan(Date.now() - 5_000); // the latest ones, not the oldest
    expect(caught[0]).toBeGreaterThan(last + 400_000);
    expect(warnings.filter((w) => w.includes("missed more than 1000 ticks"))).toHaveLength(1);
  });

  /** An executor of a workflow "tick" to schedule, whose store's writes go through `gate` first. */
  async function gated(gate: () => Promise<void>, config: { logger?: typeof quietLogger } = {}) {
    const duro = t.duro(config);
    const started: number[] = [];
    const tick = duro.registerWorkflow("tick", async (at: Date) => void started.push(at.getTime()));
    await duro.launch();
    const store = duro.engine.store;
    const write = store.write.bind(store);
    store.write = async (writes) => (await gate(), write(writes));
    /** Every tick from `from` on, one second apart, none twice. */
    const gapless = (from: number) => {
      const after = [...started].filter((at) => at >= from).sort((a, b) => a - b);
      return after.every((at, i) => at === from + i * 1000) ? after.length : -1;
    };
    return { duro, tick, started, gapless };
  }

  it("starts the ticks that come due while catching up, too", async () => {
    let slow = true;
    const { duro, tick, gapless } = await gated(async () => {
      if (slow) await sleep(1500); // the first catch-up write takes 1.5 s: a tick or more comes due meanwhile
      slow = false;
    });
    const last = Math.floor(Date.now() / 1000) * 1000 - 3000;
    await (await duro.startWorkflow(tick.with({ workflowId: `sched:during:${new Date(last).toISOString()}` }), new Date(last))).getResult();
    slow = true;
    await duro.schedule("during", "* * * * * *", tick, { catchUp: true });
    const caughtUp = Date.now();
    await waitFor(() => gapless(last + 1000) * 1000 > caughtUp - last + 1000, 10_000, "every tick since the last recorded one, with none left out");
  });

  it("starts ticks the database refused for a while (read-only, not taking connections) once it takes them, each once", async () => {
    const warnings: string[] = [];
    let refusing = false;
    const { duro, tick, gapless } = await gated(async () => {
      // What PostgreSQL says on a standby during a failover: not a lost connection, but not a write either.
      if (refusing) throw Object.assign(new Error("cannot execute INSERT in a read-only transaction"), { code: "25006" });
    }, { logger: { ...quietLogger, warn: (message: string) => void warnings.push(message) } });
    await duro.schedule("refused", "* * * * * *", tick);
    const first = Math.ceil(Date.now() / 1000) * 1000;
    await waitFor(() => gapless(first) >= 1, 5_000, "a first tick");
    refusing = true;
    await sleep(2500); // two ticks or more are refused
    refusing = false;
    const back = Date.now();
    await waitFor(() => gapless(first) * 1000 > back - first + 1000, 15_000, "every tick, those refused included, with none twice");
    expect(warnings.some((w) => w.includes('Schedule "refused" could not start its tick') && w.includes("read-only"))).toBe(true);
  });

  it("enqueues each tick on a queue when given queueName", async () => {
    const runs: Run[] = [];
    const duro = await executor("e1", runs, "queued", { queueName: "ticks" });
    await waitFor(() => runs.length >= 1, 5_000, "a tick");
    const [status] = await duro.listWorkflows({ workflowIds: [runs[0].workflowId] });
    expect(status).toMatchObject({ queueName: "ticks", workflowName: "tick" });
  });

  it("options bound with with() apply to every tick (its queue unless queueName is given); those a tick cannot share are refused", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "bound", { priorityEnabled: true });
    const tick = duro.registerWorkflow("tick", async (at: Date) => at.getTime());
    await duro.schedule("bound", "* * * * * *", tick.with({ queueName: "bound", priority: 3, timeoutSeconds: 600, authenticatedUser: "cron" }));
    for (const key of ["workflowId", "deadlineEpochMs", "deduplicationId", "partitionKey"] as const) {
      await expect(duro.schedule(`refused-${key}`, "* * * * *", tick.with({ [key]: key === "deadlineEpochMs" ? Date.now() + 60_000 : "x" })), key).rejects.toThrow(InvalidArgumentError);
    }
    await duro.launch();
    await waitFor(async () => (await duro.listWorkflows({ name: ["tick"] })).length >= 1, 5_000, "a tick");
    const [run] = await duro.listWorkflows({ name: ["tick"] });
    expect(run).toMatchObject({ queueName: "bound", priority: 3, timeoutMs: 600_000, authenticatedUser: "cron" });
    // What a tick's start would refuse is refused once, not at every tick: after launch at schedule().
    await expect(duro.schedule("queueless", "* * * * * *", tick.with({ priority: 3 }))).rejects.toThrow(/priority only applies to enqueued workflows/);
    await expect(duro.schedule("prio0", "* * * * * *", tick.with({ queueName: "bound", priority: 0 }))).rejects.toThrow(InvalidArgumentError);
    // Before launch, at launch (a queue may be declared in between).
    const other = t.duro();
    await other.schedule("delayed", "* * * * * *", other.registerWorkflow("tick", async (at: Date) => at.getTime()).with({ delaySeconds: 1 }));
    await expect(other.launch()).rejects.toThrow(/delaySeconds only applies to enqueued workflows/);
  });

  it("a schedule added while launch() is under way starts once: each tick is started by one timer", async () => {
    const duro = t.duro();
    const tick = duro.registerWorkflow("tick", async (at: Date) => at.getTime());
    const late = duro.registerWorkflow("late", async (at: Date) => at.getTime());
    await duro.schedule("early", "* * * * * *", tick);
    const starts = { late: 0 };
    const launched = duro.launch();
    // Registered as launch serves its schedules (the schedule's own start is what a second timer would add).
    await waitFor(() => (duro.engine as unknown as { serving: boolean }).serving, 5_000, "launch serving");
    await duro.schedule("late", "* * * * * *", late);
    const schedule = (duro.engine as unknown as { schedules: Map<string, { start(): Promise<void> }> }).schedules.get("late")!;
    const start = schedule.start.bind(schedule);
    schedule.start = () => (starts.late++, start());
    // Checked as it is added, as after launch: an undeclared queue is refused, not left to fail every tick.
    await expect(duro.schedule("nowhere", "* * * * * *", late, { queueName: "nope" })).rejects.toThrow(InvalidArgumentError);
    await launched;
    expect(starts.late).toBe(0); // started by schedule() itself, not again by launch
    await waitFor(async () => (await duro.listWorkflows({ name: ["late"] })).length >= 1, 5_000, "a late tick");
  });

  it("a tick due while a workflow sleeps is no part of that workflow: no parent, nothing in its record, its replay unchanged", async () => {
    const duro = t.duro();
    const tick = duro.registerWorkflow("tick", async (at: Date) => at.getTime());
    const step = duro.registerStep("step", async (i: number) => i);
    const sleeper = duro.registerWorkflow("sleeper", async () => {
      // Its sleeps arm the shared timer, which the schedule's next tick shares.
      for (let i = 0; i < 8; i++) await step(await duro.sleep(0.3).then(() => i));
      return "done";
    });
    await duro.schedule("every", "* * * * * *", tick);
    await duro.launch();
    const handle = await duro.startWorkflow(sleeper.with({ workflowId: "sleeper-1" }));
    expect(await handle.getResult()).toBe("done");
    await waitFor(async () => (await duro.listWorkflows({ name: ["tick"], status: ["SUCCESS"] })).length >= 2, 10_000, "two ticks");
    for (const tickRun of await duro.listWorkflows({ name: ["tick"] })) expect(tickRun.parentWorkflowId, tickRun.workflowId).toBeNull();
    const names = (await duro.listWorkflowSteps("sleeper-1")).map((s) => s.functionName);
    expect(names).toEqual(Array.from({ length: 8 }, () => ["duro.sleep", "step"]).flat());
    expect(await (await duro.forkWorkflow("sleeper-1", 100)).getResult()).toBe("done");
  });

  it("accepts 5- and 6-field cron expressions and refuses bad ones with InvalidArgumentError", async () => {
    const duro = t.duro();
    const wf = duro.registerWorkflow("wf", async (_at: Date) => undefined);
    await duro.schedule("five", "*/5 * * * *", wf);
    await duro.schedule("six", "*/5 * * * * *", wf);
    for (const cron of ["not a cron", "* * *", "61 * * * * *", "* * * * * * * *", "0 0 3 * * * 2027", "* 25 * * *", ""]) {
      await expect(duro.schedule(`bad${Math.random()}`.replace(".", ""), cron, wf), cron).rejects.toThrow(InvalidArgumentError);
    }
    // croner would take these as one run at a given time: a schedule is not that.
    for (const once of ["2030-01-01T00:00:00Z", new Date(Date.now() + 60_000)] as never[]) {
      await expect(duro.schedule(`once${Math.random()}`.replace(".", ""), once, wf), String(once)).rejects.toThrow(InvalidArgumentError);
    }
    await duro.schedule("nickname", "@hourly", wf);
    await expect(duro.schedule("five", "* * * * *", wf)).rejects.toThrow(InvalidArgumentError); // name taken
    await duro.schedule("n".repeat(993), "* * * * *", wf); // its ticks' IDs are 1,024 bytes, the limit
    for (const name of ["a:b", "a\u0000b", "a\ud800b", "n".repeat(994)]) await expect(duro.schedule(name, "* * * * *", wf), JSON.stringify(name)).rejects.toThrow(InvalidArgumentError);
    await expect(Promise.resolve().then(() => duro.schedule("nowf", "* * * * *", {} as never))).rejects.toThrow(InvalidArgumentError);
    await expect(duro.schedule("zone", "* * * * *", wf, { timezone: "Not/AZone" })).rejects.toThrow(InvalidArgumentError);
    for (const timezone of [5, "", " "] as never[]) await expect(duro.schedule("zone", "* * * * *", wf, { timezone })).rejects.toThrow(InvalidArgumentError);
    await expect(duro.schedule("catch", "* * * * *", wf, { catchUp: "yes" as never })).rejects.toThrow(InvalidArgumentError);
    await expect(duro.schedule("never", "0 0 31 2 *", wf)).rejects.toThrow(/never fires/); // February 31st
    await duro.schedule("zoned", "* * * * *", wf, { timezone: "Europe/Paris" });
    await duro.shutdown(); // a shut-down instance ticks no more: a schedule added then would never run
    await expect(duro.schedule("late", "* * * * *", wf)).rejects.toThrow("This Duro instance was shut down; create a new one.");
  });

  it("refuses a queueName no queue is declared for: launch() (or schedule() after it) throws InvalidArgumentError", async () => {
    const duro = t.duro();
    const wf = duro.registerWorkflow("wf", async (_at: Date) => undefined);
    await duro.schedule("nowhere", "* * * * * *", wf, { queueName: "nope" });
    // A queueName that is no name at all is refused at once, not at launch.
    for (const queueName of ["", 3] as never[]) await expect(duro.schedule(`bad-${queueName}`, "* * * * * *", wf, { queueName })).rejects.toThrow(InvalidArgumentError);
    await expect(duro.launch()).rejects.toThrow(InvalidArgumentError);

    const other = t.duro();
    const wf2 = other.registerWorkflow("wf", async (_at: Date) => undefined);
    await other.schedule("declaredLater", "* * * * * *", wf2, { queueName: "ticks" });
    new WorkflowQueue(other, "ticks");
    await other.launch();
    await expect(other.schedule("nowhere", "* * * * * *", wf2, { queueName: "nope" })).rejects.toThrow(InvalidArgumentError);
  });

  it("refuses a partitioned queue (a tick has no partition key): at launch, or at schedule() after it", async () => {
    const duro = t.duro();
    const wf = duro.registerWorkflow("wf", async (_at: Date) => undefined);
    new WorkflowQueue(duro, "parts", { partitionQueue: true });
    await duro.schedule("ticks", "* * * * * *", wf, { queueName: "parts" });
    await expect(duro.launch()).rejects.toThrow(/partitioned/);

    const other = t.duro();
    const wf2 = other.registerWorkflow("wf", async (_at: Date) => undefined);
    new WorkflowQueue(other, "parts", { partitionQueue: true });
    await other.launch();
    await expect(other.schedule("ticks", "* * * * * *", wf2, { queueName: "parts" })).rejects.toThrow(InvalidArgumentError);
  });
});
