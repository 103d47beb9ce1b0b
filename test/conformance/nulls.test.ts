/**
 * SPEC: "Python's None is null". Every option the reference page defaults to None may be given
 * as null and means "not given"; a null timeoutSeconds on a child means "no deadline", as the
 * reference's SetWorkflowTimeout(None), and stops the parent's from propagating.
 */
import { describe, expect, it } from "vitest";
import { DuroClient, WorkflowQueue } from "../../src/index.js";
import { backends, quietLogger, useDuro } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("options given as null are options not given, in every method that takes options", async () => {
    const duro = t.duro({ executorId: null, appVersion: null, poolSize: null, maxRecoveryAttempts: null } as never);
    new WorkflowQueue(duro, "q", { concurrency: null, workerConcurrency: null, rateLimit: null, priorityEnabled: null, partitionQueue: null, pollingIntervalSeconds: null });
    const step = duro.registerStep("step", async (x: number) => x + 1, { name: null, retriesAllowed: null, intervalSeconds: null, maxAttempts: null, backoffRate: null });
    const streams = duro.registerWorkflow("streams", async () => {
      await duro.setEvent("e", 1, { serialization: null, serializationType: null });
      await duro.writeStream("s", "a", { serialization: null });
      await duro.closeStream("s");
      return duro.runStep(async () => step(1), null);
    }, { serialization: null });
    const receives = duro.registerWorkflow("receives", async () => duro.recv("t", null));
    await duro.launch();

    const filter = Object.fromEntries(["workflowIds", "status", "startTime", "endTime", "name", "appVersion", "forkedFrom", "parentWorkflowId", "user", "queueName",
      "executorId", "workflowIdPrefix", "limit", "offset", "sortDesc", "loadInput", "loadOutput", "wasForkedFrom", "hasParent"].map((k) => [k, null]));
    const handle = await duro.startWorkflow(streams.with({
      workflowId: "w", queueName: null, priority: null, deduplicationId: null, partitionKey: null, delaySeconds: null, authenticatedUser: null,
      appVersion: null, serialization: null,
    }));
    expect(await handle.getResult()).toBe(2);
    expect((await duro.listWorkflows(filter)).map((s) => s.workflowId)).toEqual(["w"]);
    expect((await duro.listWorkflows(null as never)).map((s) => s.workflowId)).toEqual(["w"]);
    expect(await duro.listQueuedWorkflows({ queueName: null, limit: null })).toEqual([]);
    expect((await duro.listWorkflowSteps("w", { limit: null, offset: null })).map((s) => s.functionName)).toEqual(["duro.setEvent", "duro.writeStream", "duro.closeStream", "runStep"]);
    expect(await duro.getEvent("w", "e", null)).toBe(1);
    expect(await duro.getEvent("w", "e", { timeoutSeconds: null })).toBe(1);
    const read: unknown[] = [];
    for await (const value of duro.readStream("w", "s", { offset: null, timeoutSeconds: null })) read.push(value);
    expect(read).toEqual(["a"]);
    const { done } = await duro.wait([handle], { returnWhen: null, timeoutSeconds: null });
    expect(done).toEqual([handle]);

    // send: a null idempotencyKey is none (each send delivers), a null options object is none.
    const receiver = await duro.startWorkflow(receives);
    await duro.send(receiver.workflowId, "first", "t", { idempotencyKey: null, serialization: null });
    expect(await receiver.getResult()).toBe("first");

    // Queued: null priority and delay are the defaults; setWorkflowDelay takes exactly one of its two, the other null.
    // Options bound by with() stay bound when a later with() gives them as null or undefined.
    const delayed = await duro.startWorkflow(streams.with({ workflowId: "d", queueName: "q" }).with({ delaySeconds: 3600, priority: null, queueName: null }).with({ queueName: undefined }));
    expect(streams.with({ queueName: "q" }).with({ queueName: undefined, priority: null }).startOptions).toEqual({ queueName: "q" });
    expect((await delayed.getStatus())?.status).toBe("DELAYED");
    await duro.setWorkflowDelay("d", { delaySeconds: 0, delayUntilEpochMs: null });
    expect(await delayed.getResult()).toBe(2);
    await duro.cancelWorkflow("d", { cancelChildren: null });
    const forked = await duro.forkWorkflow("w", 2, { newWorkflowId: null, workflowId: "f", appVersion: null, queueName: null, partitionKey: null, timeoutSeconds: null });
    expect(await forked.getResult()).toBe(2);
    await duro.resumeWorkflow("f", { queueName: null });

    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger, poolSize: null, createSchema: null });
    try {
      const queued = await client.enqueue({ workflowName: "streams", queueName: "q", priority: null, deduplicationId: null, timeoutSeconds: null });
      expect(await queued.getResult()).toBe(2);
      expect((await client.listWorkflows({ workflowIds: [queued.workflowId], status: null })).map((s) => s.status)).toEqual(["SUCCESS"]);
    } finally {
      await client.close();
    }
  });

  it("a child started with timeoutSeconds null has no deadline: the parent's does not reach it, as SetWorkflowTimeout(None)", async () => {
    const duro = t.duro();
    const child = duro.registerWorkflow("child", async () => {
      await duro.sleep(0.6);
      return "child done";
    });
    const parent = duro.registerWorkflow("parent", async (timeout: null | undefined) => {
      const handle = await duro.startWorkflow(child.with({ workflowId: `child-${timeout}`, timeoutSeconds: timeout }));
      await duro.sleep(5);
      return handle.workflowId;
    });
    await duro.launch();
    for (const timeout of [null, undefined]) {
      const handle = await duro.startWorkflow(parent.with({ timeoutSeconds: 0.3 }), timeout);
      await expect(handle.getResult()).rejects.toThrow();
      const childStatus = await duro.retrieveWorkflow(`child-${timeout}`).then((h) => h.getResult().then(() => h.getStatus(), () => h.getStatus()));
      if (timeout === null) {
        expect(childStatus).toMatchObject({ status: "SUCCESS", output: "child done", deadlineEpochMs: null, timeoutMs: null });
      } else {
        expect(childStatus?.status).toBe("CANCELLED"); // inherited the parent's deadline
      }
    }
  });
});
