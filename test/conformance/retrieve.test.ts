import { describe, expect, it } from "vitest";
import { WorkflowNotFoundError } from "../../src/index.js";
import { backends, useDuro } from "../helpers.js";

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
  });
});
