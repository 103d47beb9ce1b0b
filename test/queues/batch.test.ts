/** Batch enqueue: duro.enqueueMany and DuroClient.enqueueMany, one transaction, all or nothing. */
import { describe, expect, it } from "vitest";
import { DuplicateWorkflowError, InvalidArgumentError, SerializationError, WorkflowQueue } from "../../src/index.js";
import { backends, gate, useClients, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();

  async function setup() {
    const duro = t.duro({ executorId: "e1", appVersion: "v1" });
    const release = gate();
    const seen: unknown[][] = [];
    const job = duro.registerWorkflow("job", async (a: number, b: string) => {
      seen.push([a, b]);
      await release.promise;
      return `${b}${a}`;
    });
    new WorkflowQueue(duro, "q", { priorityEnabled: true });
    await duro.launch();
    const count = async () => (await duro.listWorkflows({ name: "job", loadInput: false, loadOutput: false })).length;
    return { duro, job, release, seen, count };
  }

  it("duro.enqueueMany enqueues every argument list with the bound options and returns the handles in order", async () => {
    const { duro, job, release, seen } = await setup();
    const argsList: [number, string][] = Array.from({ length: 50 }, (_, i) => [i, "n"]);
    const handles = await duro.enqueueMany(job.with({ queueName: "q", priority: 4, authenticatedUser: "bob" }), argsList);
    expect(handles).toHaveLength(50);
    expect(new Set(handles.map((h) => h.workflowId)).size).toBe(50);
    const statuses = await duro.listWorkflows({ workflowIds: handles.map((h) => h.workflowId) });
    for (const s of statuses) expect(s).toMatchObject({ queueName: "q", priority: 4, authenticatedUser: "bob", workflowName: "job" });
    release.open();
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(argsList.map(([a, b]) => `${b}${a}`));
    expect(seen).toHaveLength(50);
  });

  it("DuroClient.enqueueMany enqueues by workflow name for the executors to run", async () => {
    const { release, seen } = await setup();
    release.open();
    const c = client(t.url);
    const handles = await c.enqueueMany({ workflowName: "job", queueName: "q" }, [[1, "a"], [2, "b"], [3, "c"]]);
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["a1", "b2", "c3"]);
    expect(seen).toHaveLength(3);
    expect(await c.enqueueMany({ workflowName: "job", queueName: "q" }, [])).toEqual([]);
  });

  it("is one transaction: another executor sees none of the batch or all of it", async () => {
    const { duro, job, release, count } = await setup();
    const observer = t.duro({ executorId: "observer", appVersion: "v1" });
    await observer.launch();
    const observed: number[] = [];
    let done = false;
    const watching = (async () => {
      while (!done) {
        observed.push((await observer.listWorkflows({ name: "job", loadInput: false, loadOutput: false })).length);
        await new Promise((resolve) => setImmediate(resolve)); // SQLite reads are synchronous: let the batch's commit run
      }
    })();
    const n = 2000;
    await duro.enqueueMany(job.with({ queueName: "q" }), Array.from({ length: n }, (_, i) => [i, "x"] as [number, string]));
    await waitFor(() => observed.some((c) => c === n), 10_000, "the observer to see the batch");
    done = true;
    await watching;
    expect(observed.every((c) => c === 0 || c === n), `partial batches seen: ${[...new Set(observed)].join(", ")}`).toBe(true);
    expect(await count()).toBe(n);
    await duro.cancelWorkflows((await duro.listQueuedWorkflows({ loadInput: false })).map((s) => s.workflowId));
    release.open();
  });

  it("writes nothing when the batch is refused by deduplication", async () => {
    const { duro, job, release, count } = await setup();
    const holder = await duro.startWorkflow(job.with({ queueName: "q", deduplicationId: "d" }), 0, "holder");
    await expect(duro.enqueueMany(job.with({ queueName: "q", deduplicationId: "d" }), [[1, "x"]])).rejects.toThrow(DuplicateWorkflowError);
    const c = client(t.url);
    await expect(c.enqueueMany({ workflowName: "job", queueName: "q", deduplicationId: "d" }, [[1, "x"]])).rejects.toThrow(DuplicateWorkflowError);
    // One deduplication ID cannot cover several workflows.
    await expect(duro.enqueueMany(job.with({ queueName: "q", deduplicationId: "e" }), [[1, "x"], [2, "y"]])).rejects.toThrow(InvalidArgumentError);
    expect(await count()).toBe(1);
    release.open();
    await holder.getResult();
    const [freed] = await duro.enqueueMany(job.with({ queueName: "q", deduplicationId: "d" }), [[5, "f"]]);
    expect(await freed.getResult()).toBe("f5");
  });

  it("writes nothing when one argument list cannot be serialized", async () => {
    const { duro, job, count } = await setup();
    const bad = [[1, "a"], [2, (() => "fn") as unknown as string], [3, "c"]] as [number, string][];
    await expect(duro.enqueueMany(job.with({ queueName: "q" }), bad)).rejects.toThrow(SerializationError);
    const c = client(t.url);
    await expect(c.enqueueMany({ workflowName: "job", queueName: "q" }, bad)).rejects.toThrow(SerializationError);
    expect(await count()).toBe(0);
  });

  it("rejects a batch without a queue, on an unknown queue, or with a shared workflowId", async () => {
    const { duro, job, count } = await setup();
    await expect(duro.enqueueMany(job, [[1, "a"]])).rejects.toThrow(InvalidArgumentError);
    await expect(duro.enqueueMany(job.with({ queueName: "nope" }), [[1, "a"]])).rejects.toThrow(InvalidArgumentError);
    await expect(duro.enqueueMany(job.with({ queueName: "q", workflowId: "same" }), [[1, "a"], [2, "b"]])).rejects.toThrow(InvalidArgumentError);
    await expect(duro.enqueueMany(job.with({ queueName: "q" }), [1, 2] as never)).rejects.toThrow(InvalidArgumentError);
    await expect(duro.enqueueMany(job.with({ queueName: "q", priority: 0 }), [[1, "a"]])).rejects.toThrow(InvalidArgumentError);
    expect(await count()).toBe(0);
  });

  it("recognizes its own rows when a batch is written again after a lost reply, and runs each once", async () => {
    const { duro, job, release, seen, count } = await setup();
    const store = duro.engine.store;
    const write = store.write.bind(store);
    // The commit went through but its reply was lost: the store writes the same batch again.
    store.write = async (batch, options) => {
      await write(batch, options);
      return write(batch, options);
    };
    const handles = await duro.enqueueMany(job.with({ queueName: "q" }), [[1, "a"], [2, "b"], [3, "c"]]);
    store.write = write;
    release.open();
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["a1", "b2", "c3"]);
    expect(await count()).toBe(3);
    expect(seen).toHaveLength(3);
  });

  it("inside a workflow is one recorded operation: children <parent>-<N>-<i>, enqueued once however often the parent replays", async () => {
    const { duro, job, release } = await setup();
    const go = gate();
    const parent = duro.registerWorkflow("parent", async () => {
      const handles = await duro.enqueueMany(job.with({ queueName: "q" }), [[1, "a"], [2, "b"]]);
      await duro.runStep(() => go.promise, { name: "wait" });
      return Promise.all(handles.map((h) => h.getResult()));
    });
    const handle = await duro.startWorkflow(parent.with({ workflowId: "P" }));
    await waitFor(async () => (await duro.listWorkflows({ parentWorkflowId: "P" })).length === 2, 5_000, "the children");
    await duro.cancelWorkflow("P");
    go.open();
    await duro.resumeWorkflow("P");
    release.open();
    expect(await handle.getResult()).toEqual(["a1", "b2"]);
    const children = await duro.listWorkflows({ parentWorkflowId: "P" });
    expect(children.map((c) => c.workflowId)).toEqual(["P-1-1", "P-1-2"]);
    const [op] = await duro.listWorkflowSteps("P");
    expect(op).toMatchObject({ functionId: 1, functionName: "job", output: ["P-1-1", "P-1-2"] });
  });

  it("enqueues a delayed batch as DELAYED, then runs it", async () => {
    const { duro, job, release } = await setup();
    release.open();
    const handles = await duro.enqueueMany(job.with({ queueName: "q", delaySeconds: 0.3 }), [[1, "a"], [2, "b"]]);
    for (const h of handles) expect((await h.getStatus())!.status).toBe("DELAYED");
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["a1", "b2"]);
  });
  it("awaiting many queued handles at once reads their rows in one query, then each gets its own result", async () => {
    const { duro, job, release } = await setup();
    release.open();
    const handles = await duro.enqueueMany(job.with({ queueName: "q", delaySeconds: 600 }), Array.from({ length: 200 }, (_, i) => [i, "d"] as [number, string]));
    const store = duro.engine.store;
    const list = store.listWorkflows.bind(store);
    const reads: number[] = [];
    store.listWorkflows = async (filter) => {
      if (filter.workflowIds) reads.push(filter.workflowIds.length);
      return list(filter);
    };
    const results = Promise.all(handles.map((h) => h.getResult()));
    await waitFor(() => reads.reduce((a, b) => a + b, 0) >= 200, 5000, "every handle's first look");
    expect(reads).toEqual([200]);
    for (const h of handles) await duro.setWorkflowDelay(h.workflowId, { delaySeconds: 0 });
    expect(await results).toEqual(handles.map((_, i) => `d${i}`));
  });
});
