/**
 * forkWorkflow(id, startStep, { newWorkflowId, appVersion, queueName, timeoutSeconds }): a new
 * workflow that reuses the recorded outputs, events and stream values of the operations before
 * `startStep` and runs the rest; forkedFrom / wasForkedFrom; bad arguments change nothing.
 */
import { describe, expect, it } from "vitest";
import {
  AwaitedWorkflowCancelledError, InvalidArgumentError, WorkflowConflictError, WorkflowNotFoundError, WorkflowQueue, type Duro,
} from "../../src/index.js";
import { backends, gate, statusOf, useDuro } from "../helpers.js";
import { blockedQueue, snapshot } from "./support.js";

/**
 * Seven operations:
 *   1 setEvent("first", "one")   2 writeStream("log", "a")   3 step "alpha"
 *   4 setEvent("stage", v)       5 writeStream("log", v)     6 step "beta"    7 closeStream("log")
 * where v names the current `version`, so a re-run operation is told apart from a copied one.
 */
function pipeline(duro: Duro) {
  const state = { version: 1, alpha: 0, beta: 0, betaGate: null as Promise<void> | null };
  const alpha = duro.registerStep("alpha", async (x: number) => (state.alpha++, x + 1));
  const beta = duro.registerStep("beta", async (a: number) => {
    state.beta++;
    if (state.betaGate) await state.betaGate;
    return { a, doubled: a * 2, version: state.version };
  });
  const wf = duro.registerWorkflow("pipeline", async (x: number) => {
    await duro.setEvent("first", "one");
    await duro.writeStream("log", "a");
    const a = await alpha(x);
    await duro.setEvent("stage", `two-v${state.version}`);
    await duro.writeStream("log", `b-v${state.version}`);
    const b = await beta(a);
    await duro.closeStream("log");
    return b;
  });
  return { wf, state };
}

async function readAll(duro: Duro, id: string, key: string): Promise<unknown[]> {
  const values: unknown[] = [];
  for await (const v of duro.readStream(id, key, { timeoutSeconds: 10 })) values.push(v);
  return values;
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  async function original() {
    const duro = t.duro({ appVersion: "v1" });
    const p = pipeline(duro);
    await duro.launch();
    await duro.startWorkflow(p.wf.with({ workflowId: "O" }), 10).then((h) => h.getResult());
    expect(p.state).toMatchObject({ alpha: 1, beta: 1 });
    p.state.version = 2;
    return { duro, ...p };
  }

  it("reuses the outputs, events and stream values of the steps before startStep and re-runs the rest", async () => {
    const { duro, state } = await original();
    const fork = await duro.forkWorkflow("O", 4, { newWorkflowId: "F" });
    expect(fork.workflowId).toBe("F");
    expect(await fork.getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    expect(state).toMatchObject({ alpha: 1, beta: 2 }); // alpha (operation 3) was not run again

    const steps = await duro.listWorkflowSteps("F");
    expect(steps.map((s) => [s.functionId, s.functionName])).toEqual([
      [1, "duro.setEvent"], [2, "duro.writeStream"], [3, "alpha"], [4, "duro.setEvent"], [5, "duro.writeStream"], [6, "beta"], [7, "duro.closeStream"],
    ]);
    expect(steps[2].output).toBe(11);
    const originalSteps = await duro.listWorkflowSteps("O");
    expect(steps[2]).toEqual(originalSteps[2]); // the copied record, times included

    // Event 1 and stream value "a" exist on the fork only because they were copied: a replayed
    // setEvent/writeStream writes nothing.
    expect(await duro.getAllEvents("F")).toEqual({ first: "one", stage: "two-v2" });
    expect(await readAll(duro, "F", "log")).toEqual(["a", "b-v2"]);
    // The original keeps its own.
    expect(await duro.getAllEvents("O")).toEqual({ first: "one", stage: "two-v1" });
    expect(await readAll(duro, "O", "log")).toEqual(["a", "b-v1"]);
  });

  it("a getEvent waiting on the fork's ID, here or in another process, returns the copied event as the fork is made", async () => {
    const { duro } = await original();
    const other = t.duro({ appVersion: "v1", safetyPollSeconds: 60 }); // another connection, as another process's
    await other.launch();
    const here = duro.getEvent<string>("F2", "first", 10);
    const there = other.getEvent<string>("F2", "first", 10);
    await new Promise((resolve) => setTimeout(resolve, 100)); // both are waiting
    const forkedAt = performance.now();
    await duro.forkWorkflow("O", 2, { newWorkflowId: "F2", appVersion: "nobody" }); // copies event "first"; never runs
    expect(await Promise.all([here, there])).toEqual(["one", "one"]);
    expect(performance.now() - forkedAt).toBeLessThan(2_000); // not left to a poll or the timeout
  });

  it("records forkedFrom on the fork and wasForkedFrom on the original", async () => {
    const { duro } = await original();
    await duro.forkWorkflow("O", 6, { newWorkflowId: "F1" }).then((h) => h.getResult());
    await duro.forkWorkflow("F1", 6, { newWorkflowId: "F2" }).then((h) => h.getResult());
    const [o, f1, f2] = await duro.listWorkflows({ workflowIds: ["O", "F1", "F2"] });
    expect(o).toMatchObject({ forkedFrom: null, wasForkedFrom: true, status: "SUCCESS" });
    expect(f1).toMatchObject({ forkedFrom: "O", wasForkedFrom: true, status: "SUCCESS", workflowName: "pipeline", input: [10] });
    expect(f2).toMatchObject({ forkedFrom: "F1", wasForkedFrom: false, status: "SUCCESS" });
    expect(o.output).toEqual({ a: 11, doubled: 22, version: 1 });
    expect(f1.output).toEqual({ a: 11, doubled: 22, version: 2 });
    expect((await duro.listWorkflows({ forkedFrom: "O" })).map((s) => s.workflowId)).toEqual(["F1"]);
    expect((await duro.listWorkflows({ forkedFrom: ["O", "F1"] })).map((s) => s.workflowId)).toEqual(["F1", "F2"]);
    expect((await duro.listWorkflows({ wasForkedFrom: true })).map((s) => s.workflowId)).toEqual(["O", "F1"]);
  });

  it("startStep 1 re-runs everything; one past the last recorded operation re-runs nothing", async () => {
    const { duro, state } = await original();
    const all = await duro.forkWorkflow("O", 1);
    expect(all.workflowId).not.toBe("O");
    expect(await all.getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    expect(state).toMatchObject({ alpha: 2, beta: 2 });
    expect(await duro.getAllEvents(all.workflowId)).toEqual({ first: "one", stage: "two-v2" });

    state.version = 3;
    const none = await duro.forkWorkflow("O", 8, { newWorkflowId: "none" });
    expect(await none.getResult()).toEqual({ a: 11, doubled: 22, version: 1 }); // every step from the record
    expect(state).toMatchObject({ alpha: 2, beta: 2 });
    expect(await duro.getAllEvents("none")).toEqual({ first: "one", stage: "two-v1" });
    expect(await readAll(duro, "none", "log")).toEqual(["a", "b-v1"]);
  });

  it("children started before startStep are not started again; from before their start they are", async () => {
    const duro = t.duro();
    let childRuns = 0;
    const child = duro.registerWorkflow("child", async (n: number) => (childRuns++, n * 3));
    const after = duro.registerStep("after", async (x: number) => x + 1);
    const parent = duro.registerWorkflow("parent", async () => after(await child(5)));
    await duro.launch();
    expect(await duro.startWorkflow(parent.with({ workflowId: "P" })).then((h) => h.getResult())).toBe(16);
    expect(childRuns).toBe(1);
    // Operations: 1 start child P-1, 2 its getResult, 3 "after".
    expect(await duro.forkWorkflow("P", 3, { newWorkflowId: "P-fork" }).then((h) => h.getResult())).toBe(16);
    expect(childRuns).toBe(1);
    expect((await duro.listWorkflowSteps("P-fork"))[0]).toMatchObject({ functionName: "child", childWorkflowId: "P-1" });
    expect(await duro.listWorkflows({ parentWorkflowId: "P-fork" })).toEqual([]);

    expect(await duro.forkWorkflow("P", 1, { newWorkflowId: "P-again" }).then((h) => h.getResult())).toBe(16);
    expect(childRuns).toBe(2);
    expect((await duro.listWorkflows({ parentWorkflowId: "P-again" })).map((s) => s.workflowId)).toEqual(["P-again-1"]);
  });

  it("a fork of a failed workflow can take a different path", async () => {
    const duro = t.duro();
    let broken = true;
    const load = duro.registerStep("load", async () => ({ rows: 3 }));
    const save = duro.registerStep("save", async (rows: number) => {
      if (broken) throw new Error("disk full");
      return `saved ${rows}`;
    });
    const wf = duro.registerWorkflow("etl", async () => save((await load()).rows));
    await duro.launch();
    await expect(duro.startWorkflow(wf.with({ workflowId: "E" })).then((h) => h.getResult())).rejects.toThrow("disk full");
    broken = false;
    const fork = await duro.forkWorkflow("E", 2);
    expect(await fork.getResult()).toBe("saved 3");
    expect(await statusOf(duro, "E")).toBe("ERROR");
  });

  it("with queueName the fork is enqueued there and runs when dequeued", async () => {
    const { duro, state } = await original();
    const q = blockedQueue(duro, "forks");
    await q.block();
    const fork = await duro.forkWorkflow("O", 6, { newWorkflowId: "QF", queueName: "forks" });
    expect((await fork.getStatus())!).toMatchObject({ status: "ENQUEUED", queueName: "forks", forkedFrom: "O" });
    expect((await duro.listQueuedWorkflows({ queueName: "forks" })).map((s) => s.workflowId)).toEqual(["forks-blocker", "QF"]);
    expect(state.beta).toBe(1);
    await q.release();
    expect(await fork.getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    expect(state).toMatchObject({ alpha: 1, beta: 2 });
  });

  it("appVersion is recorded on the fork, and only an executor of that version dequeues it", async () => {
    const { duro, state } = await original();
    new WorkflowQueue(duro, "vq", { pollingIntervalSeconds: 0.1 });
    const fork = await duro.forkWorkflow("O", 6, { newWorkflowId: "VF", appVersion: "v2", queueName: "vq" });
    expect((await fork.getStatus())!).toMatchObject({ appVersion: "v2", status: "ENQUEUED" });
    // Without a queue too: not run here at once, but queued for an executor of its version.
    const unqueued = await duro.forkWorkflow("O", 6, { newWorkflowId: "VF2", appVersion: "v2" });
    expect((await unqueued.getStatus())!).toMatchObject({ appVersion: "v2", status: "ENQUEUED" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await statusOf(duro, "VF")).toBe("ENQUEUED"); // this executor runs v1
    expect(await statusOf(duro, "VF2")).toBe("ENQUEUED");
    expect(state.beta).toBe(1);

    const v2 = t.duro({ appVersion: "v2", executorId: "v2-executor" });
    const p2 = pipeline(v2);
    p2.state.version = 22;
    new WorkflowQueue(v2, "vq", { pollingIntervalSeconds: 0.1 });
    await v2.launch();
    expect(await v2.getResult("VF")).toEqual({ a: 11, doubled: 22, version: 22 });
    expect((await v2.getWorkflowStatus("VF"))!).toMatchObject({ executorId: "v2-executor", appVersion: "v2" });
    expect(await v2.getResult("VF2")).toEqual({ a: 11, doubled: 22, version: 22 });
    expect((await v2.getWorkflowStatus("VF2"))!).toMatchObject({ executorId: "v2-executor", appVersion: "v2" });
    expect(p2.state).toMatchObject({ alpha: 0, beta: 2 });
    expect(state.beta).toBe(1);
  });

  it("a fork onto a partitioned queue takes partitionKey; partitionKey without a queue is refused", async () => {
    const { duro, state } = await original();
    new WorkflowQueue(duro, "parts", { partitionQueue: true, workerConcurrency: 1 });
    await expect(duro.forkWorkflow("O", 6, { newWorkflowId: "PF0", partitionKey: "k" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(duro.forkWorkflow("O", 6, { newWorkflowId: "PF0", queueName: "parts" })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await duro.getWorkflowStatus("PF0")).toBeNull();
    const fork = await duro.forkWorkflow("O", 6, { newWorkflowId: "PF", queueName: "parts", partitionKey: "k" });
    expect(await fork.getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    expect((await fork.getStatus())!).toMatchObject({ queueName: "parts", partitionKey: "k", forkedFrom: "O" });
    expect(state).toMatchObject({ alpha: 1, beta: 2 });
  });

  it("timeoutSeconds bounds the fork: it is CANCELLED when the time is up", async () => {
    const { duro, state } = await original();
    const hold = gate();
    state.betaGate = hold.promise;
    const before = Date.now();
    const fork = await duro.forkWorkflow("O", 6, { newWorkflowId: "TF", timeoutSeconds: 0.4 });
    const status = (await fork.getStatus())!;
    expect(status.timeoutMs).toBe(400);
    expect(status.deadlineEpochMs).toBeGreaterThanOrEqual(before + 400);
    expect(status.deadlineEpochMs).toBeLessThan(Date.now() + 400 + 1);
    await expect(fork.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(Date.now() - before).toBeLessThan(3000);
    expect(await statusOf(duro, "TF")).toBe("CANCELLED");
    hold.open();
    expect(await statusOf(duro, "O")).toBe("SUCCESS"); // the original is untouched
  });

  it("a queued fork's timeout starts when it is dequeued", async () => {
    const { duro } = await original();
    const q = blockedQueue(duro, "tq");
    await q.block();
    const fork = await duro.forkWorkflow("O", 6, { newWorkflowId: "QT", queueName: "tq", timeoutSeconds: 0.3 });
    expect((await fork.getStatus())!).toMatchObject({ timeoutMs: 300, deadlineEpochMs: null, status: "ENQUEUED" });
    await new Promise((resolve) => setTimeout(resolve, 600)); // longer than the timeout, but still queued
    const dequeuedAfter = Date.now();
    await q.release();
    expect(await fork.getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    const status = (await fork.getStatus())!;
    expect(status.deadlineEpochMs).toBeGreaterThanOrEqual(dequeuedAfter + 300);
  });

  it("startStep zero or negative runs everything again; beyond the record it reuses every output; workflowId names the fork too", async () => {
    const { duro, state } = await original();
    for (const [startStep, id] of [[0, "zero"], [-1, "negative"]] as const) {
      expect(await (await duro.forkWorkflow("O", startStep, { newWorkflowId: id })).getResult()).toEqual({ a: 11, doubled: 22, version: 2 });
    }
    expect(state).toMatchObject({ alpha: 3, beta: 3 });
    for (const [startStep, id] of [[9, "nine"], [2 ** 40, "huge"]] as const) {
      expect(await (await duro.forkWorkflow("O", startStep, { workflowId: id })).getResult()).toEqual({ a: 11, doubled: 22, version: 1 });
      expect((await duro.getWorkflowStatus(id))!.forkedFrom).toBe("O");
    }
    expect(state).toMatchObject({ alpha: 3, beta: 3 });
  });

  it("startStep not an integer is InvalidArgumentError, and nothing is written", async () => {
    const { duro } = await original();
    const before = await snapshot(duro);
    for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, "2" as unknown as number]) {
      await expect(duro.forkWorkflow("O", bad, { newWorkflowId: `bad-${String(bad)}` }), String(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(duro.forkWorkflow("O", 2, { timeoutSeconds: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(duro.forkWorkflow("O", 2, { queueName: "no-such-queue" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(duro.forkWorkflow("O", 2, { newWorkflowId: "" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(duro.forkWorkflow("O", 2, { newWorkflowId: "a", workflowId: "b" })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await snapshot(duro)).toEqual(before);
    expect((await duro.getWorkflowStatus("O"))!.wasForkedFrom).toBe(false);
  });

  it("an unknown workflow is WorkflowNotFoundError, whatever the startStep, and nothing is written", async () => {
    const { duro } = await original();
    const before = await snapshot(duro);
    await expect(duro.forkWorkflow("nobody", 1)).rejects.toBeInstanceOf(WorkflowNotFoundError);
    await expect(duro.forkWorkflow("nobody", 5, { newWorkflowId: "x" })).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await snapshot(duro)).toEqual(before);
    expect(await duro.getWorkflowStatus("x")).toBeNull();
  });

  it("a newWorkflowId that is already taken is refused, and neither workflow changes", async () => {
    const { duro } = await original();
    const other = duro.registerWorkflow("other", async () => "other");
    await duro.startWorkflow(other.with({ workflowId: "B" })).then((h) => h.getResult());
    const before = await snapshot(duro);
    // Soft, so that one run reports every part that goes wrong.
    expect.soft(await duro.forkWorkflow("O", 4, { newWorkflowId: "B" }).catch((e) => e)).toBeInstanceOf(WorkflowConflictError);
    expect.soft(await duro.forkWorkflow("O", 4, { newWorkflowId: "O" }).catch((e) => e)).toBeInstanceOf(WorkflowConflictError);
    expect.soft(await duro.listWorkflowSteps("B")).toEqual([]); // no operations of O grafted onto B
    expect.soft((await duro.getWorkflowStatus("O"))!.wasForkedFrom).toBe(false);
    expect(await snapshot(duro)).toEqual(before);
  });

  it("concurrent forks to one newWorkflowId: exactly one wins, with its own source's record; the rest are WorkflowConflictError", async () => {
    const { duro, wf } = await original();
    await duro.startWorkflow(wf.with({ workflowId: "P" }), 20).then((h) => h.getResult());
    const sources = Array.from({ length: 12 }, (_, i) => (i % 2 ? "O" : "P"));
    const outcomes = await Promise.all(sources.map((source) => duro.forkWorkflow(source, 8, { newWorkflowId: "race" }).then(() => source, (e: unknown) => e)));
    const winners = outcomes.filter((o): o is string => typeof o === "string");
    expect(winners).toHaveLength(1);
    for (const o of outcomes) if (typeof o !== "string") expect(o).toBeInstanceOf(WorkflowConflictError);
    const [winner] = winners;
    expect(await (await duro.retrieveWorkflow("race")).getResult()).toEqual(await (await duro.retrieveWorkflow(winner)).getResult());
    expect(await duro.listWorkflowSteps("race")).toEqual(await duro.listWorkflowSteps(winner));
    expect(await duro.getAllEvents("race")).toEqual(await duro.getAllEvents(winner));
    expect(await readAll(duro, "race", "log")).toEqual(await readAll(duro, winner, "log"));
    const marked = (await duro.listWorkflows({ wasForkedFrom: true })).map((s) => s.workflowId);
    expect(marked).toEqual([winner]);
  });

  it("a fork inside a workflow is a recorded operation", async () => {
    const { duro } = await original();
    const forker = duro.registerWorkflow("forker", async () => (await duro.forkWorkflow("O", 6)).workflowId);
    const forkId = await forker();
    expect(await duro.getWorkflowStatus(forkId)).toMatchObject({ forkedFrom: "O" });
    const [f] = await duro.listWorkflows({ name: "forker" });
    expect(await duro.listWorkflowSteps(f.workflowId)).toMatchObject([{ functionName: "duro.forkWorkflow", output: forkId }]);
  });

  it("a management call's error inside a workflow, or getResult's of a missing workflow, is thrown, not recorded: a later run makes the call again", async () => {
    const duro = t.duro();
    const target = duro.registerWorkflow("target", async () => "t");
    const tries = duro.registerWorkflow("tries", async () => {
      const outcomes: string[] = [];
      for (const call of [() => duro.forkWorkflow("later", 1), () => duro.listWorkflowSteps("later"), () => duro.resumeWorkflow("later"),
        () => duro.getResult("later")]) {
        outcomes.push(await call().then(() => "ok", (e: Error) => e.name));
      }
      return outcomes;
    });
    await duro.launch();
    const h = await duro.startWorkflow(tries.with({ workflowId: "tries-1" }));
    // An unknown workflow's steps are none (recorded), as in the reference library.
    expect(await h.getResult()).toEqual(["WorkflowNotFoundError", "ok", "WorkflowNotFoundError", "WorkflowNotFoundError"]);
    expect((await duro.listWorkflowSteps("tries-1")).map((s) => [s.functionId, s.functionName, s.output])).toEqual([[2, "duro.listWorkflowSteps", []]]);

    await duro.startWorkflow(target.with({ workflowId: "later" })).then((l) => l.getResult());
    const again = await duro.forkWorkflow<string[]>("tries-1", 99); // reuses every record: there is none
    expect(await again.getResult()).toEqual(["ok", "ok", "ok", "ok"]);
    expect((await duro.listWorkflowSteps(again.workflowId)).map((s) => [s.functionId, s.functionName])).toEqual([
      [1, "duro.forkWorkflow"], [2, "duro.listWorkflowSteps"], [3, "duro.resumeWorkflow"], [4, "duro.getResult"],
    ]);
  });
});

