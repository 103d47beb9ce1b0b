import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { DuroClient, InvalidArgumentError, WorkflowNotFoundError, WorkflowQueue } from "../../src/index.js";
import { backends, quietLogger, useDuro } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("retrieveWorkflow", () => {
    it("refuses an unknown ID, unless told the workflow is yet to be started — then its result is awaited", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("later", async (x: number) => x * 2);
      await duro.launch();
      await expect(duro.retrieveWorkflow("not-yet")).rejects.toBeInstanceOf(WorkflowNotFoundError);
      const handle = await duro.retrieveWorkflow<number>("not-yet", { existingWorkflow: false });
      const result = handle.getResult();
      await duro.startWorkflow(wf.with({ workflowId: "not-yet" }), 21);
      expect(await result).toBe(42);
    });

    it("takes existingWorkflow positionally too, as the reference does; anything but a boolean is refused", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("later", async (x: number) => x * 2);
      await duro.launch();
      await expect(duro.retrieveWorkflow("not-yet", true)).rejects.toBeInstanceOf(WorkflowNotFoundError);
      // A misspelt key or an object that is not a plain options object is refused too, not ignored.
      for (const bad of ["no", 0, { existingWorkflow: "no" }, { existingWorkfow: false }, new Date()]) {
        await expect(duro.retrieveWorkflow("not-yet", bad as never)).rejects.toBeInstanceOf(InvalidArgumentError);
      }
      const handle = await duro.retrieveWorkflow<number>("not-yet", false);
      const result = handle.getResult();
      await duro.startWorkflow(wf.with({ workflowId: "not-yet" }), 21);
      expect(await result).toBe(42);
      const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
      expect(await (await client.retrieveWorkflow<number>("not-yet", true)).getResult()).toBe(42);
      const pending = (await client.retrieveWorkflow<number>("not-yet-either", false)).getResult();
      await duro.startWorkflow(wf.with({ workflowId: "not-yet-either" }), 2);
      expect(await pending).toBe(4);
      await client.close();
    });

    it("awaits a workflow yet to be started by another instance, which enqueues it in a batch", async () => {
      const waiter = t.duro({ executorId: "waiter" });
      waiter.registerWorkflow("later", async (x: number) => x * 2);
      const starter = t.duro({ executorId: "starter" });
      const wf = starter.registerWorkflow("later", async (x: number) => x * 2);
      new WorkflowQueue(starter, "q");
      await waiter.launch();
      await starter.launch();
      const handle = await waiter.retrieveWorkflow<number>("batch-later", { existingWorkflow: false });
      const result = handle.getResult();
      await starter.enqueueMany(wf.with({ queueName: "q", workflowId: "batch-later" }), [[4]]);
      expect(await result).toBe(8);
    });
  });

  describe("getResult", () => {
    it("a process keeps no large results once their workflows finish: 60 of 1 MiB leave its heap as it was, and each is still there to ask for", async () => {
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc") as () => void;
      const duro = t.duro();
      const big = duro.registerWorkflow("big", async (i: number) => String(i).padEnd(2 ** 20, "x"));
      await duro.launch();
      await big(-1);
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 60; i++) expect((await big(i)).length).toBe(2 ** 20);
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      expect(grown, `${(grown / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(16 * 2 ** 20); // every result kept: 60 MiB
      const last = (await duro.listWorkflows({ sortDesc: true, limit: 1 }))[0].workflowId;
      expect(await duro.getResult(last)).toBe("59".padEnd(2 ** 20, "x"));
    });
  });
});
