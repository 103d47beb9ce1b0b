/**
 * Recovery and replay. A crash is simulated by shutting one Duro instance down while its workflow
 * sits in a step that never returns; a new instance with the same executorId on the same
 * database then launches, recovers the workflow and runs it to the end.
 */
import { describe, expect, it } from "vitest";
import { MaxRecoveryAttemptsExceededError, NonDeterminismError, WorkflowQueue, type Duro } from "../../src/index.js";
import { backends, crash, crashedAndRelaunched, hangPoint, rawQuery, rejectionOf, useDuro } from "../helpers.js";

/** Workflow `name`, returning `result` after a step that hangs while `hang.state.on`; `build` registers it on an instance. */
function hanging(name: string, result: string) {
  const hang = hangPoint();
  const build = (duro: Duro) => {
    const stop = hang.register(duro);
    return duro.registerWorkflow(name, async () => {
      await stop();
      return result;
    });
  };
  return { hang, build };
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("recovery", () => {
    it("a recovered workflow finishes without re-running its completed steps", async () => {
      const runs = { a: 0, b: 0, body: 0 };
      const hang = hangPoint();
      const build = (duro: Duro) => {
        const a = duro.registerStep("a", async (x: number) => (runs.a++, x + 1));
        const b = duro.registerStep("b", async (x: number) => (runs.b++, x * 2));
        const stop = hang.register(duro);
        return duro.registerWorkflow("recoverable", async (start: number) => {
          runs.body++;
          const one = await a(start);
          const two = await b(one);
          await stop();
          return { one, two };
        });
      };
      const first = t.duro({ executorId: "e1" });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "R" }), 10);
      await hang.reached();
      await crash(first);
      const probe = t.duro({ executorId: "probe" });
      await probe.launch();
      expect((await probe.getWorkflowStatus("R"))!.status).toBe("PENDING");

      hang.state.on = false;
      const second = t.duro({ executorId: "e1" });
      build(second);
      await second.launch();
      expect(await second.getResult("R")).toEqual({ one: 11, two: 22 });
      expect(runs).toEqual({ a: 1, b: 1, body: 2 });
      const steps = await second.listWorkflowSteps("R");
      expect(steps.map((s) => [s.functionId, s.functionName])).toEqual([
        [1, "a"],
        [2, "b"],
        [3, "hang"],
      ]);
      expect((await second.getWorkflowStatus("R"))!.status).toBe("SUCCESS");
    });

    it("a workflow whose record is megabytes (read apart from the row on PostgreSQL) replays it whole, by recovery and by a queue's claim", async () => {
      const runs = { big: 0 };
      const hang = hangPoint();
      const build = (duro: Duro) => {
        new WorkflowQueue(duro, "q");
        // Three outputs of 600 KB each: past the size a PostgreSQL read inlines with the row.
        const big = duro.registerStep("big", async (i: number) => (runs.big++, `${i}`.repeat(600_000)));
        const stop = hang.register(duro);
        return duro.registerWorkflow("heavy", async () => {
          const lengths = [];
          for (let i = 0; i < 3; i++) lengths.push((await big(i)).length);
          await stop();
          return lengths;
        });
      };
      // Recovered at launch.
      const second = await crashedAndRelaunched(t, hang, build, "H");
      expect(await second.getResult("H")).toEqual([600_000, 600_000, 600_000]);
      expect(runs.big).toBe(3);
      // Claimed from a queue: a fork from the hang step reuses the three big outputs.
      const fork = await second.forkWorkflow("H", 4, { newWorkflowId: "H2", queueName: "q" });
      expect(await fork.getResult()).toEqual([600_000, 600_000, 600_000]);
      expect(runs.big).toBe(3);
    });

    it("a recovered workflow gets its original arguments back", async () => {
      const hang = hangPoint();
      const seen: unknown[] = [];
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("args", async (when: Date, tags: Set<string>) => {
          seen.push([when, tags]);
          await stop();
          return { when, tags };
        });
      };
      const second = await crashedAndRelaunched(t, hang, build, "A", new Date(1_700_000_000_000), new Set(["x", "y"]));
      const result = await second.getResult<{ when: Date; tags: Set<string> }>("A");
      expect(result.when).toBeInstanceOf(Date);
      expect(result.when.getTime()).toBe(1_700_000_000_000);
      expect(result.tags).toEqual(new Set(["x", "y"]));
    });

    it("a recorded step error is rethrown on replay without running the step", async () => {
      let failingRuns = 0;
      const hang = hangPoint();
      const build = (duro: Duro) => {
        const failing = duro.registerStep("failing", async () => {
          failingRuns++;
          throw new RangeError(`failure #${failingRuns}`);
        });
        const stop = hang.register(duro);
        return duro.registerWorkflow("recordedError", async () => {
          let caught: unknown;
          try {
            await failing();
          } catch (error) {
            caught = error;
          }
          await stop();
          return { isRangeError: caught instanceof RangeError, message: (caught as Error).message };
        });
      };
      const second = await crashedAndRelaunched(t, hang, build, "E");
      expect(await second.getResult("E")).toEqual({ isRangeError: true, message: "failure #1" });
      expect(failingRuns).toBe(1);
    });

    it("now() and randomUUID() return their recorded values on replay", async () => {
      const hang = hangPoint();
      const firstSeen: unknown[] = [];
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("values", async () => {
          const now = await duro.now();
          const id = await duro.randomUUID();
          firstSeen.push({ now, id });
          await stop();
          return { now, id };
        });
      };
      const second = await crashedAndRelaunched(t, hang, build, "V");
      const result = await second.getResult<{ now: number; id: string }>("V");
      expect(result).toEqual(firstSeen[0]);
      expect(firstSeen[1]).toEqual(firstSeen[0]);
      expect(typeof result.now).toBe("number");
      expect(result.id).toMatch(/^[0-9a-f-]{36}$/);
    });

    it("a finished workflow is not run again by a later launch", async () => {
      let runs = 0;
      const build = (duro: Duro) => duro.registerWorkflow("done", async () => ++runs);
      const first = t.duro({ executorId: "e1" });
      const wf = build(first);
      await first.launch();
      await (await first.startWorkflow(wf.with({ workflowId: "D" }))).getResult();
      await crash(first);
      const second = t.duro({ executorId: "e1" });
      build(second);
      await second.launch();
      expect(await second.getResult("D")).toBe(1);
      expect(runs).toBe(1);
      expect((await second.getWorkflowStatus("D"))!.recoveryAttempts).toBe(1);
    });

    it("a workflow recorded under another app version is not recovered", async () => {
      const { hang, build } = hanging("versioned", "ran");
      const first = t.duro({ executorId: "e1", appVersion: "v1" });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "AV" }));
      await hang.reached();
      await crash(first);
      hang.state.on = false;
      const other = t.duro({ executorId: "e1", appVersion: "v2" });
      build(other);
      await other.launch(); // recovery runs inside launch()
      expect(hang.state.entered).toBe(1);
      expect((await other.getWorkflowStatus("AV"))!).toMatchObject({ status: "PENDING", appVersion: "v1", recoveryAttempts: 1 });
      await crash(other);

      const same = t.duro({ executorId: "e1", appVersion: "v1" });
      build(same);
      await same.launch();
      expect(await same.getResult("AV")).toBe("ran");
    });

    it("each recovery counts in recoveryAttempts", async () => {
      const { hang, build } = hanging("counted", "ok");
      const first = t.duro({ executorId: "e1" });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "C" }));
      await hang.reached(1);
      expect((await first.getWorkflowStatus("C"))!.recoveryAttempts).toBe(1);
      await crash(first);

      const second = t.duro({ executorId: "e1" });
      build(second);
      await second.launch();
      await hang.reached(2);
      expect((await second.getWorkflowStatus("C"))!.recoveryAttempts).toBe(2);
      await crash(second);

      hang.state.on = false;
      const third = t.duro({ executorId: "e1" });
      build(third);
      await third.launch();
      expect(await third.getResult("C")).toBe("ok");
      expect((await third.getWorkflowStatus("C"))!).toMatchObject({ status: "SUCCESS", recoveryAttempts: 3 });
    });
  });

  describe("dead-lettering", () => {
    it("past maxRecoveryAttempts a workflow becomes MAX_RECOVERY_ATTEMPTS_EXCEEDED and getResult throws", async () => {
      const hang = hangPoint();
      let bodyRuns = 0;
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("poison", async () => {
          bodyRuns++;
          await stop();
          return "never";
        });
      };
      // maxRecoveryAttempts 1: the first run plus one recovery, then the next dispatch parks it.
      const first = t.duro({ executorId: "e1", maxRecoveryAttempts: 1 });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "X" }));
      await hang.reached(1);
      await crash(first);

      const second = t.duro({ executorId: "e1", maxRecoveryAttempts: 1 });
      build(second);
      await second.launch();
      await hang.reached(2);
      await crash(second);

      const third = t.duro({ executorId: "e1", maxRecoveryAttempts: 1 });
      build(third);
      await third.launch();
      const status = (await third.getWorkflowStatus("X"))!;
      expect(status.status).toBe("MAX_RECOVERY_ATTEMPTS_EXCEEDED");
      expect(status.startedAtEpochMs).toBeNull(); // as the reference's dead letter
      expect(status.completedAtEpochMs).not.toBeNull();
      expect(bodyRuns).toBe(2);
      const error = await rejectionOf(third.getResult("X"));
      expect(error).toBeInstanceOf(MaxRecoveryAttemptsExceededError);
      expect((error as MaxRecoveryAttemptsExceededError).maxRecoveryAttempts).toBe(1);
      expect(await third.listWorkflows({ status: "MAX_RECOVERY_ATTEMPTS_EXCEEDED" })).toHaveLength(1);
      // Any other process (here one with the default limit, 100) is told the limit that parked it.
      const reader = t.duro({ executorId: "reader" });
      await reader.launch();
      const elsewhere = await rejectionOf(reader.getResult("X"));
      expect(elsewhere).toBeInstanceOf(MaxRecoveryAttemptsExceededError);
      expect((elsewhere as MaxRecoveryAttemptsExceededError).maxRecoveryAttempts).toBe(1);
      expect((elsewhere as Error).message).toContain("exceeded 1 recovery attempts");

      // Parked means parked: another launch does not run it again.
      await crash(third);
      const fourth = t.duro({ executorId: "e1", maxRecoveryAttempts: 1 });
      build(fourth);
      await fourth.launch();
      expect(bodyRuns).toBe(2);
      expect((await fourth.getWorkflowStatus("X"))!.status).toBe("MAX_RECOVERY_ATTEMPTS_EXCEEDED");
    });

    it("maxRecoveryAttempts null means no limit, as the reference's None", async () => {
      const { hang, build } = hanging("patient", "done");
      const first = t.duro({ executorId: "e1", maxRecoveryAttempts: null });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "N" }));
      await hang.reached(1);
      await crash(first);
      // Far past the default limit of 100.
      await rawQuery(t.url, "UPDATE workflow_status SET recovery_attempts = 1000 WHERE workflow_id = 'N'");
      const second = t.duro({ executorId: "e1", maxRecoveryAttempts: null });
      build(second);
      hang.state.on = false;
      await second.launch();
      expect(await second.getResult("N")).toBe("done");
      expect((await second.getWorkflowStatus("N"))!.recoveryAttempts).toBe(1001);
    });

    it("a waiter already blocked on getResult is released with MaxRecoveryAttemptsExceededError", async () => {
      const { hang, build } = hanging("poison", "never");
      const first = t.duro({ executorId: "e1", maxRecoveryAttempts: 0 });
      const wf = build(first);
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "Y" }));
      await hang.reached(1);
      await crash(first);

      const watcher = t.duro({ executorId: "watcher" });
      await watcher.launch();
      const result = rejectionOf(watcher.getResult("Y"));

      const second = t.duro({ executorId: "e1", maxRecoveryAttempts: 0 });
      build(second);
      await second.launch();
      expect(await result).toBeInstanceOf(MaxRecoveryAttemptsExceededError);
      expect(hang.state.entered).toBe(1);
    });
  });

  describe("determinism checks", () => {
    it("replaying with a different step at a recorded position fails the workflow with NonDeterminismError", async () => {
      const hang = hangPoint();
      let newStepRuns = 0;
      const first = t.duro({ executorId: "e1", appVersion: "same" });
      const oldStep = first.registerStep("chargeCard", async () => "charged");
      const stop = hang.register(first);
      const v1 = first.registerWorkflow("checkout", async () => {
        await oldStep();
        await stop();
        return "v1";
      });
      await first.launch();
      await first.startWorkflow(v1.with({ workflowId: "N" }));
      await hang.reached(1);
      await crash(first);

      // The code changed: the first operation is now another step.
      const second = t.duro({ executorId: "e1", appVersion: "same" });
      const newStep = second.registerStep("reserveStock", async () => (newStepRuns++, "reserved"));
      second.registerWorkflow("checkout", async () => {
        await newStep();
        return "v2";
      });
      await second.launch();
      const error = await rejectionOf(second.getResult("N"));
      expect(error).toBeInstanceOf(NonDeterminismError);
      expect(error.message).toContain("chargeCard");
      expect(error.message).toContain("reserveStock");
      expect(newStepRuns).toBe(0);
      expect((await second.getWorkflowStatus("N"))!.status).toBe("ERROR");
    });

    it("a durable call of another kind at a recorded step position is also non-deterministic", async () => {
      const hang = hangPoint();
      const first = t.duro({ executorId: "e1", appVersion: "same" });
      const step = first.registerStep("load", async () => 1);
      const stop = hang.register(first);
      const v1 = first.registerWorkflow("kinds", async () => {
        await step();
        await stop();
      });
      await first.launch();
      await first.startWorkflow(v1.with({ workflowId: "K" }));
      await hang.reached(1);
      await crash(first);

      const second = t.duro({ executorId: "e1", appVersion: "same" });
      second.registerWorkflow("kinds", async () => {
        await second.now(); // was a step named "load"
      });
      await second.launch();
      await expect(second.getResult("K")).rejects.toBeInstanceOf(NonDeterminismError);
    });
  });
});
