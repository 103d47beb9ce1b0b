/**
 * Timeouts and deadlines: `timeoutSeconds` counts from the start (from the dequeue for queued
 * work), `deadlineEpochMs` is absolute; on expiry the workflow is CANCELLED; children carry the
 * parent's absolute deadline; a restart keeps the original deadline.
 */
import { describe, expect, it } from "vitest";
import { AwaitedWorkflowCancelledError, DuroClient, WorkflowQueue, type Duro } from "../../src/index.js";
import { backends, clockPast, gate, quietLogger, range, rejectionOf, sleep, statusOf, useDuro, waitFor, waitForStatus } from "../helpers.js";
import { blockedQueue } from "./support.js";

/** A workflow that records step "before", sleeps a minute, then would run step "after". */
function sleeper(duro: Duro, name = "sleeper") {
  const runs = { before: 0, after: 0 };
  const before = duro.registerStep("before", async () => void runs.before++);
  const after = duro.registerStep("after", async () => void runs.after++);
  const wf = duro.registerWorkflow(name, async () => {
    await before();
    await duro.sleep(60);
    await after();
    return "woke";
  });
  return { wf, runs };
}

/** Waits until `id` is CANCELLED and returns when that was seen (epoch ms). */
async function cancelledAt(duro: Duro, id: string, timeoutMs = 10_000): Promise<number> {
  await waitForStatus(duro, id, "CANCELLED", timeoutMs);
  return Date.now();
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("timeoutSeconds: the deadline is start + timeout, and the workflow is CANCELLED when it passes", async () => {
    const duro = t.duro();
    const { wf, runs } = sleeper(duro);
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: "T", timeoutSeconds: 0.5 }));
    const status = (await handle.getStatus())!;
    expect(status.timeoutMs).toBe(500);
    expect(status.deadlineEpochMs).toBe(status.startedAtEpochMs! + 500);
    const at = await cancelledAt(duro, "T");
    expect(at).toBeGreaterThanOrEqual(status.deadlineEpochMs!);
    expect(at - status.deadlineEpochMs!).toBeLessThan(1500);
    const error = await rejectionOf(handle.getResult());
    expect(error).toBeInstanceOf(AwaitedWorkflowCancelledError);
    // Says why, and that a resume runs it under the same timeout again.
    expect(error.message).toMatch(/cancelled when its deadline passed \(timeoutSeconds 0.5\).*fresh timeout of the same length.*forkWorkflow/);
    expect(runs).toEqual({ before: 1, after: 0 });
  });

  it("deadlineEpochMs: an absolute deadline cancels the workflow when it passes", async () => {
    const duro = t.duro();
    const { wf, runs } = sleeper(duro);
    await duro.launch();
    const deadline = Date.now() + 500;
    const handle = await duro.startWorkflow(wf.with({ workflowId: "D", deadlineEpochMs: deadline }));
    expect((await handle.getStatus())!).toMatchObject({ deadlineEpochMs: deadline, timeoutMs: null });
    const at = await cancelledAt(duro, "D");
    expect(at).toBeGreaterThanOrEqual(deadline);
    expect(at - deadline).toBeLessThan(1500);
    await expect(handle.getResult()).rejects.toThrow(/cancelled when its deadline passed, so it has no result. resumeWorkflow\(\) runs it again without that deadline/);
    expect(runs.after).toBe(0);
  });

  it("a deadline already past cancels the workflow at once; one that is met leaves it alone", async () => {
    const duro = t.duro();
    const { wf } = sleeper(duro);
    const quick = duro.registerWorkflow("quick", async () => "in time");
    await duro.launch();
    const late = await duro.startWorkflow(wf.with({ deadlineEpochMs: Date.now() - 1000 }));
    await expect(late.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    const ok = await duro.startWorkflow(quick.with({ workflowId: "ok", timeoutSeconds: 0.3 }));
    expect(await ok.getResult()).toBe("in time");
    await sleep(500); // past its deadline: a finished workflow stays finished
    expect(await statusOf(duro, "ok")).toBe("SUCCESS");
  });

  it("a queued workflow's timeout starts when it is dequeued, not while it waits", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "q");
    const quick = duro.registerWorkflow("quick", async () => "done");
    const { wf: slow, runs } = sleeper(duro, "slow");
    await duro.launch();
    await q.block();
    const fast = await duro.startWorkflow(quick.with({ queueName: "q", workflowId: "fast", timeoutSeconds: 0.3 }));
    const hung = await duro.startWorkflow(slow.with({ queueName: "q", workflowId: "hung", timeoutSeconds: 0.3 }));
    expect((await fast.getStatus())!).toMatchObject({ status: "ENQUEUED", timeoutMs: 300, deadlineEpochMs: null });
    await sleep(600); // twice the timeout, spent waiting in the queue
    expect(await statusOf(duro, "fast")).toBe("ENQUEUED");
    expect(await statusOf(duro, "hung")).toBe("ENQUEUED");

    await q.release();
    expect(await fast.getResult()).toBe("done");
    const fastStatus = (await fast.getStatus())!;
    expect(fastStatus.deadlineEpochMs).toBe(fastStatus.startedAtEpochMs! + 300);
    // "hung" runs after "fast" (concurrency 1) and is cancelled 0.3 s into its own run.
    await expect(hung.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    const hungStatus = (await hung.getStatus())!;
    // Dequeued once "fast" finished, so its deadline is 300 ms after that (a cancel clears startedAtEpochMs).
    expect(hungStatus.deadlineEpochMs).toBeGreaterThanOrEqual(fastStatus.completedAtEpochMs! + 300);
    expect(hungStatus.startedAtEpochMs).toBeNull();
    expect(hungStatus.updatedAt).toBeGreaterThanOrEqual(hungStatus.deadlineEpochMs!);
    expect(runs).toEqual({ before: 1, after: 0 });
  });

  it("children carry the parent's absolute deadline and are cancelled with it", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "kids");
    const grandchild = duro.registerWorkflow("grandchild", async () => duro.sleep(60));
    const child = duro.registerWorkflow("child", async () => {
      await duro.startWorkflow(grandchild.with({ workflowId: "G" }));
      return duro.recv("never", 60);
    });
    const queuedChild = duro.registerWorkflow("queuedChild", async () => "ran");
    const started = gate();
    const parent = duro.registerWorkflow("parent", async () => {
      await duro.startWorkflow(queuedChild.with({ workflowId: "QC", queueName: "kids" }));
      const h = await duro.startWorkflow(child.with({ workflowId: "C" }));
      started.open();
      return h.getResult();
    });
    const free = duro.registerWorkflow("free", async () => duro.startWorkflow(child.with({ workflowId: "FC" })).then(() => "started"));
    await duro.launch();
    await q.block();
    const handle = await duro.startWorkflow(parent.with({ workflowId: "P", timeoutSeconds: 1 }));
    await started.promise;
    await waitFor(async () => (await statusOf(duro, "G")) === "PENDING");
    const p = (await handle.getStatus())!;
    expect(p.deadlineEpochMs).not.toBeNull();
    for (const id of ["C", "QC", "G"]) {
      expect((await duro.getWorkflowStatus(id))!, id).toMatchObject({ deadlineEpochMs: p.deadlineEpochMs, timeoutMs: null });
    }
    for (const id of ["P", "C", "QC", "G"]) await waitForStatus(duro, id, "CANCELLED", 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(p.deadlineEpochMs!);
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);

    // Without a deadline on the parent, children have none either.
    expect(await duro.startWorkflow(free.with({ workflowId: "F" })).then((h) => h.getResult())).toBe("started");
    expect((await duro.getWorkflowStatus("FC"))!.deadlineEpochMs).toBeNull();
    await duro.cancelWorkflow("FC");
    await q.release();
  });

  it("a queued workflow whose deadlineEpochMs passes while it waits is CANCELLED and never runs", async () => {
    const duro = t.duro();
    const q = blockedQueue(duro, "q");
    let runs = 0;
    const wf = duro.registerWorkflow("late", async () => {
      await duro.runStep(async () => void runs++, { name: "work" });
      return "ran";
    });
    await duro.launch();
    await q.block();
    const deadline = Date.now() + 300;
    const handle = await duro.startWorkflow(wf.with({ queueName: "q", workflowId: "L", deadlineEpochMs: deadline }));
    const [batched] = await duro.enqueueMany(wf.with({ queueName: "q", deadlineEpochMs: deadline }), [[]]);
    expect((await handle.getStatus())!.deadlineEpochMs).toBe(deadline);
    await sleep(1500);
    expect.soft(await statusOf(duro, "L")).toBe("CANCELLED"); // expired while still queued
    expect.soft(await statusOf(duro, batched.workflowId)).toBe("CANCELLED");
    await q.release();
    await sleep(300);
    for (const h of [handle, batched]) {
      expect(await statusOf(duro, h.workflowId)).toBe("CANCELLED");
      await expect(h.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    }
    expect(runs).toBe(0); // its body never ran past its deadline
  });

  it("a queued workflow's deadline lets go of its timer once it runs: 3,000 queued an hour from their deadline leave the timer heap small", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "q", { workerConcurrency: 100 });
    const job = duro.registerWorkflow("job", async (i: number) => i);
    const parent = duro.registerWorkflow("parent", async (from: number) => {
      const handles = await Promise.all(range(100).map((i) => duro.startWorkflow(job.with({ queueName: "q" }), from + i)));
      return (await Promise.all(handles.map((h) => h.getResult()))).length;
    });
    await duro.launch();
    const deadlineEpochMs = Date.now() + 3_600_000;
    // One by one (most inserted already claimed, the queue being idle), in batches, and as the
    // children of parents with a timeout, which carry its deadline.
    const single = await Promise.all(range(1000).map((i) => duro.startWorkflow(job.with({ queueName: "q", deadlineEpochMs }), i)));
    const batched = await duro.enqueueMany(job.with({ queueName: "q", deadlineEpochMs }), range(1000).map((i) => [i]));
    const parents = await Promise.all(range(10).map((p) => duro.startWorkflow(parent.with({ timeoutSeconds: 3600 }), p * 100)));
    await Promise.all([...single, ...batched].map((h) => h.getResult()));
    expect(await Promise.all(parents.map((h) => h.getResult()))).toEqual(range(10).map(() => 100));
    expect(await duro.listWorkflows({ name: "job", status: "SUCCESS", loadInput: false, loadOutput: false }).then((l) => l.length)).toBe(3000);
    // Until now each kept an entry (and what it would call) until its deadline, an hour away.
    expect(duro.engine.timers.size).toBeLessThanOrEqual(1100);
  });

  it("a queued workflow cancelled, then resumed (which clears its deadline) and run by another process, is not cancelled at the old deadline", async () => {
    const duro = t.duro();
    new WorkflowQueue(duro, "free");
    const past = gate();
    const wf = duro.registerWorkflow("slow", async () => {
      await past.promise;
      return "done";
    });
    await duro.launch();
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    try {
      // The client (which watches its deadline while queued) enqueues it where nothing serves it.
      const deadline = Date.now() + 300;
      const handle = await client.enqueue({ workflowName: "slow", queueName: "nobody-serves", workflowId: "R", deadlineEpochMs: deadline });
      await duro.cancelWorkflow("R");
      await duro.resumeWorkflow("R", { queueName: "free" });
      await waitForStatus(duro, "R", "PENDING");
      expect((await duro.getWorkflowStatus("R"))!.deadlineEpochMs).toBeNull();
      await clockPast(deadline + 300); // the client's timer has fired by now
      past.open();
      expect(await handle.getResult()).toBe("done");
    } finally {
      await client.close();
    }
  });

  it("a restart keeps the original deadline: the recovered workflow is cancelled when it was due", async () => {
    const a = t.duro({ executorId: "e1", appVersion: "v1" });
    const { wf } = sleeper(a);
    await a.launch();
    const handle = await a.startWorkflow(wf.with({ workflowId: "R", timeoutSeconds: 1.5 }));
    await waitFor(async () => (await a.listWorkflowSteps("R")).length === 2, 10_000, "the sleep to be recorded");
    const deadline = (await handle.getStatus())!.deadlineEpochMs!;
    await a.shutdown(); // a crash mid-sleep

    const b = t.duro({ executorId: "e1", appVersion: "v1" });
    const second = sleeper(b);
    await b.launch();
    expect((await b.getWorkflowStatus("R"))!).toMatchObject({ status: "PENDING", deadlineEpochMs: deadline, recoveryAttempts: 2 });
    const at = await cancelledAt(b, "R");
    expect(at).toBeGreaterThanOrEqual(deadline);
    expect(at - deadline).toBeLessThan(1500);
    await expect(b.getResult("R")).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(second.runs).toEqual({ before: 0, after: 0 });
  });

  it("a deadline that passed while no executor ran the workflow is enforced as soon as it is recovered", async () => {
    const a = t.duro({ executorId: "e1", appVersion: "v1" });
    const { wf } = sleeper(a);
    await a.launch();
    const handle = await a.startWorkflow(wf.with({ workflowId: "R", timeoutSeconds: 0.3 }));
    await waitFor(async () => (await a.listWorkflowSteps("R")).length === 2, 10_000, "the sleep to be recorded");
    const deadline = (await handle.getStatus())!.deadlineEpochMs!;
    await a.shutdown();
    await waitFor(() => Date.now() > deadline + 300);

    const b = t.duro({ executorId: "e1", appVersion: "v1" });
    const second = sleeper(b);
    const launched = Date.now();
    await b.launch();
    const at = await cancelledAt(b, "R");
    expect(at - launched).toBeLessThan(1500);
    expect(second.runs).toEqual({ before: 0, after: 0 });
  });

  it("waits, timeouts and delays past the year 287,396 (Number.MAX_SAFE_INTEGER ms) end there, on every backend", async () => {
    const NEVER = Number.MAX_SAFE_INTEGER;
    const duro = t.duro();
    new WorkflowQueue(duro, "q");
    const sleeps = duro.registerWorkflow("sleeps", async (seconds: number) => duro.sleep(seconds));
    const waits = duro.registerWorkflow("waits", async (seconds: number) => duro.getEvent("nobody-yet", "k", seconds));
    const step = duro.registerStep("step", async () => "done");
    const quick = duro.registerWorkflow("quick", async () => step());
    await duro.launch();
    for (const [wf, id] of [[sleeps, "S"], [waits, "W"]] as const) {
      const waiting = await duro.startWorkflow(wf.with({ workflowId: id, timeoutSeconds: 1e16 }), 1e17);
      await waitFor(async () => (await duro.listWorkflowSteps(id)).some((s) => s.functionName === "duro.sleep" && s.output === NEVER), 10_000, `${id}'s wake-up time`);
      expect((await waiting.getStatus())!).toMatchObject({ status: "PENDING", timeoutMs: NEVER, deadlineEpochMs: NEVER });
      await duro.cancelWorkflow(id);
    }
    const far = await duro.startWorkflow(quick.with({ workflowId: "F", deadlineEpochMs: Number.MAX_VALUE }));
    expect(await far.getResult()).toBe("done");
    expect((await far.getStatus())!.deadlineEpochMs).toBe(NEVER);
    await duro.startWorkflow(quick.with({ workflowId: "D", queueName: "q", delaySeconds: 1e16 }));
    expect((await duro.getWorkflowStatus("D"))!).toMatchObject({ status: "DELAYED", delayUntilEpochMs: NEVER });
    await duro.setWorkflowDelay("D", { delaySeconds: 1e17 });
    await duro.setWorkflowDelay("D", { delayUntilEpochMs: 1e300 });
    expect((await duro.getWorkflowStatus("D"))!.delayUntilEpochMs).toBe(NEVER);
    await duro.setWorkflowDelay("D", { delaySeconds: 0 });
    expect(await duro.getResult("D")).toBe("done");
  });
});
