/**
 * resumeWorkflow(s)(id, { queueName? }): from CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED and
 * ENQUEUED/DELAYED (bypassing the queue), from the last completed step; with a queue it is
 * enqueued there instead; finished workflows are left alone; unknown IDs change nothing.
 */
import { describe, expect, it } from "vitest";
import {
  AwaitedWorkflowCancelledError, InvalidArgumentError, MaxRecoveryAttemptsExceededError, WorkflowNotFoundError, WorkflowQueue, type Duro,
} from "../../src/index.js";
import { backends, crash, gate, rawQuery, statusOf, useClients, useDuro, waitFor, waitForStatus, within } from "../helpers.js";
import { blockedQueue, snapshot } from "./support.js";

/**
 * "first" → "second" → "third"; "second" blocks until `release` opens (only while `block` is
 * set), so a test can cancel the workflow while it sits in "second". Counts each step's runs.
 */
function threeSteps(duro: Duro, options: { block?: boolean } = {}) {
  const runs = { first: 0, second: 0, third: 0 };
  const entered = gate();
  const release = gate();
  const exited = gate();
  let block = options.block ?? true;
  const first = duro.registerStep("first", async (x: number) => (runs.first++, x + 1));
  const second = duro.registerStep("second", async (x: number) => {
    runs.second++;
    entered.open();
    if (block) await release.promise;
    return x * 10;
  });
  const third = duro.registerStep("third", async (x: number) => (runs.third++, x + 5));
  const wf = duro.registerWorkflow("threeSteps", async (x: number) => {
    try {
      return await third(await second(await first(x)));
    } finally {
      exited.open();
    }
  });
  return {
    wf, runs, entered, exited,
    release() {
      block = false;
      release.open();
    },
  };
}

/** Starts W (input 1), cancels it inside "second", lets the stopped body unwind ("second" finished: its outcome is kept). */
async function cancelledInSecond(duro: Duro, s: ReturnType<typeof threeSteps>, id = "W") {
  const handle = await duro.startWorkflow(s.wf.with({ workflowId: id }), 1);
  await s.entered.promise;
  await duro.cancelWorkflow(id);
  s.release();
  await s.exited.promise;
  expect(await statusOf(duro, id)).toBe("CANCELLED");
  expect((await duro.listWorkflowSteps(id)).map((st) => st.functionName)).toEqual(["first", "second"]);
  return handle;
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const newClient = useClients();

  /** A launched Duro (after `declare`, for its queues) running threeSteps as `id` (input 1), held inside "second". */
  async function heldInSecond(id: string, declare: (duro: Duro) => void = () => {}) {
    const duro = t.duro();
    const s = threeSteps(duro);
    declare(duro);
    await duro.launch();
    const handle = await duro.startWorkflow(s.wf.with({ workflowId: id }), 1);
    await s.entered.promise;
    return { duro, s, handle };
  }

  it("a CANCELLED workflow resumes from its last completed step: completed steps do not run again", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    await duro.launch();
    const original = await cancelledInSecond(duro, s);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 0 });

    const resumed = await duro.resumeWorkflow<number>("W");
    expect(resumed.workflowId).toBe("W");
    expect(await resumed.getResult()).toBe(25); // ((1 + 1) * 10) + 5
    expect(await original.getResult()).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
    const status = (await duro.getWorkflowStatus("W"))!;
    expect(status).toMatchObject({ status: "SUCCESS", output: 25, queueName: null });
    expect((await duro.listWorkflowSteps("W")).map((st) => [st.functionName, st.output])).toEqual([["first", 2], ["second", 20], ["third", 25]]);
  });

  it("a MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow resumes from its last completed step", async () => {
    const a = t.duro({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: 0 });
    const first = threeSteps(a);
    await a.launch();
    await a.startWorkflow(first.wf.with({ workflowId: "M" }), 1);
    await first.entered.promise;
    await a.shutdown(); // a crash in "second": the row stays PENDING

    const b = t.duro({ executorId: "e1", appVersion: "v1", maxRecoveryAttempts: 0 });
    const second = threeSteps(b, { block: false });
    await b.launch(); // recovery would be attempt 2, over the limit of 0 recoveries
    expect(await statusOf(b, "M")).toBe("MAX_RECOVERY_ATTEMPTS_EXCEEDED");
    await expect(b.getResult("M")).rejects.toBeInstanceOf(MaxRecoveryAttemptsExceededError);
    expect(second.runs).toEqual({ first: 0, second: 0, third: 0 });

    const handle = await b.resumeWorkflow<number>("M");
    expect(await handle.getResult()).toBe(25);
    expect(second.runs).toEqual({ first: 0, second: 1, third: 1 }); // "first" came from the record
    expect((await b.getWorkflowStatus("M"))!).toMatchObject({ status: "SUCCESS", executorId: "e1" });
  });

  it("an ENQUEUED workflow resumed without a queue runs here at once, bypassing its queue's limit", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "one");
    let ran = 0;
    const wf = duro.registerWorkflow("queued", async (x: number) => (ran++, x * 2));
    await duro.launch();
    await q.block();
    const handle = await duro.startWorkflow(wf.with({ queueName: "one", workflowId: "E" }), 21);
    expect(await statusOf(duro, "E")).toBe("ENQUEUED");

    await duro.resumeWorkflow("E");
    expect(await handle.getResult()).toBe(42);
    expect(ran).toBe(1);
    expect(await statusOf(duro, "one-blocker")).toBe("PENDING"); // the queue's only slot is still taken
    expect((await duro.listQueuedWorkflows({ queueName: "one" })).map((s) => s.workflowId)).toEqual(["one-blocker"]);
    await q.release();
    expect(ran).toBe(1);
  });

  it("a DELAYED workflow resumed without a queue runs now", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "later");
    const wf = duro.registerWorkflow("delayed", async () => "now");
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ queueName: "later", delaySeconds: 3600 }));
    expect(await statusOf(duro, handle.workflowId)).toBe("DELAYED");
    await duro.resumeWorkflow(handle.workflowId);
    expect(await handle.getResult()).toBe("now");
  });

  it("with queueName the workflow is enqueued on that queue and runs when the queue dequeues it", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    const q = blockedQueue(duro, "slow");
    await duro.launch();
    await cancelledInSecond(duro, s);
    await q.block();

    await duro.resumeWorkflow("W", { queueName: "slow" });
    const status = (await duro.getWorkflowStatus("W"))!;
    expect(status).toMatchObject({ status: "ENQUEUED", queueName: "slow", recoveryAttempts: 0 });
    expect((await duro.listQueuedWorkflows({ queueName: "slow" })).map((w) => w.workflowId).sort()).toEqual(["W", "slow-blocker"]);
    expect(s.runs.second).toBe(1); // still waiting behind the blocker

    await q.release();
    expect(await duro.getResult("W")).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("resumed onto a queue while the cancelled run's step still runs: the queue runs it once that run ends", async () => {
    const { duro, s, handle } = await heldInSecond("R", (d) => new WorkflowQueue(d, "soon", { workerConcurrency: 2 }));
    await duro.cancelWorkflow("R");
    await duro.resumeWorkflow("R", { queueName: "soon" }); // claimed at once, while "second" still runs
    await waitFor(async () => (await statusOf(duro, "R")) === "PENDING", 5000, "the queue to claim R");
    s.release();
    expect(await within(10_000, handle.getResult(), "R's result")).toBe(25);
    expect((await duro.listWorkflowSteps("R")).map((st) => [st.functionName, st.output])).toEqual([["first", 2], ["second", 20], ["third", 25]]);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 }); // the new run began after "second" was recorded
  });

  it("resumed onto its full queue while the cancelled run's step still runs: the step's outcome is kept, and not run again", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    new WorkflowQueue(duro, "one", { workerConcurrency: 1 });
    await duro.launch();
    const handle = await duro.startWorkflow(s.wf.with({ workflowId: "F", queueName: "one" }), 1);
    await s.entered.promise;
    await duro.cancelWorkflow("F");
    await duro.resumeWorkflow("F", { queueName: "one" }); // the cancelled run still holds the only slot
    expect(await statusOf(duro, "F")).toBe("ENQUEUED");
    s.release(); // "second" ends while F is ENQUEUED
    expect(await within(10_000, handle.getResult(), "F's result")).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("a running workflow its own executor resumes onto a full queue stops at its next step and goes on from the queue", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    const q = blockedQueue(duro, "full");
    await duro.launch();
    await q.block();
    const handle = await duro.startWorkflow(s.wf.with({ workflowId: "M" }), 1);
    await s.entered.promise;
    await duro.resumeWorkflow("M", { queueName: "full" }); // not cancelled: moved
    expect(await statusOf(duro, "M")).toBe("ENQUEUED");
    s.release();
    await s.exited.promise; // the old run stopped after "second", which is kept
    expect(s.runs).toEqual({ first: 1, second: 1, third: 0 });
    expect(await statusOf(duro, "M")).toBe("ENQUEUED");
    await q.release();
    expect(await within(10_000, handle.getResult(), "M's result")).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("a run stopped after its workflow was resumed here again hands over to a new run when it ends", async () => {
    const { duro, s, handle } = await heldInSecond("H");
    // A cancel from elsewhere, then a resume here before this executor heard of the cancel: the
    // resume finds the run going and leaves it; then the cancel's notice stops it.
    // (Should the notice come first after all, the resume waits for the stopped run's step: so
    // the step is released before the resume is awaited.)
    await newClient(t.url).cancelWorkflow("H");
    const resumed = duro.resumeWorkflow("H");
    await waitFor(async () => (await statusOf(duro, "H")) === "PENDING", 5000, "the resume to land");
    duro.engine.stopRun("H", "cancelled");
    s.release();
    await resumed;
    expect(await within(10_000, handle.getResult(), "H's result")).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("cancel, resume, cancel and resume again around a child's start: parent and child both finish", async () => {
    const duro = t.duro();
    const client = newClient(t.url);
    let stepEnded = () => {};
    const step = duro.registerStep("pause", async (ms: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (ms === 100) stepEnded();
      return ms;
    });
    const child = duro.registerWorkflow("child", async () => (await duro.sleep(0.05), await step(20)));
    const parent = duro.registerWorkflow("parent", async () => {
      const a = await step(100);
      const c = await (await duro.startWorkflow(child)).getResult();
      return [a, c];
    });
    await duro.launch();
    for (const gap of [0, 0, 1, 1, 2, 2, 3, 5]) {
      const id = `p-${gap}-${Math.random().toString(36).slice(2, 6)}`;
      const ended = new Promise<void>((resolve) => (stepEnded = resolve));
      await duro.startWorkflow(parent.with({ workflowId: id }));
      await new Promise((resolve) => setTimeout(resolve, 30));
      await client.cancelWorkflow(id); // mid-step
      const resumed = duro.resumeWorkflow(id); // starts the new run once the step has ended
      await ended;
      await new Promise((resolve) => setTimeout(resolve, gap));
      await client.cancelWorkflow(id); // around the new run's start of the child
      await resumed;
      await duro.resumeWorkflow(id);
      expect(await within(10_000, duro.getResult(id), `${id}'s result`)).toEqual([100, 20]);
    }
  });

  it("resumed by a DuroClient while the cancelled run's step still runs: it runs again once that run ends", async () => {
    const { duro, s, handle } = await heldInSecond("C");
    const client = newClient(t.url);
    await client.cancelWorkflow("C");
    await waitFor(() => Boolean(duro.engine.running.get("C")?.stopped), 5000, "the run to hear of its cancel");
    await client.resumeWorkflow("C"); // through the internal queue, claimed by the executor at once
    await waitFor(async () => (await statusOf(duro, "C")) === "PENDING", 5000, "the executor to claim C");
    s.release();
    expect(await within(10_000, handle.getResult(), "C's result")).toBe(25);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("a workflow of another app version, resumed without a queue, is left to an executor of its version", async () => {
    const v2 = t.duro({ appVersion: "v2", executorId: "e2" });
    const s2 = threeSteps(v2);
    await v2.launch();
    await cancelledInSecond(v2, s2, "V");
    const v1 = t.duro({ appVersion: "v1", executorId: "e1" });
    const s1 = threeSteps(v1, { block: false });
    await v1.launch();
    const handle = await v1.resumeWorkflow<number>("V"); // v1's code must not replay v2's record
    expect(await handle.getResult()).toBe(25); // v2 took it from the internal queue
    expect((await v1.getWorkflowStatus("V"))!).toMatchObject({ status: "SUCCESS", appVersion: "v2", executorId: "e2" });
    expect(s1.runs).toEqual({ first: 0, second: 0, third: 0 });
    expect(s2.runs).toEqual({ first: 1, second: 1, third: 1 });
  });

  it("a client's enqueue (no app version yet) resumed here takes this executor's version, so a restart recovers it", async () => {
    const a = t.duro({ executorId: "e1", appVersion: "v1" });
    const s = threeSteps(a);
    await a.launch();
    await newClient(t.url).enqueue({ workflowName: "threeSteps", queueName: "nobody-serves-this", workflowId: "N" }, 1);
    expect((await a.getWorkflowStatus("N"))!).toMatchObject({ status: "ENQUEUED", appVersion: null });
    await a.resumeWorkflow("N");
    await s.entered.promise;
    expect((await a.getWorkflowStatus("N"))!).toMatchObject({ status: "PENDING", appVersion: "v1", executorId: "e1" });
    await crash(a); // inside "second"

    const b = t.duro({ executorId: "e1", appVersion: "v1" });
    threeSteps(b, { block: false });
    await b.launch();
    expect(await within(10_000, b.getResult("N"), "N's result")).toBe(25);
  });

  it("a PENDING workflow of no app version (as older releases left resumed client enqueues) is recovered", async () => {
    const a = t.duro({ executorId: "e1", appVersion: "v1" });
    const s = threeSteps(a);
    await a.launch();
    await a.startWorkflow(s.wf.with({ workflowId: "L" }), 1);
    await s.entered.promise;
    await crash(a);
    await rawQuery(t.url, "UPDATE workflow_status SET app_version = NULL WHERE workflow_id = 'L'");

    const b = t.duro({ executorId: "e1", appVersion: "v1" });
    threeSteps(b, { block: false });
    await b.launch();
    expect(await within(10_000, b.getResult("L"), "L's result")).toBe(25);
  });

  it("resumed onto a partitioned queue, a workflow keeps its partition key", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "parts", { partitionQueue: true, workerConcurrency: 1 });
    const hold = gate();
    const wf = duro.registerWorkflow("held", async () => {
      await duro.runStep(() => hold.promise, { name: "hold" });
      return "done";
    });
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: "P", queueName: "parts", partitionKey: "k" }));
    await duro.cancelWorkflow("P");
    hold.open();
    await duro.resumeWorkflow("P", { queueName: "parts" });
    expect(await handle.getResult()).toBe("done");
    expect((await duro.getWorkflowStatus("P"))!).toMatchObject({ status: "SUCCESS", queueName: "parts", partitionKey: "k" });
  });

  it("a workflow resumed out of its queue onto another executor frees its slot for the queue's executors at once", async () => {
    const held = gate();
    const make = (executorId: string, serves: boolean) => {
      const duro = t.duro({ executorId, appVersion: "v1", safetyPollSeconds: 60 });
      const hold = duro.registerStep("hold", async (id: string) => (id === "first" ? await held.promise : undefined, id));
      const job = duro.registerWorkflow("job", async (id: string) => hold(id));
      if (serves) new WorkflowQueue(duro, "qp", { concurrency: 1, pollingIntervalSeconds: 30 });
      return { duro, job };
    };
    const x = make("x", true);
    const z = make("z", false); // serves no queue: it learns of nothing to claim
    await x.duro.launch();
    await z.duro.launch();
    const first = await x.duro.startWorkflow(x.job.with({ queueName: "qp", workflowId: "first" }), "first");
    await waitForStatus(x.duro, "first", "PENDING");
    const second = await x.duro.startWorkflow(x.job.with({ queueName: "qp", workflowId: "second" }), "second");
    expect(await statusOf(x.duro, "second")).toBe("ENQUEUED"); // the queue's one slot is taken
    const resumedAt = performance.now();
    await z.duro.resumeWorkflow("first"); // runs on z now, out of its queue
    expect(await within(10_000, second.getResult(), "the freed slot taken")).toBe("second");
    expect(performance.now() - resumedAt).toBeLessThan(5_000); // not at the queue's 30 s poll
    held.open();
    expect(await first.getResult()).toBe("first");
  });

  it("a row read while another run here began and finished (a resume racing a stopped run's hand-over) runs nothing again", async () => {
    const duro = t.duro();
    let bodies = 0;
    const step = duro.registerStep("step", async () => ++bodies);
    const once = duro.registerWorkflow("once", async () => step());
    await duro.launch();
    expect(await once.with({ workflowId: "done" })()).toBe(1);
    // The hand-over's read was sent while the workflow still ran, and answers after it finished here.
    const store = duro.engine.store;
    const load = store.loadWorkflows.bind(store);
    store.loadWorkflows = async (ids) =>
      (await load(ids)).map((loaded) => ({ workflow: { ...loaded.workflow, status: "PENDING", output: null, completedAt: null }, operations: [] }));
    await duro.engine.recovery.resumeHere("done");
    await waitFor(() => !duro.engine.running.has("done"), 5_000, "any run to end");
    expect(bodies).toBe(1);
    store.loadWorkflows = load;
  });

  it("resumeWorkflows resumes several at once", async () => {
    const duro = t.duro();
    let runs = 0;
    const waits = duro.registerWorkflow("waits", async (n: number) => {
      runs++;
      const got = await duro.recv<string>("go", 60);
      return `${n}:${got}`;
    });
    await duro.launch();
    for (const id of ["a", "b", "c"]) await duro.startWorkflow(waits.with({ workflowId: id }), id.charCodeAt(0));
    await waitFor(async () => (await duro.listWorkflowSteps("c")).length > 0);
    await duro.cancelWorkflows(["a", "b", "c"]);
    const handles = await duro.resumeWorkflows(["a", "b"]);
    expect(handles.map((h) => h.workflowId)).toEqual(["a", "b"]);
    await waitFor(async () => (await duro.listWorkflows({ status: "PENDING" })).length === 2);
    await duro.send("a", "x", "go");
    await duro.send("b", "y", "go");
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["97:x", "98:y"]);
    expect(await statusOf(duro, "c")).toBe("CANCELLED");
    await expect(duro.getResult("c")).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(runs).toBe(5);
  });

  it("a check for cancellations that read the row before a resume does not stop the resumed run", async () => {
    const duro = t.duro();
    let runs = 0;
    const waits = duro.registerWorkflow("waits", async () => (runs++, duro.recv<string>("go", 60)));
    await duro.launch();
    const engine = duro.engine;
    await duro.startWorkflow(waits.with({ workflowId: "a" }));
    await waitFor(async () => (await duro.listWorkflowSteps("a")).length > 0);
    await duro.cancelWorkflow("a");
    await waitFor(() => !engine.running.has("a"));
    // The periodic check reads "a" as CANCELLED; its answer arrives after the resume started a new run.
    const store = engine.store;
    const listWorkflows = store.listWorkflows.bind(store);
    const read = gate();
    const answered = gate();
    store.listWorkflows = async (query) => {
      const rows = await listWorkflows(query);
      if (query.workflowIds?.includes("a")) {
        read.open();
        await answered.promise;
      }
      return rows;
    };
    const check = engine.stopSuperseded(["a"]);
    await read.promise;
    const handle = await duro.resumeWorkflow<string>("a");
    await waitFor(() => runs === 2);
    answered.open();
    await check;
    await duro.send("a", "x", "go");
    expect(await handle.getResult()).toBe("x");
    expect(runs).toBe(2);
  });

  it("resuming a SUCCESS or ERROR workflow changes nothing and runs nothing", async () => {
    const duro = t.duro();
    let runs = 0;
    const ok = duro.registerWorkflow("ok", async () => (runs++, "fine"));
    const bad = duro.registerWorkflow("bad", async () => {
      runs++;
      throw new RangeError("broken");
    });
    await duro.launch();
    await duro.startWorkflow(ok.with({ workflowId: "ok1" })).then((h) => h.getResult());
    await duro.startWorkflow(bad.with({ workflowId: "bad1" })).then((h) => h.getResult().catch(() => undefined));
    const before = await snapshot(duro);

    const handle = await duro.resumeWorkflow<string>("ok1");
    expect(await handle.getResult()).toBe("fine");
    const [h2] = await duro.resumeWorkflows(["bad1", "ok1"]);
    await expect(h2.getResult()).rejects.toThrow(RangeError);
    await duro.resumeWorkflow("bad1", { queueName: "_duro_internal" }).catch(() => undefined);
    expect(await snapshot(duro)).toEqual(before);
    expect(runs).toBe(2);
  });

  it("an unknown ID is WorkflowNotFoundError, and a list with one unknown ID resumes none of them", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    await duro.launch();
    await cancelledInSecond(duro, s);
    const before = await snapshot(duro);

    await expect(duro.resumeWorkflow("nobody")).rejects.toBeInstanceOf(WorkflowNotFoundError);
    const error = await duro.resumeWorkflows(["W", "nobody"]).catch((e) => e);
    expect(error).toBeInstanceOf(WorkflowNotFoundError);
    expect(error.workflowId).toBe("nobody");
    await expect(duro.resumeWorkflows(["nobody", "W"], { queueName: "_duro_internal" })).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await snapshot(duro)).toEqual(before);
    expect(s.runs).toEqual({ first: 1, second: 1, third: 0 });
    expect(await duro.getWorkflowStatus("nobody")).toBeNull();
  });

  it("resuming onto a queue this instance does not know is refused and changes nothing", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    await duro.launch();
    await cancelledInSecond(duro, s);
    const before = await snapshot(duro);
    await expect(duro.resumeWorkflow("W", { queueName: "no-such-queue" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(duro.resumeWorkflows(["W"], { queueName: "" })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await snapshot(duro)).toEqual(before);
  });

  it("a resumed workflow started by a timeout gets a fresh deadline and can finish", async () => {
    const duro = t.duro();
    const s = threeSteps(duro);
    await duro.launch();
    await duro.startWorkflow(s.wf.with({ workflowId: "T", timeoutSeconds: 0.5 }), 1);
    await s.entered.promise;
    await waitForStatus(duro, "T", "CANCELLED", 5000);
    s.release();
    await s.exited.promise;
    const before = Date.now();
    const handle = await duro.resumeWorkflow<number>("T");
    expect(await handle.getResult()).toBe(25);
    const status = (await duro.getWorkflowStatus("T"))!;
    expect(status.timeoutMs).toBe(500);
    expect(status.deadlineEpochMs).toBeGreaterThanOrEqual(before + 500);
  });
});
