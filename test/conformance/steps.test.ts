/** Steps: numbering, recorded outputs and errors, retries, step context, nesting, inline steps. */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, MaxStepRetriesExceededError } from "../../src/index.js";
import { backends, gate, rejectionOf, since, useDuro } from "../helpers.js";

class FlakyError extends Error {
  constructor(
    message: string,
    readonly attempt: number,
  ) {
    super(message);
  }
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("numbering", () => {
    it("steps are numbered 1, 2, 3 in call order and their outputs are recorded", async () => {
      const duro = t.duro();
      const a = duro.registerStep("a", async () => "A");
      const b = duro.registerStep("b", async (x: number) => x * 10);
      const c = duro.registerStep("c", async () => ({ ok: true }));
      const wf = duro.registerWorkflow("numbered", async () => [await a(), await b(4), await c()]);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual(["A", 40, { ok: true }]);
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps.map((s) => [s.functionId, s.functionName, s.output])).toEqual([
        [1, "a", "A"],
        [2, "b", 40],
        [3, "c", { ok: true }],
      ]);
    });

    it("a step the workflow returned without awaiting is still recorded when it finishes, with a warning, and a fork does not run it again", async () => {
      const warnings: string[] = [];
      const logger = { debug() {}, info() {}, warn: (message: string) => void warnings.push(message), error() {} };
      const duro = t.duro({ logger });
      const release = gate();
      let slowRuns = 0;
      const slow = duro.registerStep("slow", async () => {
        await release.promise;
        return ++slowRuns;
      });
      const failing = duro.registerStep("failing", async () => {
        await release.promise;
        throw new Error("late failure");
      });
      const done = duro.registerStep("done", async () => "done");
      let late: Promise<unknown>[] = [];
      const wf = duro.registerWorkflow("forgets", async () => {
        late = [slow(), failing().catch((error: Error) => error.message)]; // neither awaited by the workflow
        return done();
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "F" }));
      expect(await handle.getResult()).toBe("done");
      release.open();
      // Their callers get their outcomes, as if the workflow were still running.
      expect(await Promise.all(late)).toEqual([1, "late failure"]);
      const steps = await duro.listWorkflowSteps("F");
      expect(steps.map((s) => [s.functionId, s.functionName, s.output, s.error?.message ?? null])).toEqual([
        [1, "slow", 1, null],
        [2, "failing", null, "late failure"],
        [3, "done", "done", null],
      ]);
      expect(warnings.filter((w) => /finished after the workflow returned: it was not awaited/.test(w))).toHaveLength(2);
      const fork = await duro.forkWorkflow("F", 4);
      expect(await fork.getResult()).toBe("done");
      expect(slowRuns).toBe(1);
    });

    it("setEvent, writeStream and send the workflow returned without awaiting are recorded too, and resolve rather than reject", async () => {
      const warnings: string[] = [];
      const logger = { debug() {}, info() {}, warn: (message: string) => void warnings.push(message), error() {} };
      const duro = t.duro({ logger });
      const returned = gate();
      const inbox = duro.registerWorkflow("inbox", async () => duro.recv("late", 30));
      let late: Promise<unknown>[] = [];
      const wf = duro.registerWorkflow("forgetsWrites", async (to: string) => {
        const after = async (write: () => Promise<void>) => {
          await returned.promise;
          return write();
        };
        late = [after(() => duro.setEvent("k", "v")), after(() => duro.writeStream("s", 1)), after(() => duro.send(to, "hi", "late"))];
        return "done";
      });
      await duro.launch();
      const target = await duro.startWorkflow(inbox);
      const handle = await duro.startWorkflow(wf.with({ workflowId: "W" }), target.workflowId);
      expect(await handle.getResult()).toBe("done");
      returned.open();
      expect(await Promise.all(late)).toEqual([undefined, undefined, undefined]);
      expect(await duro.getEvent("W", "k", 0)).toBe("v");
      const values: unknown[] = [];
      for await (const value of duro.readStream("W", "s")) values.push(value);
      expect(values).toEqual([1]);
      expect(await target.getResult()).toBe("hi");
      expect((await duro.listWorkflowSteps("W")).map((s) => [s.functionId, s.functionName])).toEqual([
        [1, "duro.setEvent"],
        [2, "duro.writeStream"],
        [3, "duro.send"],
      ]);
      expect(warnings.filter((w) => /after the workflow returned: it was not awaited/.test(w))).toHaveLength(3);
    });

    it("steps started together with Promise.all are numbered in call order, not finish order", async () => {
      const duro = t.duro();
      const secondDone = gate();
      const thirdDone = gate();
      const first = duro.registerStep("first", async () => {
        await secondDone.promise;
        return 1;
      });
      const second = duro.registerStep("second", async () => {
        await thirdDone.promise;
        secondDone.open();
        return 2;
      });
      const third = duro.registerStep("third", async () => {
        thirdDone.open();
        return 3;
      });
      const wf = duro.registerWorkflow("parallel", async () => Promise.all([first(), second(), third()]));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual([1, 2, 3]);
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps.map((s) => [s.functionId, s.functionName, s.output])).toEqual([
        [1, "first", 1],
        [2, "second", 2],
        [3, "third", 3],
      ]);
      // "third" finished first, "first" last.
      expect(steps[2].completedAtEpochMs!).toBeLessThanOrEqual(steps[0].completedAtEpochMs!);
    });

    it("durable context calls are numbered operations too, in call order", async () => {
      const duro = t.duro();
      const s = duro.registerStep("s", async () => "s");
      const wf = duro.registerWorkflow("mixed", async () => {
        await s();
        await duro.now();
        await duro.randomUUID();
        await duro.setEvent("k", 1);
        await duro.sleep(0.01);
        await duro.getWorkflowStatus(duro.workflowId!);
        await s();
        return "ok";
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps.map((st) => st.functionId)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(steps[0].functionName).toBe("s");
      expect(steps[6].functionName).toBe("s");
      expect(new Set(steps.slice(1, 6).map((st) => st.functionName)).size).toBe(5); // five distinct kinds
      expect(steps[5].output).toMatchObject({ workflowId: handle.workflowId, status: "PENDING" }); // getWorkflowStatus, recorded
    });
  });

  describe("recorded errors", () => {
    it("a step's error is recorded and reaches the workflow as itself", async () => {
      const duro = t.duro();
      const boom = duro.registerStep("boom", async () => {
        throw new FlakyError("kaput", 0);
      });
      const wf = duro.registerWorkflow("catches", async () => {
        try {
          await boom();
          return "no error";
        } catch (error) {
          return { isFlaky: error instanceof FlakyError, message: (error as Error).message };
        }
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual({ isFlaky: true, message: "kaput" });
      const [step] = await duro.listWorkflowSteps(handle.workflowId);
      expect(step.functionName).toBe("boom");
      expect(step.error).toBeInstanceOf(FlakyError);
      expect(step.error!.message).toBe("kaput");
    });

    it("without retriesAllowed a failing step runs once and its own error propagates", async () => {
      const duro = t.duro();
      let calls = 0;
      const fails = duro.registerStep("fails", async () => {
        calls++;
        throw new Error("once only");
      });
      const wf = duro.registerWorkflow("noRetry", async () => fails());
      await duro.launch();
      const error = await rejectionOf((await duro.startWorkflow(wf)).getResult());
      expect(calls).toBe(1);
      expect(error).not.toBeInstanceOf(MaxStepRetriesExceededError);
      expect(error.message).toBe("once only");
    });
  });

  describe("retries", () => {
    it("a step with retries is retried with backoff until it succeeds", async () => {
      const duro = t.duro();
      const attempts: number[] = [];
      const flaky = duro.registerStep(
        "flaky",
        async () => {
          attempts.push(performance.now());
          if (attempts.length < 3) throw new FlakyError("not yet", attempts.length);
          return "finally";
        },
        { retriesAllowed: true, maxAttempts: 5, intervalSeconds: 0.2, backoffRate: 2 },
      );
      const wf = duro.registerWorkflow("retry", async () => flaky());
      await duro.launch();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("finally");
      expect(attempts).toHaveLength(3);
      const gap1 = attempts[1] - attempts[0];
      const gap2 = attempts[2] - attempts[1];
      expect(gap1).toBeGreaterThanOrEqual(190); // intervalSeconds
      expect(gap1).toBeLessThan(600);
      expect(gap2).toBeGreaterThanOrEqual(390); // intervalSeconds × backoffRate
      expect(gap2).toBeLessThan(800);
    });

    it("exhausted retries throw MaxStepRetriesExceededError with one error per attempt, and no wait after the last", async () => {
      const duro = t.duro();
      let calls = 0;
      const always = duro.registerStep(
        "always",
        async () => {
          calls++;
          throw new FlakyError(`attempt ${calls} failed`, calls);
        },
        { retriesAllowed: true, maxAttempts: 3, intervalSeconds: 0.2, backoffRate: 2 },
      );
      const wf = duro.registerWorkflow("exhaust", async () => always());
      await duro.launch();
      const start = performance.now();
      const handle = await duro.startWorkflow(wf);
      const error = await rejectionOf(handle.getResult());
      const elapsed = since(start);
      expect(calls).toBe(3);
      expect(error).toBeInstanceOf(MaxStepRetriesExceededError);
      expect(error.errors).toHaveLength(3);
      expect(error.errors.map((e: Error) => e.message)).toEqual(["attempt 1 failed", "attempt 2 failed", "attempt 3 failed"]);
      expect(error.errors[0]).toBeInstanceOf(FlakyError);
      // Waits 0.2 s + 0.4 s; a wait after the last attempt would add 0.8 s.
      expect(elapsed).toBeGreaterThanOrEqual(580);
      expect(elapsed).toBeLessThan(1200);

      // The recorded error keeps its class and attempts when read back from storage.
      const other = t.duro({ executorId: "reader" });
      await other.launch();
      const stored = await rejectionOf(other.getResult(handle.workflowId));
      expect(stored).toBeInstanceOf(MaxStepRetriesExceededError);
      expect(stored.errors).toHaveLength(3);
      expect(stored.errors[2].message).toBe("attempt 3 failed");
      const [step] = await other.listWorkflowSteps(handle.workflowId);
      expect(step.error).toBeInstanceOf(MaxStepRetriesExceededError);
    });

    it("stepStatus reports the step ID and the 0-based attempt while retrying", async () => {
      const duro = t.duro();
      const seen: unknown[] = [];
      const first = duro.registerStep("first", async () => "x");
      const retried = duro.registerStep(
        "retried",
        async () => {
          seen.push({ ...duro.stepStatus, stepId2: duro.stepId });
          if (seen.length < 3) throw new Error("again");
          return "done";
        },
        { retriesAllowed: true, maxAttempts: 4, intervalSeconds: 0.01 },
      );
      const wf = duro.registerWorkflow("status", async () => {
        await first();
        return retried();
      });
      await duro.launch();
      await (await duro.startWorkflow(wf)).getResult();
      expect(seen).toEqual([
        { stepId: 2, currentAttempt: 0, maxAttempts: 4, stepId2: 2 },
        { stepId: 2, currentAttempt: 1, maxAttempts: 4, stepId2: 2 },
        { stepId: 2, currentAttempt: 2, maxAttempts: 4, stepId2: 2 },
      ]);
    });

    it("invalid step options, or a step that is not a function, are refused with InvalidArgumentError", async () => {
      const duro = t.duro();
      expect(() => duro.registerStep("bad", async () => 1, { maxAttempts: 0 })).toThrow(InvalidArgumentError);
      expect(() => duro.registerStep("bad2", async () => 1, { intervalSeconds: -1 })).toThrow(InvalidArgumentError);
      expect(() => duro.registerStep("bad3", 5 as unknown as () => number)).toThrow(InvalidArgumentError);
    });
  });

  describe("step context", () => {
    it("inside a step: isInStep, stepId and stepStatus are set; outside they are not", async () => {
      const duro = t.duro();
      const inspect = duro.registerStep("inspect", async () => ({
        inStep: duro.isInStep(),
        inWorkflow: duro.isInWorkflow(),
        stepId: duro.stepId,
        stepStatus: duro.stepStatus,
        workflowId: duro.workflowId,
      }));
      const wf = duro.registerWorkflow("ctx", async () => {
        const before = { inStep: duro.isInStep(), stepId: duro.stepId, stepStatus: duro.stepStatus };
        const inside = await inspect();
        return { before, inside };
      });
      await duro.launch();
      const result = await (await duro.startWorkflow(wf.with({ workflowId: "sc-1" }))).getResult();
      expect(result.before).toEqual({ inStep: false, stepId: undefined, stepStatus: undefined });
      expect(result.inside.inStep).toBe(true);
      expect(result.inside.inWorkflow).toBe(true);
      expect(result.inside.stepId).toBe(1);
      expect(result.inside.stepStatus).toMatchObject({ stepId: 1 });
      expect(result.inside.workflowId).toBe("sc-1");
    });
  });

  describe("steps outside workflows and inside steps", () => {
    it("a step called outside a workflow just runs: no record, no retries", async () => {
      const duro = t.duro();
      let calls = 0;
      const plain = duro.registerStep("plain", async (x: number) => x + 1);
      const failing = duro.registerStep(
        "failing",
        async () => {
          calls++;
          throw new Error("plain failure");
        },
        { retriesAllowed: true, maxAttempts: 3, intervalSeconds: 0.01 },
      );
      await duro.launch();
      expect(await plain(1)).toBe(2);
      await expect(failing()).rejects.toThrow("plain failure");
      expect(calls).toBe(1);
      expect(await duro.listWorkflows()).toEqual([]);
    });

    it("a step called inside a step runs plainly and takes no function ID", async () => {
      const duro = t.duro();
      let innerRuns = 0;
      const inner = duro.registerStep("inner", async () => {
        innerRuns++;
        return { innerInStep: duro.isInStep() };
      });
      const outer = duro.registerStep("outer", async () => ({ ...(await inner()), outerStepId: duro.stepId }));
      const after = duro.registerStep("after", async () => duro.stepId);
      const wf = duro.registerWorkflow("nested", async () => ({ outer: await outer(), afterId: await after() }));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual({ outer: { innerInStep: true, outerStepId: 1 }, afterId: 2 });
      expect(innerRuns).toBe(1);
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps.map((s) => [s.functionId, s.functionName])).toEqual([
        [1, "outer"],
        [2, "after"],
      ]);
    });

    it("runStep runs an inline step, recorded under its name", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("inline", async () => {
        const a = await duro.runStep(async () => 7, { name: "seven" });
        const b = await duro.runStep(async () => duro.stepId);
        return [a, b];
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual([7, 2]);
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps).toHaveLength(2);
      expect(steps[0]).toMatchObject({ functionId: 1, functionName: "seven", output: 7 });
      expect(steps[1]).toMatchObject({ functionId: 2, output: 2 });
    });

    it("runStep retries with its options", async () => {
      const duro = t.duro();
      let calls = 0;
      const wf = duro.registerWorkflow("inlineRetry", async () =>
        duro.runStep(
          async () => {
            if (++calls < 2) throw new Error("first fails");
            return "second works";
          },
          { name: "flakyInline", retriesAllowed: true, intervalSeconds: 0.01 },
        ),
      );
      await duro.launch();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("second works");
      expect(calls).toBe(2);
    });

    it("runStep outside a workflow just runs the function", async () => {
      const duro = t.duro();
      await duro.launch();
      expect(await duro.runStep(async () => "plain")).toBe("plain");
      expect(await duro.listWorkflows()).toEqual([]);
    });
  });
});
