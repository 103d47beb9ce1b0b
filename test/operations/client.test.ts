/**
 * DuroClient({ databaseUrl }): no registrations, works by workflow name and ID against the
 * database an executor (a Duro instance) serves: enqueue, send, getEvent, readStream,
 * retrieveWorkflow, getResult, getWorkflowStatus, every management method, close().
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { busy } from "../../src/storage/sqlite/file.js";
import { afterEach, describe, expect, it } from "vitest";
import {
  AwaitedWorkflowCancelledError, DuplicateWorkflowError, DuroClient, DuroError, InvalidArgumentError, WorkflowCancelledError, WorkflowNotFoundError, WorkflowQueue, type Duro,
} from "../../src/index.js";
import { backends, gate, quietLogger, sleep, statusOf, useDuro, waitFor } from "../helpers.js";
import { requireBuild } from "../processes.js";
import { snapshot } from "./support.js";

/** The executor's workflows: "greet" talks through events, a stream and a message; "steps3" has three counted steps. */
function register(duro: Duro) {
  const runs = { a: 0, b: 0, c: 0 };
  const greet = duro.registerWorkflow("greet", async (name: string) => {
    await duro.setEvent("state", "waiting");
    await duro.writeStream("out", 1);
    const msg = await duro.recv<string>("msg", 30);
    await duro.writeStream("out", msg);
    await duro.closeStream("out");
    await duro.setEvent("state", `got ${msg}`);
    return `hello ${name}: ${msg}`;
  });
  const hold = { gate: null as Promise<void> | null, entered: gate() };
  const a = duro.registerStep("a", async (x: number) => (runs.a++, x + 1));
  const b = duro.registerStep("b", async (x: number) => {
    runs.b++;
    hold.entered.open();
    if (hold.gate) await hold.gate;
    return x * 10;
  });
  const c = duro.registerStep("c", async (x: number) => (runs.c++, x + 5));
  const steps3 = duro.registerWorkflow("steps3", async (x: number) => c(await b(await a(x))));
  new WorkflowQueue(duro, "jobs", { pollingIntervalSeconds: 0.2 });
  return { greet, steps3, runs, hold };
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const clients: DuroClient[] = [];
  const client = () => {
    const c = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  /** An executor with the workflows of `register`, launched; and a client on its database. */
  async function setup() {
    const duro = t.duro({ executorId: "worker" });
    const w = register(duro);
    await duro.launch();
    return { duro, c: client(), ...w };
  }

  /** Runs steps3(1) to its step "b", cancels it there, and lets the body unwind. */
  async function cancelledInB(duro: Duro, w: ReturnType<typeof register>, c: DuroClient, id: string) {
    const release = gate();
    w.hold.gate = release.promise;
    await c.enqueue({ workflowName: "steps3", queueName: "jobs", workflowId: id }, 1);
    await w.hold.entered.promise;
    await c.cancelWorkflow(id);
    w.hold.gate = null;
    release.open();
    // b was under way at the cancel: its outcome is kept.
    await waitFor(async () => (await duro.listWorkflowSteps(id)).length === 2 && !duro.engine.running.has(id), 10_000, "the body to unwind");
    expect(await statusOf(c, id)).toBe("CANCELLED");
  }

  it("enqueues by name and reads everything back: events, stream, messages, status, steps, lists", async () => {
    const { c } = await setup();
    const handle = await c.enqueue<string>({ workflowName: "greet", queueName: "jobs", workflowId: "g1", authenticatedUser: "ops" }, "ada");
    expect(handle.workflowId).toBe("g1");
    expect(await c.getEvent("g1", "state", 10)).toBe("waiting");
    const queued = await c.listQueuedWorkflows({ queueName: "jobs" });
    expect(queued.map((s) => [s.workflowId, s.status, s.executorId])).toEqual([["g1", "PENDING", "worker"]]);
    expect(await c.getEvent("g1", "no-such-key", 0.1)).toBeNull();

    await c.send("g1", "hi", "msg");
    expect(await handle.getResult()).toBe("hello ada: hi");
    expect(await c.getResult("g1")).toBe("hello ada: hi");
    expect(await c.getEvent("g1", "state", 1)).toBe("got hi");
    expect(await c.getAllEvents("g1")).toEqual({ state: "got hi" });
    const values: unknown[] = [];
    for await (const v of c.readStream("g1", "out")) values.push(v);
    expect(values).toEqual([1, "hi"]);

    const retrieved = await c.retrieveWorkflow<string>("g1");
    expect((await retrieved.getStatus())!).toMatchObject({
      workflowId: "g1", status: "SUCCESS", workflowName: "greet", input: ["ada"], output: "hello ada: hi", queueName: "jobs", authenticatedUser: "ops",
    });
    expect(await retrieved.getResult()).toBe("hello ada: hi");
    expect((await c.getWorkflowStatus("g1"))!.executorId).toBe("worker");
    expect(await c.getWorkflowStatus("nope")).toBeNull();
    expect((await c.listWorkflows({ name: "greet", status: "SUCCESS" })).map((s) => s.workflowId)).toEqual(["g1"]);
    expect((await c.listWorkflows({ user: "ops", loadInput: false }))[0]).not.toHaveProperty("input");
    expect(await c.listQueuedWorkflows()).toEqual([]);
    expect((await c.listWorkflowSteps("g1")).map((s) => s.functionName)).toEqual([
      "duro.setEvent", "duro.writeStream", "duro.recv", "duro.sleep", "duro.writeStream", "duro.closeStream", "duro.setEvent",
    ]);
    expect(await c.listWorkflowSteps("g1", { limit: 2, offset: 1 })).toMatchObject([{ functionId: 2 }, { functionId: 3, output: "hi" }]);
  });

  it("enqueue honours start options: deduplicationId, delaySeconds (and setWorkflowDelay moves it)", async () => {
    const { c } = await setup();
    await c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "d1", deduplicationId: "once" }, "x");
    await expect(c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "d2", deduplicationId: "once" }, "y")).rejects.toBeInstanceOf(
      DuplicateWorkflowError,
    );
    expect(await c.getWorkflowStatus("d2")).toBeNull();
    await c.send("d1", "m", "msg");
    expect(await c.getResult("d1")).toBe("hello x: m");

    const later = await c.enqueue<number>({ workflowName: "steps3", queueName: "jobs", workflowId: "late", delaySeconds: 3600 }, 2);
    expect((await later.getStatus())!.status).toBe("DELAYED");
    const until = Date.now() + 200;
    await c.setWorkflowDelay("late", { delayUntilEpochMs: until });
    expect((await later.getStatus())!.delayUntilEpochMs).toBe(until);
    expect(await later.getResult()).toBe(35);

    const later2 = await c.enqueue<number>({ workflowName: "steps3", queueName: "jobs", delaySeconds: 3600 }, 3);
    await c.setWorkflowDelay(later2.workflowId, { delaySeconds: 0 });
    expect(await later2.getResult()).toBe(45);
  });

  it("an unknown workflow name is stored ENQUEUED and runs once an executor that knows it starts", async () => {
    const { duro, c } = await setup(); // knows greet and steps3, serves "jobs"
    const handle = await c.enqueue<number>({ workflowName: "double", queueName: "jobs", workflowId: "u1" }, 21);
    expect((await handle.getStatus())!).toMatchObject({ status: "ENQUEUED", workflowName: "double", queueName: "jobs", input: [21] });
    await sleep(600);
    expect(await statusOf(duro, "u1")).toBe("ENQUEUED"); // the running executor cannot run it

    const knows = t.duro({ executorId: "knows-double" });
    knows.registerWorkflow("double", async (x: number) => x * 2);
    new WorkflowQueue(knows, "jobs");
    await knows.launch();
    expect(await handle.getResult()).toBe(42);
    expect((await c.getWorkflowStatus("u1"))!).toMatchObject({ status: "SUCCESS", executorId: "knows-double" });
  });

  it("cancelWorkflow(s): the executor running it stops it, and every getResult sees AwaitedWorkflowCancelledError", async () => {
    const { duro, c, greet } = await setup();
    const running = await duro.startWorkflow(greet.with({ workflowId: "r1" }), "r");
    await c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "r2" }, "q");
    await waitFor(async () => (await c.getEvent("r1", "state", 0.05)) === "waiting" && (await c.getEvent("r2", "state", 0.05)) === "waiting");
    const start = performance.now();
    await c.cancelWorkflows(["r1", "r2", "unknown"]);
    expect(await statusOf(c, "r1")).toBe("CANCELLED");
    await expect(c.getResult("r2")).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await expect(running.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await expect(duro.getResult("r2")).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await waitFor(() => !duro.engine.running.has("r1") && !duro.engine.running.has("r2"), 5000, "the runs to stop");
    expect(performance.now() - start).toBeLessThan(2500);
    await c.cancelWorkflow("unknown"); // a no-op
    // A message sent now changes nothing: the workflows are over.
    await c.send("r1", "late", "msg");
    await sleep(200);
    expect(await c.getEvent("r1", "state", 1)).toBe("waiting");
  });

  it("getEvent with timeoutSeconds 0 returns a value that is already set", async () => {
    const { c } = await setup();
    await c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "e0" }, "x");
    expect(await c.getEvent("e0", "state", 5)).toBe("waiting");
    const got: unknown[] = [];
    for (let i = 0; i < 5; i++) got.push(await c.getEvent("e0", "state", 0));
    expect(got).toEqual(["waiting", "waiting", "waiting", "waiting", "waiting"]);
    await c.cancelWorkflow("e0");
  });

  it("resumeWorkflow(s): the executor continues from the last completed step; with queueName it goes through that queue", async () => {
    const { duro, c, runs, ...w } = await setup();
    await cancelledInB(duro, { runs, ...w }, c, "s1");
    expect(runs).toEqual({ a: 1, b: 1, c: 0 });
    const handle = await c.resumeWorkflow<number>("s1");
    expect(await handle.getResult()).toBe(25);
    expect(runs).toEqual({ a: 1, b: 1, c: 1 });
    expect((await c.getWorkflowStatus("s1"))!).toMatchObject({ status: "SUCCESS", executorId: "worker" });

    w.hold.entered = gate();
    await cancelledInB(duro, { runs, ...w }, c, "s2");
    const [h2] = await c.resumeWorkflows(["s2"], { queueName: "jobs" });
    expect(await h2.getResult()).toBe(25);
    expect((await c.getWorkflowStatus("s2"))!.queueName).toBe("jobs");
    expect(runs).toEqual({ a: 2, b: 2, c: 2 });

    const before = await snapshot(duro);
    await expect(c.resumeWorkflow("nobody")).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(c.resumeWorkflows(["s1", "nobody"])).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await snapshot(duro)).toEqual(before);
    const done = await c.resumeWorkflow<number>("s1"); // finished: a no-op
    expect(await done.getResult()).toBe(25);
    expect(await snapshot(duro)).toEqual(before);
  });

  it("forkWorkflow: an executor runs the fork from startStep on; options are recorded", async () => {
    const { duro, c, runs } = await setup();
    expect(await (await c.enqueue<number>({ workflowName: "steps3", queueName: "jobs", workflowId: "o" }, 1)).getResult()).toBe(25);
    const fork = await c.forkWorkflow<number>("o", 3, { newWorkflowId: "o-fork" });
    expect(fork.workflowId).toBe("o-fork");
    expect(await fork.getResult()).toBe(25);
    expect(runs).toEqual({ a: 1, b: 1, c: 2 });
    expect((await c.getWorkflowStatus("o-fork"))!).toMatchObject({ forkedFrom: "o", executorId: "worker" });
    expect((await c.getWorkflowStatus("o"))!.wasForkedFrom).toBe(true);

    const queued = await c.forkWorkflow<number>("o", 2, { queueName: "jobs", timeoutSeconds: 30, appVersion: duro.appVersion });
    expect(await queued.getResult()).toBe(25);
    expect((await queued.getStatus())!).toMatchObject({ queueName: "jobs", timeoutMs: 30_000, appVersion: duro.appVersion, forkedFrom: "o" });
    expect(runs).toEqual({ a: 1, b: 2, c: 3 });

    const before = await snapshot(duro);
    await expect(c.forkWorkflow("nobody", 1)).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(c.forkWorkflow("o", 1.5)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await snapshot(duro)).toEqual(before);
  });

  it("unknown IDs are WorkflowNotFoundError; bad arguments are InvalidArgumentError", async () => {
    const { c } = await setup();
    await expect(c.retrieveWorkflow("nobody")).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(c.getResult("nobody")).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await c.listWorkflowSteps("nobody")).toEqual([]);
    await expect(c.setWorkflowDelay("nobody", { delaySeconds: 1 })).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(c.send("nobody", "m")).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(c.enqueue({ workflowName: "greet" } as never, "x")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.enqueue({ workflowName: "", queueName: "jobs" }, "x")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.listWorkflows({ limit: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.listQueuedWorkflows({ startTime: "last tuesday" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.listWorkflowSteps("nobody", { limit: -5 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await c.listWorkflows()).toEqual([]);
  });

  it("connects on first use; close() (or destroy()) releases it and is idempotent", async () => {
    const { c } = await setup();
    expect(await c.listWorkflows()).toEqual([]);
    await c.close();
    await c.destroy();
    await expect(c.listWorkflows()).rejects.toThrow("This DuroClient is closed; create a new one.");
    const unused = client(); // closing a client that never connected is fine
    await unused.destroy();
  });

  it("a script whose last act is awaiting a client's readStream and getResult stays alive until they end", async () => {
    const { duro } = await setup();
    requireBuild("this test");
    const script = `
      import { DuroClient } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)};
      const c = new DuroClient({ databaseUrl: process.argv[1] });
      const h = await c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "script" }, "script");
      const values = [];
      for await (const value of c.readStream("script", "out")) values.push(value);
      console.log(JSON.stringify({ values, result: await h.getResult() }));
      await c.close();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, t.url], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(await duro.getEvent("script", "state", 10)).toBe("waiting");
    // Nothing to await here: the script, idle in its waits, must still be there a moment later.
    await sleep(300);
    await duro.send("script", "hi", "msg");
    expect(await exited).toBe(0);
    expect(JSON.parse(out)).toEqual({ values: [1, "hi"], result: "hello script: hi" });
  });

  it("a script that enqueues with a deadline an hour away is not held open by its watch of that deadline", async () => {
    const { duro } = await setup();
    requireBuild("this test");
    // On PostgreSQL a client's pool holds the process until close(); on SQLite nothing does.
    const script = `
      import { DuroClient } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)};
      const c = new DuroClient({ databaseUrl: process.argv[1] });
      const h = await c.enqueue({ workflowName: "greet", queueName: "nobody-serves", deadlineEpochMs: Date.now() + 3_600_000 }, "x");
      console.log(JSON.stringify({ id: h.workflowId }));
      if (process.argv[1].startsWith("postgres")) await c.close();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, t.url], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const code = await Promise.race([exited, sleep(10_000).then(() => "still running")]).finally(() => child.kill("SIGKILL"));
    expect(code).toBe(0);
    expect(await statusOf(duro, JSON.parse(out).id)).toBe("ENQUEUED");
  });

  it("in a workflow, a client's calls are made as from outside it (not recorded), and another Duro instance's steps are refused", async () => {
    const duro = t.duro({ executorId: "worker" });
    const other = t.duro({ executorId: "other" });
    let foreignRuns = 0;
    const foreign = other.registerStep("foreign", async () => (foreignRuns++, "ran"));
    const c = client();
    const target = duro.registerWorkflow("target", async () => duro.recv<string>("t", 30));
    // In a step, another instance's calls run plainly, as every durable call there does.
    const status = duro.registerStep("status", async (id: string) => (await other.getWorkflowStatus(id))?.status);
    const mixed = duro.registerWorkflow("mixed", async (mode: string) => {
      if (mode === "client") return void (await c.send("target-1", "from-client", "t"));
      if (mode === "step") return status("target-1");
      try {
        return await foreign();
      } catch (error) {
        return error instanceof DuroError && !(error instanceof WorkflowCancelledError) ? (error as Error).message : `other: ${error}`;
      }
    });
    await Promise.all([duro.launch(), other.launch()]);
    await duro.startWorkflow(target.with({ workflowId: "target-1" }));
    await (await duro.startWorkflow(mixed.with({ workflowId: "m-client" }), "client")).getResult();
    expect(await duro.getResult("target-1")).toBe("from-client");
    expect((await duro.listWorkflowSteps("m-client")).map((s) => s.functionName)).toEqual([]);
    expect(await (await duro.startWorkflow(mixed.with({ workflowId: "m-other" }), "other")).getResult()).toBe(
      'Workflow "mixed" (ID m-other) runs on another Duro instance than the one this call was made on. In a workflow, call the steps and methods of the instance that registered it.',
    );
    expect(foreignRuns).toBe(0);
    expect(await (await duro.startWorkflow(mixed.with({ workflowId: "m-step" }), "step")).getResult()).toBe("SUCCESS");
  });

  it("in a workflow, a DatabaseError of a client's call is the workflow's to catch: it does not interrupt the run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "duro-client-"));
    const file = join(dir, "other.sqlite");
    const elsewhere = new DuroClient({ databaseUrl: `sqlite:${file}`, logger: quietLogger });
    clients.push(elsewhere);
    await elsewhere.listWorkflows({}); // creates its tables
    const duro = t.duro({ executorId: "worker" });
    const wf = duro.registerWorkflow("sends", async () => {
      try {
        await elsewhere.send("nobody", "m");
        return "sent";
      } catch (error) {
        return `caught ${(error as Error).name}`;
      }
    });
    await duro.launch();
    const lock = new Database(file);
    lock.exec("BEGIN EXCLUSIVE"); // the other database is locked for longer than the client waits
    const waited = busy.timeoutMs;
    busy.timeoutMs = 200;
    try {
      expect(await (await duro.startWorkflow(wf.with({ workflowId: "sends-1" }))).getResult()).toBe("caught DatabaseError");
    } finally {
      busy.timeoutMs = waited;
      lock.exec("ROLLBACK");
      lock.close();
      await elsewhere.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("retrieveWorkflow with existingWorkflow: false hands out a workflow not created yet; its getResult waits for it", async () => {
    const { c } = await setup();
    const early = await c.retrieveWorkflow<string>("later-greet", { existingWorkflow: false });
    const result = early.getResult();
    await c.enqueue({ workflowName: "greet", queueName: "jobs", workflowId: "later-greet" }, "bo");
    await c.send("later-greet", "hi", "msg");
    expect(await result).toBe("hello bo: hi");
  });
});
