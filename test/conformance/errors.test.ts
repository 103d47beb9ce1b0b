/** The error classes of SPEC.md: exported, part of one hierarchy, named after themselves. */
import { describe, expect, it } from "vitest";
import * as duroApi from "../../src/index.js";
import {
  AwaitedWorkflowCancelledError, DuplicateWorkflowError, DuroError, InvalidArgumentError, MaxRecoveryAttemptsExceededError,
  MaxStepRetriesExceededError, NonDeterminismError, NotInWorkflowError, SerializationError, StreamTimeoutError, WorkflowConflictError,
  WorkflowNotFoundError,
} from "../../src/index.js";
import { backends, rejectionOf, useDuro } from "../helpers.js";

const SPEC_ERRORS = [
  "WorkflowConflictError",
  "NonDeterminismError",
  "NotInWorkflowError",
  "WorkflowNotFoundError",
  "MaxStepRetriesExceededError",
  "AwaitedWorkflowCancelledError",
  "MaxRecoveryAttemptsExceededError",
  "DuplicateWorkflowError",
  "StreamTimeoutError",
  "SerializationError",
  "InvalidArgumentError",
] as const;

/** One instance of each, built through its public constructor. */
const samples: Record<(typeof SPEC_ERRORS)[number], Error> = {
  WorkflowConflictError: new WorkflowConflictError("id", "a", "b"),
  NonDeterminismError: new NonDeterminismError("id", 1, "recorded", "expected"),
  NotInWorkflowError: new NotInWorkflowError("recv"),
  WorkflowNotFoundError: new WorkflowNotFoundError("id"),
  MaxStepRetriesExceededError: new MaxStepRetriesExceededError("step", 2, [new Error("1"), new Error("2")]),
  AwaitedWorkflowCancelledError: new AwaitedWorkflowCancelledError("id"),
  MaxRecoveryAttemptsExceededError: new MaxRecoveryAttemptsExceededError("id", 3),
  DuplicateWorkflowError: new DuplicateWorkflowError("queue", "dedup"),
  StreamTimeoutError: new StreamTimeoutError("id", "key", 1),
  SerializationError: new SerializationError("cannot serialize"),
  InvalidArgumentError: new InvalidArgumentError("bad argument"),
};

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("error classes", () => {
    it("DuroError is exported and is an Error", () => {
      expect(typeof duroApi.DuroError).toBe("function");
      expect(new DuroError("x")).toBeInstanceOf(Error);
      expect(new DuroError("x").name).toBe("DuroError");
    });

    it.each(SPEC_ERRORS)("%s is exported, is a DuroError and an Error, and is named after its class", (name) => {
      const exported = (duroApi as Record<string, unknown>)[name];
      expect(typeof exported).toBe("function");
      const error = samples[name];
      expect(error).toBeInstanceOf(exported as new () => Error);
      expect(error).toBeInstanceOf(DuroError);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(name);
      expect((exported as { name: string }).name).toBe(name);
      expect(error.message.length).toBeGreaterThan(0);
      expect(typeof error.stack).toBe("string");
    });

    it("MaxStepRetriesExceededError carries one error per attempt", () => {
      const attempts = [new Error("first"), new Error("second"), new Error("third")];
      const error = new MaxStepRetriesExceededError("step", 3, attempts);
      expect(error.errors).toEqual(attempts);
    });
  });

  describe("errors thrown by duro", () => {
    it("are DuroErrors of the documented class, with a message that names the problem", async () => {
      const duro = t.duro();
      const one = duro.registerWorkflow("one", async () => 1);
      const two = duro.registerWorkflow("two", async () => 2);
      const takes = duro.registerWorkflow("takes", async (_x: unknown) => 3);
      await duro.launch();
      await duro.startWorkflow(one.with({ workflowId: "id-1" }));
      const caught = await Promise.all([
        rejectionOf(duro.startWorkflow(two.with({ workflowId: "id-1" }))),
        rejectionOf(duro.retrieveWorkflow("missing-id")),
        rejectionOf(duro.recv("t", 0.1)),
        rejectionOf(duro.waitFirst([])),
        rejectionOf(duro.startWorkflow(takes, () => 1)),
      ]);
      const [conflict, notFound, notInWorkflow, invalid, serialization] = caught;
      expect(conflict).toBeInstanceOf(WorkflowConflictError);
      expect(notFound).toBeInstanceOf(WorkflowNotFoundError);
      expect(notFound.message).toContain("missing-id");
      expect(notInWorkflow).toBeInstanceOf(NotInWorkflowError);
      expect(notInWorkflow.message).toContain("recv");
      expect(invalid).toBeInstanceOf(InvalidArgumentError);
      expect(serialization).toBeInstanceOf(SerializationError);
      for (const error of caught) {
        expect(error).toBeInstanceOf(DuroError);
        expect(error.name).toBe(error.constructor.name);
      }
    });

    it("keep their class when they are a workflow's recorded error, read back by another instance", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("rethrows", async () => {
        await a.recv("t", 0.01);
        throw new NonDeterminismError("w", 1, "x", "y");
      });
      await a.launch();
      const handle = await a.startWorkflow(wf);
      await handle.getResult().catch(() => undefined);
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const error = await rejectionOf(b.getResult(handle.workflowId));
      expect(error).toBeInstanceOf(NonDeterminismError);
      expect(error).toBeInstanceOf(DuroError);
      expect(error.name).toBe("NonDeterminismError");
      expect(error.functionId).toBe(1);
    });
  });

  describe("values thrown that are not Errors", () => {
    it("reach getResult callers as themselves, in this process and another, and a step replays them as they were", async () => {
      const a = t.duro({ executorId: "a" });
      let runs = 0;
      const picky = a.registerStep("picky", async () => {
        runs++;
        throw { code: 42, reason: "declined" };
      });
      const wf = a.registerWorkflow("throwsValues", async () => {
        const caught = await picky().catch((thrown: unknown) => thrown);
        await a.setEvent("caught", caught);
        throw "out of stock";
      });
      await a.launch();
      const handle = await a.startWorkflow(wf.with({ workflowId: "tv" }));
      expect(await rejectionOf(handle.getResult())).toBe("out of stock");
      expect(await a.getEvent("tv", "caught")).toEqual({ code: 42, reason: "declined" });
      const b = t.duro({ executorId: "b" });
      await b.launch();
      expect(await rejectionOf(b.getResult("tv"))).toBe("out of stock");
      // Listings show them as Errors.
      expect((await b.getWorkflowStatus("tv"))!.error).toBeInstanceOf(Error);
      expect((await b.listWorkflowSteps("tv"))[0].error).toBeInstanceOf(Error);
      // A fork past the step replays the recorded object, not an Error made of it.
      const fork = await a.forkWorkflow("tv", 2, { newWorkflowId: "tv-fork" });
      expect(await rejectionOf(fork.getResult())).toBe("out of stock");
      expect(await a.getEvent("tv-fork", "caught")).toEqual({ code: 42, reason: "declined" });
      expect(runs).toBe(1);
    });
  });
});
