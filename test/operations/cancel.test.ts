/**
 * cancelWorkflow(s) as an operator uses it: queued work leaves its queue and never runs, delayed
 * work never starts, descendants go with their parent when asked (and only then), a body blocked in a durable wait stops
 * when another executor cancels it, and mixed lists of IDs are fine.
 * (The basics — CANCELLED, stop at the next step, unknown IDs — are in conformance/management.)
 */
import { describe, expect, it } from "vitest";
import { AwaitedWorkflowCancelledError, WorkflowQueue } from "../../src/index.js";
import { backends, gate, sleep, statusOf, useClients, useDuro, waitFor, waitForStatus } from "../helpers.js";
import { blockedQueue } from "./support.js";

describe.each(backends)("%s", (backend) => {
  const newClient = useClients();
  const t = useDuro(backend);

  it("a queued workflow that is cancelled leaves its queue and never runs; its deduplication ID is free again", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "q");
    let runs = 0;
    const victim = duro.registerWorkflow("victim", async () => {
      runs++;
      return "ran";
    });
    await duro.launch();
    await q.block();
    const handle = await duro.startWorkflow(victim.with({ queueName: "q", workflowId: "V", deduplicationId: "d-1" }));
    expect((await duro.listQueuedWorkflows({ queueName: "q" })).map((s) => s.workflowId)).toEqual(["q-blocker", "V"]);

    await duro.cancelWorkflow("V");
    const status = (await handle.getStatus())!;
    expect(status).toMatchObject({ status: "CANCELLED", queueName: null, deduplicationId: null });
    expect((await duro.listQueuedWorkflows()).map((s) => s.workflowId)).toEqual(["q-blocker"]);
    expect((await duro.listQueuedWorkflows({ queueName: "q" })).map((s) => s.workflowId)).toEqual(["q-blocker"]);
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await expect(handle.getResult()).rejects.toThrow(/was cancelled, so it has no result. Resume it with resumeWorkflow/);

    await q.release(); // the slot frees: the cancelled workflow must not be dequeued
    const again = await duro.startWorkflow(victim.with({ queueName: "q", workflowId: "V2", deduplicationId: "d-1" }));
    expect(await again.getResult()).toBe("ran");
    await sleep(300);
    expect(runs).toBe(1); // only V2
    expect(await statusOf(duro, "V")).toBe("CANCELLED");
    expect(await duro.listWorkflowSteps("V")).toEqual([]);
  });

  it("a DELAYED workflow that is cancelled never starts", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "later", { pollingIntervalSeconds: 0.1 });
    let runs = 0;
    const wf = duro.registerWorkflow("delayed", async () => void runs++);
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ queueName: "later", delaySeconds: 0.4 }));
    expect((await handle.getStatus())!.status).toBe("DELAYED");
    await duro.cancelWorkflow(handle.workflowId);
    await sleep(900);
    expect(runs).toBe(0);
    expect((await handle.getStatus())!).toMatchObject({ status: "CANCELLED", queueName: null });
  });

  it("with cancelChildren, cancelling a parent cancels its descendants — running, waiting and queued — but not finished ones", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "kids");
    const grandchild = duro.registerWorkflow("grandchild", async () => duro.recv("never", 60));
    const child = duro.registerWorkflow("child", async () => {
      const h = await duro.startWorkflow(grandchild.with({ workflowId: "G" }));
      return h.getResult();
    });
    const quick = duro.registerWorkflow("quick", async () => "quick");
    const queuedChild = duro.registerWorkflow("queuedChild", async () => "queued child ran");
    const childStarted = gate();
    const parent = duro.registerWorkflow("parent", async () => {
      await duro.startWorkflow(quick.with({ workflowId: "Q" })).then((h) => h.getResult());
      await duro.startWorkflow(queuedChild.with({ workflowId: "K", queueName: "kids" }));
      const h = await duro.startWorkflow(child.with({ workflowId: "C" }));
      childStarted.open();
      return h.getResult();
    });
    await duro.launch();
    await q.block();
    const handle = await duro.startWorkflow(parent.with({ workflowId: "P" }));
    await childStarted.promise;
    await waitFor(async () => (await statusOf(duro, "G")) === "PENDING", 10_000, "grandchild to start");
    expect((await duro.listWorkflows({ parentWorkflowId: "P" })).map((s) => s.workflowId).sort()).toEqual(["C", "K", "Q"]);

    await duro.cancelWorkflow("P", { cancelChildren: true });
    for (const id of ["P", "C", "G", "K"]) expect(await statusOf(duro, id), id).toBe("CANCELLED");
    expect(await statusOf(duro, "Q")).toBe("SUCCESS");
    for (const id of ["P", "C", "G", "K"]) await expect(duro.getResult(id), id).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(await duro.getResult("Q")).toBe("quick");

    await q.release();
    await sleep(300);
    expect(await statusOf(duro, "K")).toBe("CANCELLED"); // the queued child was removed from its queue
    expect(await duro.listWorkflowSteps("K")).toEqual([]);
  });

  it("by default, cancelling a parent leaves its children running: they finish on their own", async () => {
    const duro = t.duro();
    const child = duro.registerWorkflow("child", async () => `child got ${await duro.recv<string>("go", 60)}`);
    const parent = duro.registerWorkflow("parent", async () => {
      const h = await duro.startWorkflow(child.with({ workflowId: "lone-child" }));
      return h.getResult();
    });
    await duro.launch();
    const handle = await duro.startWorkflow(parent.with({ workflowId: "lone-parent" }));
    await waitFor(async () => (await statusOf(duro, "lone-child")) === "PENDING", 10_000, "the child to start");
    await duro.cancelWorkflow("lone-parent");
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(await statusOf(duro, "lone-child")).toBe("PENDING");
    await duro.send("lone-child", "the message", "go");
    expect(await duro.getResult("lone-child")).toBe("child got the message");
    const cancelled = (await duro.getWorkflowStatus("lone-parent"))!;
    expect(cancelled.completedAtEpochMs).toBeGreaterThanOrEqual(cancelled.createdAt);
    expect(cancelled.startedAtEpochMs).toBeNull(); // as the reference's cancel
  });

  it("cancelling a child does not cancel its parent: the parent sees AwaitedWorkflowCancelledError", async () => {
    const duro = t.duro();
    const child = duro.registerWorkflow("child", async () => duro.recv("never", 60));
    const parent = duro.registerWorkflow("parent", async () => {
      const h = await duro.startWorkflow(child.with({ workflowId: "child-of-P" }));
      try {
        return await h.getResult();
      } catch (error) {
        return `caught ${(error as Error).name}`;
      }
    });
    await duro.launch();
    const handle = await duro.startWorkflow(parent.with({ workflowId: "P" }));
    await waitForStatus(duro, "child-of-P", "PENDING");
    await waitFor(async () => (await duro.listWorkflowSteps("child-of-P")).length > 0, 10_000, "child to wait in recv");
    await duro.cancelWorkflow("child-of-P");
    expect(await handle.getResult()).toBe("caught AwaitedWorkflowCancelledError");
    expect(await statusOf(duro, "P")).toBe("SUCCESS");
    expect(await statusOf(duro, "child-of-P")).toBe("CANCELLED");
  });

  it("a parent cancelled with its children from a client keeps nothing of the wait the cancel ended: resumed, it gets the resumed child's result", async () => {
    const duro = t.duro();
    const release = gate();
    const s = duro.registerStep("s", async () => (await release.promise, 1));
    const child = duro.registerWorkflow("child", async () => `child done after ${await s()}`);
    const waitEnded = gate();
    const parent = duro.registerWorkflow("parent", async () => {
      const h = await duro.startWorkflow(child);
      try {
        return await h.getResult();
      } finally {
        waitEnded.open();
      }
    });
    await duro.launch();
    await duro.startWorkflow(parent.with({ workflowId: "P" }));
    await waitFor(async () => (await duro.listWorkflowSteps("P")).length === 1, 10_000, "the parent to wait for its child");
    const client = newClient(t.url);
    await client.cancelWorkflow("P", { cancelChildren: true });
    release.open(); // the child's step ends: its run finds out it was cancelled, perhaps before the parent's does
    await waitEnded.promise; // the parent's run saw the cancel (its own, or its child's)
    const steps = await duro.listWorkflowSteps("P");
    expect(steps.map((st) => [st.functionId, st.childWorkflowId, st.error])).toEqual([[1, "P-1", null]]);
    await client.resumeWorkflows(["P-1", "P"]);
    expect(await client.getResult("P")).toBe("child done after 1");
    expect(await statusOf(duro, "P-1")).toBe("SUCCESS");
  });

  it("another executor's cancel interrupts a body blocked in a durable wait within ~2 s; later steps never run", async () => {
    const a = t.duro({ executorId: "a" });
    const b = t.duro({ executorId: "b" });
    let after = 0;
    const exited = gate<number>();
    const afterwards = a.registerStep("afterwards", async () => void after++);
    const wf = a.registerWorkflow("sleeper", async () => {
      try {
        await a.sleep(60);
        await afterwards();
      } finally {
        exited.open(performance.now());
      }
    });
    await a.launch();
    await b.launch();
    const handle = await a.startWorkflow(wf.with({ workflowId: "S" }));
    await waitFor(async () => (await a.listWorkflowSteps("S")).length === 1, 10_000, "the sleep to be recorded");
    const result = handle.getResult().then(
      () => ({ error: undefined, at: performance.now() }),
      (error) => ({ error, at: performance.now() }),
    );
    const cancelledAt = performance.now();
    await b.cancelWorkflow("S");
    const stoppedAt = await exited.promise;
    expect(stoppedAt - cancelledAt).toBeLessThan(2500);
    // The executor that ran it also answers its own getResult callers promptly (not at a slow poll).
    const settled = await result;
    expect(settled.error).toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(settled.at - cancelledAt).toBeLessThan(2500);
    expect(after).toBe(0);
    expect(await statusOf(a, "S")).toBe("CANCELLED");
    expect((await a.listWorkflowSteps("S")).map((s) => s.functionName)).toEqual(["duro.sleep"]);
  });

  it.each(["here", "from another executor"])(
    "a step under way when the cancel comes (%s) keeps its outcome; the next step never runs, and a resume goes on after it",
    async (where) => {
      const a = t.duro({ executorId: "a" });
      const b = t.duro({ executorId: "b" });
      const release = gate();
      const runs = { first: 0, slow: 0, last: 0 };
      const first = a.registerStep("first", async () => ++runs.first);
      const slow = a.registerStep("slow", async () => {
        runs.slow++;
        await release.promise;
        return "slow done";
      });
      const last = a.registerStep("last", async () => ++runs.last);
      const wf = a.registerWorkflow("three", async () => [await first(), await slow(), await last()]);
      await a.launch();
      await b.launch();
      const handle = await a.startWorkflow(wf.with({ workflowId: "mid-step" }));
      await waitFor(() => runs.slow === 1, 10_000, "the slow step to start");
      await (where === "here" ? a : b).cancelWorkflow("mid-step");
      await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
      release.open();
      await waitFor(async () => (await a.listWorkflowSteps("mid-step")).length === 2, 10_000, "the slow step's outcome recorded");
      expect((await a.listWorkflowSteps("mid-step")).map((s) => [s.functionName, s.output])).toEqual([["first", 1], ["slow", "slow done"]]);
      expect(runs.last).toBe(0);
      expect(await statusOf(a, "mid-step")).toBe("CANCELLED");

      await a.resumeWorkflow("mid-step");
      expect(await a.getResult("mid-step")).toEqual([1, "slow done", 1]);
      expect(runs).toEqual({ first: 1, slow: 1, last: 1 });
    },
  );

  it("a step waiting between retries stops at once when cancelled", async () => {
    const duro = t.duro();
    let attempts = 0;
    const flaky = duro.registerStep(
      "flaky",
      async () => {
        attempts++;
        throw new Error("down");
      },
      { retriesAllowed: true, maxAttempts: 5, intervalSeconds: 30 },
    );
    const wf = duro.registerWorkflow("retrying", async () => flaky());
    await duro.launch();
    const handle = await duro.startWorkflow(wf);
    await waitFor(() => attempts === 1);
    const start = performance.now();
    await duro.cancelWorkflow(handle.workflowId);
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(performance.now() - start).toBeLessThan(2000);
    await sleep(100);
    expect(attempts).toBe(1);
    expect(await duro.listWorkflowSteps(handle.workflowId)).toEqual([]);
  });

  it("cancelWorkflows takes a mixed list: running ones are cancelled, finished and unknown ones are left alone", async () => {
    const duro = t.duro();
    const waits = duro.registerWorkflow("waits", async () => duro.recv("go", 60));
    const done = duro.registerWorkflow("done", async () => "done");
    await duro.launch();
    const r1 = await duro.startWorkflow(waits.with({ workflowId: "r1" }));
    const r2 = await duro.startWorkflow(waits.with({ workflowId: "r2" }));
    await duro.startWorkflow(done.with({ workflowId: "d1" })).then((h) => h.getResult());
    const before = (await duro.getWorkflowStatus("d1"))!;
    await duro.cancelWorkflows(["r1", "d1", "nobody", "r2", "r1"]);
    await expect(r1.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    await expect(r2.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(await duro.getWorkflowStatus("d1")).toEqual(before);
    expect(await duro.getWorkflowStatus("nobody")).toBeNull();
    await duro.cancelWorkflows([]); // nothing to do
    await duro.cancelWorkflow("r1"); // cancelling twice is harmless
    expect((await duro.listWorkflows({ status: "CANCELLED" })).map((s) => s.workflowId)).toEqual(["r1", "r2"]);
  });

  it("a cancel inside a workflow is a recorded operation", async () => {
    const duro = t.duro();
    const target = duro.registerWorkflow("target", async () => duro.recv("go", 60));
    const canceller = duro.registerWorkflow("canceller", async (id: string) => {
      await duro.cancelWorkflow(id);
      return "cancelled it";
    });
    await duro.launch();
    const victim = await duro.startWorkflow(target.with({ workflowId: "T" }));
    expect(await canceller("T")).toBe("cancelled it");
    await expect(victim.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    const [c] = await duro.listWorkflows({ name: "canceller" });
    expect((await duro.listWorkflowSteps(c.workflowId)).map((s) => s.functionName)).toEqual(["duro.cancelWorkflow"]);
  });
});
