/**
 * A database that fails reads, after its retries: a durable read in a workflow (getResult,
 * getStatus, waitFirst, getAllEvents, readStream) is interrupted, not recorded, and the workflow
 * runs again from its checkpoints. Before, the DatabaseError was recorded as the read's outcome,
 * and every later run replayed it and stayed PENDING.
 *
 * A database that answers reads but refuses writes (a full disk): each resume of an interrupted
 * workflow loads it, runs its next step body, and fails to record it. The tries must back off
 * across those relapses, as they do while the database cannot be reached at all, and the outage
 * be told once: before, each relapse started again at 100 ms, and a step body ran ~8 times a
 * second for as long as the disk stayed full.
 */
import { describe, expect, it } from "vitest";
import { DatabaseError } from "../../src/index.js";
import { backends, quietLogger, sleep, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("a durable read that fails for want of the database interrupts its run, which reads again once it answers", async () => {
    const writer = t.duro({ executorId: "writer" });
    const done = writer.registerWorkflow("done", async () => {
      await writer.setEvent("e", "set");
      await writer.writeStream("s", "item");
      await writer.closeStream("s");
      return "result";
    });
    await writer.launch();
    await (await writer.startWorkflow(done.with({ workflowId: "x1" }))).getResult();

    const warnings: string[] = [];
    const duro = t.duro({ logger: { ...quietLogger, warn: (message: string) => void warnings.push(message) } });
    const reader = duro.registerWorkflow("reader", async () => {
      const result = await duro.getResult("x1");
      const status = (await duro.getWorkflowStatus("x1"))!.status;
      const first = await duro.waitFirst([await duro.retrieveWorkflow("x1")]);
      const events = await duro.getAllEvents("x1");
      const items: unknown[] = [];
      for await (const item of duro.readStream("x1", "s")) items.push(item);
      let event: unknown;
      try {
        event = await duro.getEvent("x1", "e", 0);
      } catch {
        event = "the fallback: the database failed, not the call"; // never: the run stops instead (last, so no later interruption hides it)
      }
      return { result, status, first: first.workflowId, events, event, items };
    });
    await duro.launch();
    // Each read of x1 fails once, as after an outage longer than the retries.
    const store = duro.engine.store;
    const failed = new Set<string>();
    const once = <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>, about: (...args: A) => boolean) => async (...args: A) => {
      const call = `${name} ${JSON.stringify(args)}`;
      if (about(...args) && !failed.has(call)) {
        failed.add(call);
        throw new DatabaseError(`Lost the connection (simulated, ${name}).`);
      }
      return fn(...args);
    };
    // getResult, getStatus and waitFirst read x1 by listing, each its own way.
    store.listWorkflows = once("listWorkflows", store.listWorkflows.bind(store), (filter) => filter.workflowIds?.includes("x1") === true);
    store.getAllEvents = once("getAllEvents", store.getAllEvents.bind(store), (id) => id === "x1");
    store.readStream = once("readStream", store.readStream.bind(store), (id) => id === "x1");
    store.getEvent = once("getEvent", store.getEvent.bind(store), (id) => id === "x1");
    const handle = await duro.startWorkflow(reader.with({ workflowId: "reader" }));
    expect(await handle.getResult()).toEqual({ result: "result", status: "SUCCESS", first: "x1", events: { e: "set" }, event: "set", items: ["item"] });
    expect([...failed].map((call) => call.split(" ")[0])).toEqual(["listWorkflows", "listWorkflows", "listWorkflows", "getAllEvents", "readStream", "getEvent"]);
    const steps = await duro.listWorkflowSteps("reader");
    expect(steps.filter((s) => s.error !== null)).toEqual([]);
    expect(warnings.some((w) => w.includes("Workflow reader was interrupted"))).toBe(true);
  });

  it("a DatabaseError a step throws is its outcome: the workflow that lets it escape ends in ERROR, not in endless runs", async () => {
    const duro = t.duro();
    let runs = 0;
    const step = duro.registerStep("viaClient", async () => {
      throw new DatabaseError("A DuroClient's call failed (simulated).");
    });
    const wf = duro.registerWorkflow("wf", async () => {
      runs++;
      await step();
    });
    // A parent awaits a child that ends with it.
    let parentRuns = 0;
    const parent = duro.registerWorkflow("parent", async () => {
      parentRuns++;
      const child = await duro.startWorkflow(wf.with({ workflowId: "w2" }));
      const { done } = await duro.wait([child]);
      try {
        return await done[0].getResult();
      } catch (error) {
        return `caught ${(error as Error).name}`;
      }
    });
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: "w1" }));
    await expect(handle.getResult()).rejects.toThrow("A DuroClient's call failed (simulated).");
    expect((await duro.getWorkflowStatus("w1"))!.status).toBe("ERROR");
    expect(runs).toBe(1);
    // So is a child's that ended with it, to its parent: getResult and wait hand it on.
    expect(await (await duro.startWorkflow(parent)).getResult()).toBe("caught DatabaseError");
    expect(parentRuns).toBe(1);
  });

  it("a step whose record keeps being refused runs again with growing pauses, and the outage is told once", async () => {
    const warnings: string[] = [];
    const duro = t.duro({ logger: { ...quietLogger, warn: (message: string) => void warnings.push(message) } });
    let bodies = 0;
    const charge = duro.registerStep("charge", async () => ++bodies);
    const wf = duro.registerWorkflow("pay", async () => charge());
    await duro.launch();
    const store = duro.engine.store;
    const write = store.write.bind(store);
    let full = true;
    store.write = async (batch, options) => {
      if (full && batch.some((w) => w.kind === "recordOperation")) throw new DatabaseError("The disk is full (simulated).");
      return write(batch, options);
    };
    const handle = await duro.startWorkflow(wf);
    await waitFor(() => bodies >= 1, 5000, "the first run of the step");
    await sleep(3000);
    // 100, 200, 400, 800 and 1,600 ms between tries: about five in three seconds, not 25.
    expect(bodies).toBeLessThanOrEqual(8);
    expect(warnings.filter((w) => w.includes("was interrupted"))).toHaveLength(1);
    full = false;
    expect(await handle.getResult()).toBe(bodies);
  });
});
