/** Child workflows: deterministic IDs, parentWorkflowId, recorded start and result. */
import { describe, expect, it } from "vitest";
import { WorkflowQueue } from "../../src/index.js";
import { backends, crash, gate, useDuro, waitFor } from "../helpers.js";

class ChildFailed extends Error {
  constructor(
    message: string,
    readonly childCode: number,
  ) {
    super(message);
  }
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("child workflows", () => {
    it("a child started at operation N of parent P gets the ID P-N and parentWorkflowId P", async () => {
      const duro = t.duro();
      const step = duro.registerStep("step", async () => "s");
      const child = duro.registerWorkflow("child", async (x: number) => ({ child: duro.workflowId, x }));
      const parent = duro.registerWorkflow("parent", async () => {
        await step(); // operation 1
        const handle = await duro.startWorkflow(child, 5); // operation 2
        return { childId: handle.workflowId, result: await handle.getResult() };
      });
      await duro.launch();
      const result = await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult();
      expect(result).toEqual({ childId: "P-2", result: { child: "P-2", x: 5 } });
      const status = (await duro.getWorkflowStatus("P-2"))!;
      expect(status).toMatchObject({ workflowName: "child", parentWorkflowId: "P", status: "SUCCESS", input: [5] });
      expect((await duro.getWorkflowStatus("P"))!.parentWorkflowId).toBeNull();
    });

    it("the child's start and its result are recorded operations of the parent", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async () => "child-output");
      const parent = duro.registerWorkflow("parent", async () => {
        const handle = await duro.startWorkflow(child);
        return handle.getResult();
      });
      await duro.launch();
      await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult();
      const steps = await duro.listWorkflowSteps("P");
      expect(steps[0]).toMatchObject({ functionId: 1, functionName: "child", childWorkflowId: "P-1" });
      expect(steps[1]).toMatchObject({ functionId: 2, functionName: "duro.getResult", childWorkflowId: "P-1" });
      expect(steps[1].output).toBe("child-output");
      expect(steps).toHaveLength(2);
    });

    it("calling a child workflow directly inside a parent starts it as a child and returns its result", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async (n: number) => n + 1);
      const parent = duro.registerWorkflow("parent", async () => [await child(1), await child(10)]);
      await duro.launch();
      expect(await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult()).toEqual([2, 11]);
      const children = await duro.listWorkflows({ parentWorkflowId: "P" });
      expect(children.map((c) => c.workflowId)).toHaveLength(2);
      expect(children.every((c) => c.workflowId.startsWith("P-") && c.workflowName === "child")).toBe(true);
      expect(children.map((c) => c.output).sort()).toEqual([11, 2].sort());
    });

    it("a child given an explicit workflowId keeps it and still records its parent", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async () => duro.workflowId);
      const parent = duro.registerWorkflow("parent", async () => (await duro.startWorkflow(child.with({ workflowId: "named-child" }))).getResult());
      await duro.launch();
      expect(await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult()).toBe("named-child");
      expect((await duro.getWorkflowStatus("named-child"))!.parentWorkflowId).toBe("P");
      const [start] = await duro.listWorkflowSteps("P");
      expect(start.childWorkflowId).toBe("named-child");
    });

    it("a child start refused (its ID is another workflow's, or its deduplication ID is held) is recorded as refused: a replay throws it again", async () => {
      const duro = t.duro();
      const other = duro.registerWorkflow("other", async () => "other-output");
      const held = gate();
      const kid = duro.registerWorkflow("kid", async () => held.promise);
      new WorkflowQueue(duro, "q");
      const starts = {
        direct: () => duro.startWorkflow(kid.with({ workflowId: "taken" })),
        queued: () => duro.startWorkflow(kid.with({ workflowId: "taken", queueName: "q" })),
        batch: () => duro.enqueueMany(kid.with({ workflowId: "taken", queueName: "q" }), [[]]),
        batchDedup: () => duro.enqueueMany(kid.with({ queueName: "q", deduplicationId: "d" }), [[]]),
      };
      type How = keyof typeof starts;
      const parent = duro.registerWorkflow("parent", async (how: How) => {
        try {
          await starts[how]();
          return "started";
        } catch (error) {
          return `refused: ${(error as Error).constructor.name}`;
        }
      });
      await duro.launch();
      await other.with({ workflowId: "taken" })();
      const holder = await duro.startWorkflow(kid.with({ queueName: "q", deduplicationId: "d" }));
      const refusals: Record<How, string> = {
        direct: "WorkflowConflictError", queued: "WorkflowConflictError", batch: "WorkflowConflictError", batchDedup: "DuplicateWorkflowError",
      };
      for (const how of Object.keys(starts) as How[]) {
        const expected = `refused: ${refusals[how]}`;
        expect(await parent.with({ workflowId: `parent-${how}` })(how)).toBe(expected);
        const [start, ...rest] = await duro.listWorkflowSteps(`parent-${how}`);
        expect(rest).toEqual([]);
        expect(start).toMatchObject({ functionId: 1, functionName: "kid", childWorkflowId: null });
        expect((start.error as Error).constructor.name).toBe(refusals[how]);
        // A replay of the start (a fork after it) throws the refusal again, even once the deduplication ID is free.
        if (how === "batchDedup") {
          held.open();
          await holder.getResult();
        }
        expect(await (await duro.forkWorkflow(`parent-${how}`, 2)).getResult()).toBe(expected);
      }
      expect(await duro.getWorkflowStatus("taken")).toMatchObject({ workflowName: "other", parentWorkflowId: null, output: "other-output" });
      expect(await duro.listWorkflows({ name: "kid" })).toHaveLength(1);
    });

    it("a child's error reaches the parent as itself", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async () => {
        throw new ChildFailed("child broke", 17);
      });
      const parent = duro.registerWorkflow("parent", async () => {
        try {
          await child();
          return null;
        } catch (error) {
          return { isChildFailed: error instanceof ChildFailed, message: (error as Error).message, code: (error as ChildFailed).childCode };
        }
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(parent)).getResult()).toEqual({ isChildFailed: true, message: "child broke", code: 17 });
    });

    it("children inherit the parent's authenticated user", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async () => duro.authenticatedUser);
      const parent = duro.registerWorkflow("parent", async () => child());
      await duro.launch();
      expect(await (await duro.startWorkflow(parent.with({ workflowId: "P", authenticatedUser: "carol" }))).getResult()).toBe("carol");
      expect((await duro.getWorkflowStatus("P-1"))!.authenticatedUser).toBe("carol");
    });

    it("a recovered parent reuses its child and its recorded result: the child runs once", async () => {
      let childRuns = 0;
      let hang = true;
      const hold = gate();
      const build = (duro: ReturnType<typeof t.duro>) => {
        const child = duro.registerWorkflow("child", async () => ++childRuns);
        const wait = duro.registerStep("wait", async () => {
          if (hang) await hold.promise; // the first executor "dies" here
        });
        const parent = duro.registerWorkflow("parent", async () => {
          const handle = await duro.startWorkflow(child);
          const value = await handle.getResult();
          await wait();
          return { childId: handle.workflowId, value };
        });
        return parent;
      };
      const first = t.duro({ executorId: "e1" });
      const parent1 = build(first);
      await first.launch();
      await first.startWorkflow(parent1.with({ workflowId: "P" }));
      // The parent has recorded the child's start and result once it sits in the hanging step.
      await waitFor(async () => (await first.listWorkflowSteps("P")).length >= 2);
      await crash(first);

      hang = false;
      const second = t.duro({ executorId: "e1" });
      build(second);
      await second.launch();
      expect(await second.getResult("P")).toEqual({ childId: "P-1", value: 1 });
      expect(childRuns).toBe(1);
      expect(await second.listWorkflows({ parentWorkflowId: "P" })).toHaveLength(1);
    });
  });
});
