/** Enqueue options: deduplication, delays and setWorkflowDelay. */
import { describe, expect, it } from "vitest";
import { DuplicateWorkflowError, InvalidArgumentError, WorkflowNotFoundError, WorkflowQueue } from "../../src/index.js";
import { backends, gate, sleep, useClients, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();

  /** One executor with queues "q" and "other"; "job"(x) waits for `release`, then returns x. */
  async function setup(queueOptions = {}) {
    const duro = t.duro({ executorId: "e1", appVersion: "v1" });
    const release = gate();
    const ran: { x: string; at: number }[] = [];
    const job = duro.registerWorkflow("job", async (x: string) => {
      ran.push({ x, at: Date.now() });
      await release.promise;
      return x;
    });
    const quick = duro.registerWorkflow("quick", async (x: string) => {
      ran.push({ x, at: Date.now() });
      return x;
    });
    new WorkflowQueue(duro, "q", queueOptions);
    new WorkflowQueue(duro, "other");
    await duro.launch();
    return { duro, job, quick, release, ran };
  }

  describe("deduplication", () => {
    it("is refused on a partitioned queue with InvalidArgumentError, as in the reference library", async () => {
      const { duro, quick } = await setup();
      new WorkflowQueue(duro, "parts", { partitionQueue: true });
      await expect(duro.startWorkflow(quick.with({ queueName: "parts", partitionKey: "k", deduplicationId: "d" }), "x")).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(client(t.url).enqueue({ workflowName: "quick", queueName: "parts", partitionKey: "k", deduplicationId: "d" }, "x")).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await duro.listWorkflows({ name: "quick" })).toEqual([]);
    });

    it("refuses a deduplicationId already held on the queue, and frees it once that workflow finishes", async () => {
      const { duro, job, release } = await setup();
      const first = await duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "d1" }), "first");
      await waitFor(async () => (await first.getStatus())!.status === "PENDING");
      const error = await duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "d1" }), "second").catch((e) => e);
      expect(error).toBeInstanceOf(DuplicateWorkflowError);
      expect(error).toMatchObject({ queueName: "q", deduplicationId: "d1" });
      // The same ID on another queue, or another ID on this queue, is fine.
      const elsewhere = await duro.startWorkflow(job.with({ queueName: "other", deduplicationId: "d1" }), "elsewhere");
      const d2 = await duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "d2" }), "d2");
      // Nothing was written for the refused one.
      expect((await duro.listWorkflows({ name: "job" })).map((s) => s.input)).toEqual([["first"], ["elsewhere"], ["d2"]]);
      expect((await first.getStatus())!.deduplicationId).toBe("d1");
      release.open();
      expect(await first.getResult()).toBe("first");
      await Promise.all([elsewhere.getResult(), d2.getResult()]);
      const again = await duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "d1" }), "again");
      expect(await again.getResult()).toBe("again");
    });

    it("holds the ID while the workflow is ENQUEUED or DELAYED, and frees it when it is cancelled", async () => {
      const { duro, job, quick, release } = await setup({ concurrency: 1 });
      const blocker = await duro.startWorkflow(job.with({ queueName: "q" }), "blocker");
      const queued = await duro.startWorkflow(quick.with({ queueName: "q", deduplicationId: "e" }), "queued");
      expect((await queued.getStatus())!.status).toBe("ENQUEUED");
      await expect(duro.startWorkflow(quick.with({ queueName: "q", deduplicationId: "e" }), "x")).rejects.toThrow(DuplicateWorkflowError);
      const delayed = await duro.startWorkflow(quick.with({ queueName: "other", deduplicationId: "f", delaySeconds: 60 }), "delayed");
      expect((await delayed.getStatus())!.status).toBe("DELAYED");
      await expect(duro.startWorkflow(quick.with({ queueName: "other", deduplicationId: "f" }), "x")).rejects.toThrow(DuplicateWorkflowError);
      await duro.cancelWorkflow(delayed.workflowId);
      await duro.startWorkflow(quick.with({ queueName: "other", deduplicationId: "f" }), "after-cancel");
      release.open();
      await blocker.getResult();
      await queued.getResult();
      await duro.startWorkflow(quick.with({ queueName: "q", deduplicationId: "e" }), "after-success").then((h) => h.getResult());
    });

    it("frees the ID when the holder ends in ERROR", async () => {
      const duro = t.duro({ executorId: "e1", appVersion: "v1" });
      const fails = duro.registerWorkflow("fails", async () => {
        throw new Error("boom");
      });
      new WorkflowQueue(duro, "q");
      await duro.launch();
      const first = await duro.startWorkflow(fails.with({ queueName: "q", deduplicationId: "z" }));
      await expect(first.getResult()).rejects.toThrow("boom");
      const second = await duro.startWorkflow(fails.with({ queueName: "q", deduplicationId: "z" }));
      await expect(second.getResult()).rejects.toThrow("boom");
      expect((await first.getStatus())!.deduplicationId).toBeNull();
    });

    it("applies to DuroClient.enqueue too, across executors", async () => {
      const { duro, job, release } = await setup();
      const c = client(t.url);
      const held = await c.enqueue({ workflowName: "job", queueName: "q", deduplicationId: "c1" }, "held");
      await expect(c.enqueue({ workflowName: "job", queueName: "q", deduplicationId: "c1" }, "again")).rejects.toThrow(DuplicateWorkflowError);
      await expect(duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "c1" }), "again")).rejects.toThrow(DuplicateWorkflowError);
      release.open();
      expect(await held.getResult()).toBe("held");
      expect(await (await c.enqueue({ workflowName: "job", queueName: "q", deduplicationId: "c1" }, "later")).getResult()).toBe("later");
    });
  });

  describe("delaySeconds", () => {
    it("keeps the workflow DELAYED until its time, then runs it", async () => {
      const { duro, quick, ran } = await setup();
      const before = Date.now();
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 0.6 }), "later");
      const status = (await handle.getStatus())!;
      expect(status.status).toBe("DELAYED");
      expect(status.delayUntilEpochMs).toBeGreaterThanOrEqual(before + 600);
      expect(status.delayUntilEpochMs).toBeLessThanOrEqual(Date.now() + 600);
      expect((await duro.listQueuedWorkflows({ status: "DELAYED" })).map((s) => s.workflowId)).toEqual([handle.workflowId]);
      expect(await handle.getResult()).toBe("later");
      expect(ran[0].at).toBeGreaterThanOrEqual(status.delayUntilEpochMs!);
      expect(ran[0].at).toBeLessThan(status.delayUntilEpochMs! + 2000);
    });

    // With the polling interval at 30 s, only the executor's own knowledge of the time promotes it.
    it.each(["delaySeconds", "setWorkflowDelay"])(
      "makes a due workflow ENQUEUED at its time while every slot is taken, and runs it before those enqueued after it (%s)",
      async (how) => {
        const { duro, job, quick, release, ran } = await setup({ workerConcurrency: 1, pollingIntervalSeconds: 30 });
        const blocker = await duro.startWorkflow(job.with({ queueName: "q" }), "block");
        await waitFor(() => ran.length === 1, 5_000, "the blocker to start");
        const delayed = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: how === "delaySeconds" ? 0.3 : 3600 }), "delayed-first");
        if (how === "setWorkflowDelay") await duro.setWorkflowDelay(delayed.workflowId, { delaySeconds: 0.3 });
        const { delayUntilEpochMs } = (await delayed.getStatus())!;
        await waitFor(async () => (await delayed.getStatus())!.status === "ENQUEUED", 5_000, "the due workflow to be ENQUEUED");
        expect(Date.now()).toBeGreaterThanOrEqual(delayUntilEpochMs!);
        expect(Date.now() - delayUntilEpochMs!).toBeLessThan(1_500);
        expect((await duro.listQueuedWorkflows({ queueName: "q", status: "ENQUEUED" })).map((s) => s.workflowId)).toEqual([delayed.workflowId]);
        const later = await duro.startWorkflow(quick.with({ queueName: "q" }), "enqueued-later");
        release.open();
        await blocker.getResult();
        await later.getResult();
        expect(await delayed.getResult()).toBe("delayed-first");
        expect(ran.map((r) => r.x)).toEqual(["block", "delayed-first", "enqueued-later"]);
      },
    );

    it("treats delaySeconds 0 as no delay", async () => {
      const { duro, quick } = await setup();
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 0 }), "now");
      expect(await handle.getResult()).toBe("now");
      expect((await handle.getStatus())!.delayUntilEpochMs).toBeNull();
    });

    it("starts a client's delayed workflow on time although the executor polls only every 30 s", async () => {
      const { ran } = await setup({ pollingIntervalSeconds: 30 });
      await sleep(100); // the dispatcher's first pass is over
      const c = client(t.url);
      const handle = await c.enqueue({ workflowName: "quick", queueName: "q", delaySeconds: 0.5 }, "delayed-by-client");
      const { delayUntilEpochMs } = (await handle.getStatus())!;
      await waitFor(() => ran.length === 1, 10_000, "the delayed workflow to start");
      expect(ran[0].at).toBeGreaterThanOrEqual(delayUntilEpochMs!);
      expect(ran[0].at - delayUntilEpochMs!).toBeLessThan(1500);
    });

    it("stamps a claim when it runs, not when it was made: a claim sent again after an outage does not start work early or past its timeout", async () => {
      const { duro, quick, ran } = await setup({ workerConcurrency: 4 });
      // Every claim as it would be once sent again after a ten-minute outage: made long before it runs.
      const aged = <T extends { now: number }>(request: T): T => ({ ...request, now: request.now - 600_000 });
      const store = duro.engine.store;
      const claimQueued = store.claimQueued.bind(store);
      const write = store.write.bind(store);
      store.claimQueued = (request) => claimQueued(aged(request));
      store.write = (batch, options) => write(batch.map((w) => (w.kind === "claimQueued" ? { ...w, request: aged(w.request) } : w)), options);
      const handles = await Promise.all(
        ["a", "b", "c"].map((x) => duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 0.3, timeoutSeconds: 60 }), x)),
      );
      await waitFor(() => ran.length === 3, 10_000, "the delayed workflows to start");
      expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["a", "b", "c"]);
      for (const h of handles) {
        const status = (await h.getStatus())!;
        expect(status.startedAtEpochMs).toBeGreaterThanOrEqual(status.delayUntilEpochMs!);
        expect(status.deadlineEpochMs).toBeGreaterThanOrEqual(status.startedAtEpochMs! + 60_000);
      }
    });
  });

  describe("setWorkflowDelay", () => {
    it("brings a DELAYED workflow forward with delaySeconds", async () => {
      const { duro, quick } = await setup();
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 3600 }), "x");
      const before = Date.now();
      await duro.setWorkflowDelay(handle.workflowId, { delaySeconds: 0.2 });
      const status = (await handle.getStatus())!;
      expect(["DELAYED", "ENQUEUED", "PENDING", "SUCCESS"]).toContain(status.status);
      expect(status.delayUntilEpochMs).toBeGreaterThanOrEqual(before + 200);
      expect(status.delayUntilEpochMs).toBeLessThan(before + 10_000);
      expect(await handle.getResult()).toBe("x");
    });

    it("sets an absolute time with delayUntilEpochMs, later or earlier", async () => {
      const { duro, quick, ran } = await setup();
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 0.3 }), "x");
      const until = Date.now() + 60_000;
      await duro.setWorkflowDelay(handle.workflowId, { delayUntilEpochMs: until });
      expect((await handle.getStatus())!).toMatchObject({ status: "DELAYED", delayUntilEpochMs: until });
      await sleep(700); // past the original time: it must not run
      expect(ran).toHaveLength(0);
      expect((await handle.getStatus())!.status).toBe("DELAYED");
      const soon = Date.now() + 100;
      await duro.setWorkflowDelay(handle.workflowId, { delayUntilEpochMs: soon });
      expect(await handle.getResult()).toBe("x");
      expect(ran[0].at).toBeGreaterThanOrEqual(soon);
    });

    it("runs at once with a delay of 0 or a time in the past", async () => {
      const { duro, quick } = await setup();
      const a = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 3600 }), "a");
      const b = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 3600 }), "b");
      await duro.setWorkflowDelay(a.workflowId, { delaySeconds: 0 });
      await duro.setWorkflowDelay(b.workflowId, { delayUntilEpochMs: 0 });
      expect(await a.getResult()).toBe("a");
      expect(await b.getResult()).toBe("b");
    });

    it("changes nothing on a workflow that is not DELAYED", async () => {
      const { duro, job, quick, release } = await setup({ concurrency: 1 });
      const running = await duro.startWorkflow(job.with({ queueName: "q" }), "running");
      await waitFor(async () => (await running.getStatus())!.status === "PENDING");
      const enqueued = await duro.startWorkflow(quick.with({ queueName: "q" }), "enqueued");
      const direct = await duro.startWorkflow(quick, "direct");
      await direct.getResult();
      for (const h of [running, enqueued, direct]) {
        const before = (await h.getStatus())!;
        await duro.setWorkflowDelay(h.workflowId, { delaySeconds: 60 });
        const after = (await h.getStatus())!;
        expect(after.status).toBe(before.status);
        expect(after.delayUntilEpochMs).toBeNull();
      }
      release.open();
      expect(await enqueued.getResult()).toBe("enqueued");
    });

    it("takes exactly one of delaySeconds and delayUntilEpochMs, neither negative", async () => {
      const { duro, quick } = await setup();
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 3600 }), "x");
      const id = handle.workflowId;
      const bad = [{}, { delaySeconds: 1, delayUntilEpochMs: Date.now() + 1000 }, { delaySeconds: -1 }, { delayUntilEpochMs: -5 }, { delaySeconds: Number.NaN }];
      for (const options of bad) {
        await expect(duro.setWorkflowDelay(id, options), JSON.stringify(options)).rejects.toThrow(InvalidArgumentError);
      }
      const { delayUntilEpochMs } = (await handle.getStatus())!;
      expect(delayUntilEpochMs).toBeGreaterThan(Date.now() + 3000_000);
      await expect(duro.setWorkflowDelay("no-such-workflow", { delaySeconds: 1 })).rejects.toThrow(WorkflowNotFoundError);
      await duro.cancelWorkflow(id);
    });

    it("works from a DuroClient, waking the executor that serves the queue", async () => {
      const { duro, quick } = await setup({ pollingIntervalSeconds: 30 });
      const handle = await duro.startWorkflow(quick.with({ queueName: "q", delaySeconds: 3600 }), "from-client");
      const c = client(t.url);
      await expect(c.setWorkflowDelay(handle.workflowId, { delaySeconds: -1 })).rejects.toThrow(InvalidArgumentError);
      const started = Date.now();
      await c.setWorkflowDelay(handle.workflowId, { delaySeconds: 0 });
      expect(await handle.getResult()).toBe("from-client");
      expect(Date.now() - started).toBeLessThan(2000);
    });
  });
});

// A delayed enqueue from another process tells when it is due in its NOTIFY. (SQLite tells other
// processes only that something changed: there a full executor promotes at its polling interval.)
describe("postgres", () => {
  const t = useDuro("postgres");
  const client = useClients();

  it("a full executor promotes a client's delayed workflow at its time, although it polls only every 30 s", async () => {
    const duro = t.duro({ executorId: "e1", appVersion: "v1" });
    const release = gate();
    const ran: string[] = [];
    const job = duro.registerWorkflow("job", async (x: string) => {
      ran.push(x);
      if (x === "block") await release.promise;
      return x;
    });
    new WorkflowQueue(duro, "q", { workerConcurrency: 1, pollingIntervalSeconds: 30 });
    await duro.launch();
    const blocker = await duro.startWorkflow(job.with({ queueName: "q" }), "block");
    await waitFor(() => ran.length === 1, 5_000, "the blocker to start");
    const c = client(t.url);
    const delayed = await c.enqueue({ workflowName: "job", queueName: "q", delaySeconds: 0.3 }, "delayed-first");
    const { delayUntilEpochMs } = (await delayed.getStatus())!;
    await waitFor(async () => (await delayed.getStatus())!.status === "ENQUEUED", 5_000, "the due workflow to be ENQUEUED");
    expect(Date.now() - delayUntilEpochMs!).toBeLessThan(1_500);
    const later = await c.enqueue({ workflowName: "job", queueName: "q" }, "enqueued-later");
    release.open();
    await Promise.all([blocker.getResult(), delayed.getResult(), later.getResult()]);
    expect(ran).toEqual(["block", "delayed-first", "enqueued-later"]);
  });
});
