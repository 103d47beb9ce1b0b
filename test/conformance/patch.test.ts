/**
 * patch / deprecatePatch: changing a deployed workflow. A run recorded before the patch replays
 * the old path under the new code; new runs take the patched path; deprecatePatch retires the
 * marker while runs that recorded it still replay.
 *
 * Every instance here uses the same appVersion on purpose: the point is new code recovering
 * old runs.
 */
import { describe, expect, it } from "vitest";
import { NonDeterminismError, NotInWorkflowError, type Duro } from "../../src/index.js";
import { backends, crash, gate, useDuro, waitFor } from "../helpers.js";

type Version = "v1" | "v2" | "v3";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  /** One workflow, "order", in three versions of its code; runs are counted per step. */
  function app() {
    const runs = { a: 0, old: 0, new: 0 };
    const hang = { on: true, entered: 0 };
    const never = gate();
    const patchResults: boolean[] = [];
    const build = (duro: Duro, version: Version) => {
      const a = duro.registerStep("a", async () => (runs.a++, "A"));
      const oldStep = duro.registerStep("oldStep", async () => (runs.old++, "old"));
      const newStep = duro.registerStep("newStep", async () => (runs.new++, "new"));
      const stop = duro.registerStep("hang", async () => {
        hang.entered++;
        if (hang.on) await never.promise;
      });
      const bodies: Record<Version, () => Promise<string>> = {
        v1: async () => {
          const first = await a();
          const second = await oldStep();
          await stop();
          return `${first}+${second}`;
        },
        v2: async () => {
          const first = await a();
          const patched = await duro.patch("use-new-step");
          patchResults.push(patched);
          const second = patched ? await newStep() : await oldStep();
          await stop();
          return `${first}+${second}`;
        },
        v3: async () => {
          const first = await a();
          patchResults.push(await duro.deprecatePatch("use-new-step"));
          const second = await newStep();
          await stop();
          return `${first}+${second}`;
        },
      };
      return duro.registerWorkflow("order", bodies[version]);
    };
    /** Starts "order" as `id` under `version` and crashes that executor at the hang step. */
    const startAndCrash = async (id: string, version: Version) => {
      const duro = t.duro({ executorId: "e1", appVersion: "same" });
      const wf = build(duro, version);
      await duro.launch();
      const before = hang.entered;
      await duro.startWorkflow(wf.with({ workflowId: id }));
      await waitFor(() => hang.entered > before);
      await crash(duro);
    };
    /** Recovers under `version` and returns the instance. */
    const recoverUnder = async (version: Version) => {
      hang.on = false;
      const duro = t.duro({ executorId: "e1", appVersion: "same" });
      const wf = build(duro, version);
      await duro.launch();
      return { duro, wf };
    };
    return { runs, patchResults, startAndCrash, recoverUnder };
  }

  describe("patch", () => {
    it("a run recorded before the patch replays the old path under the patched code", async () => {
      const { runs, patchResults, startAndCrash, recoverUnder } = app();
      await startAndCrash("old-run", "v1");
      const { duro } = await recoverUnder("v2");
      expect(await duro.getResult("old-run")).toBe("A+old");
      expect(patchResults).toEqual([false]);
      expect(runs).toEqual({ a: 1, old: 1, new: 0 });
      const steps = await duro.listWorkflowSteps("old-run");
      expect(steps.map((s) => s.functionName)).toEqual(["a", "oldStep", "hang"]);
    });

    it("a new run under the patched code takes the patched path and records the patch", async () => {
      const { runs, patchResults, recoverUnder } = app();
      const { duro, wf } = await recoverUnder("v2");
      const handle = await duro.startWorkflow(wf.with({ workflowId: "new-run" }));
      expect(await handle.getResult()).toBe("A+new");
      expect(patchResults).toEqual([true]);
      expect(runs).toEqual({ a: 1, old: 0, new: 1 });
      const steps = await duro.listWorkflowSteps("new-run");
      expect(steps).toHaveLength(4); // a, the patch marker, newStep, hang
      expect(steps[0].functionName).toBe("a");
      expect(steps[1].functionName).toContain("use-new-step");
      expect(steps.slice(2).map((s) => s.functionName)).toEqual(["newStep", "hang"]);
    });

    it("a run that recorded the patch replays the patched path", async () => {
      const { runs, patchResults, startAndCrash, recoverUnder } = app();
      await startAndCrash("patched-run", "v2");
      const { duro } = await recoverUnder("v2");
      expect(await duro.getResult("patched-run")).toBe("A+new");
      expect(patchResults).toEqual([true, true]);
      expect(runs).toEqual({ a: 1, old: 0, new: 1 });
    });

    it("patch outside a workflow throws NotInWorkflowError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.patch("p")).rejects.toBeInstanceOf(NotInWorkflowError);
      await expect(duro.deprecatePatch("p")).rejects.toBeInstanceOf(NotInWorkflowError);
    });
  });

  describe("deprecatePatch", () => {
    it("a run that recorded the patch still replays under code that deprecates it", async () => {
      const { runs, patchResults, startAndCrash, recoverUnder } = app();
      await startAndCrash("patched-run", "v2");
      const { duro } = await recoverUnder("v3");
      expect(await duro.getResult("patched-run")).toBe("A+new");
      expect(patchResults).toEqual([true, true]);
      expect(runs).toEqual({ a: 1, old: 0, new: 1 });
    });

    it("a run from before the patch cannot replay under code that deprecates it (NonDeterminismError)", async () => {
      const { runs, startAndCrash, recoverUnder } = app();
      await startAndCrash("old-run", "v1");
      const { duro } = await recoverUnder("v3");
      await expect(duro.getResult("old-run")).rejects.toBeInstanceOf(NonDeterminismError);
      expect(runs.new).toBe(0);
    });

    it("new runs under code that deprecates the patch record no marker", async () => {
      const { patchResults, recoverUnder } = app();
      const { duro, wf } = await recoverUnder("v3");
      const handle = await duro.startWorkflow(wf.with({ workflowId: "fresh" }));
      expect(await handle.getResult()).toBe("A+new");
      expect(patchResults).toEqual([true]);
      const steps = await duro.listWorkflowSteps("fresh");
      expect(steps.map((s) => [s.functionId, s.functionName])).toEqual([
        [1, "a"],
        [2, "newStep"],
        [3, "hang"],
      ]);
    });
  });
});
