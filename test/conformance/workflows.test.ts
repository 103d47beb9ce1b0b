/** Starting workflows, workflow IDs as idempotency keys, handles, results and status. */
import { describe, expect, it } from "vitest";
import { DuroError, InvalidArgumentError, WorkflowConflictError, WorkflowNotFoundError, WorkflowQueue } from "../../src/index.js";
import { backends, gate, rejectionOf, useDuro } from "../helpers.js";

class InsufficientFunds extends Error {
  constructor(
    message: string,
    readonly account: string,
    readonly missingCents: number,
  ) {
    super(message);
  }
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("starting a workflow", () => {
    it("startWorkflow returns a handle whose getResult is the body's return value", async () => {
      const duro = t.duro();
      const greet = duro.registerWorkflow("greet", async (name: string, n: number) => `hello ${name} x${n}`);
      await duro.launch();
      const handle = await duro.startWorkflow(greet, "ada", 3);
      expect(typeof handle.workflowId).toBe("string");
      expect(handle.workflowId.length).toBeGreaterThan(0);
      expect(await handle.getResult()).toBe("hello ada x3");
    });

    it("a finished workflow's status records name, input, output, executor and times", async () => {
      const duro = t.duro({ executorId: "exec-A", appVersion: "v7" });
      const add = duro.registerWorkflow("add", async (a: number, b: number) => a + b);
      await duro.launch();
      const before = Date.now();
      const handle = await duro.startWorkflow(add, 2, 3);
      await handle.getResult();
      const status = (await handle.getStatus())!;
      expect(status).toMatchObject({
        workflowId: handle.workflowId,
        status: "SUCCESS",
        workflowName: "add",
        input: [2, 3],
        output: 5,
        executorId: "exec-A",
        appVersion: "v7",
        queueName: null,
        authenticatedUser: null,
        parentWorkflowId: null,
        forkedFrom: null,
        wasForkedFrom: false,
        recoveryAttempts: 1,
        priority: 0,
        deduplicationId: null,
        partitionKey: null,
        timeoutMs: null,
        deadlineEpochMs: null,
        delayUntilEpochMs: null,
      });
      expect(status.error).toBeUndefined();
      expect(status.createdAt).toBeGreaterThanOrEqual(before - 1000);
      expect(status.updatedAt).toBeGreaterThanOrEqual(status.createdAt);
      expect(status.startedAtEpochMs).not.toBeNull();
      expect(status.completedAtEpochMs).not.toBeNull();
      expect(status.completedAtEpochMs!).toBeGreaterThanOrEqual(status.createdAt);
    });

    it("a running workflow is PENDING until it finishes", async () => {
      const duro = t.duro();
      const release = gate();
      const running = gate();
      const waitStep = duro.registerStep("wait", async () => {
        running.open();
        await release.promise;
      });
      const wf = duro.registerWorkflow("pending", async () => {
        await waitStep();
        return "done";
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await running.promise;
      expect((await handle.getStatus())!.status).toBe("PENDING");
      expect((await handle.getStatus())!.completedAtEpochMs).toBeNull();
      release.open();
      expect(await handle.getResult()).toBe("done");
      expect((await handle.getStatus())!.status).toBe("SUCCESS");
    });

    it("calling the registered workflow directly runs it durably and resolves to its result", async () => {
      const duro = t.duro();
      const double = duro.registerWorkflow("double", async (x: number) => x * 2);
      await duro.launch();
      expect(await double(21)).toBe(42);
      const [status] = await duro.listWorkflows({ name: "double" });
      expect(status).toMatchObject({ status: "SUCCESS", input: [21], output: 42 });
    });

    it("concurrent workflows share commits: 100 three-step workflows take far fewer commits than writes, and no batch fails", async () => {
      const duro = t.duro();
      const step = duro.registerStep("step", async (x: number) => x + 1);
      const wf = duro.registerWorkflow("threeSteps", async (x: number) => step(await step(await step(x))));
      await duro.launch();
      const stats = duro.engine.committer.stats;
      const before = { ...stats };
      const inputs = Array.from({ length: 100 }, (_, i) => i * 10);
      expect(await Promise.all(inputs.map((x) => wf(x)))).toEqual(inputs.map((x) => x + 3));
      const writes = stats.writes - before.writes;
      const commits = stats.commits - before.commits;
      expect(writes).toBe(500); // per workflow: its start, three steps, its outcome
      expect(commits, `${commits} commits for ${writes} writes`).toBeLessThanOrEqual(50);
      expect(stats.splits - before.splits).toBe(0);
    });

    it("a workflow function that is not async still works", async () => {
      const duro = t.duro();
      const sync = duro.registerWorkflow("sync", (x: number) => x + 1);
      await duro.launch();
      expect(await sync(1)).toBe(2);
    });

    it("registering two workflows with the same name is refused", async () => {
      const duro = t.duro();
      duro.registerWorkflow("same", async () => 1);
      expect(() => duro.registerWorkflow("same", async () => 2)).toThrow(InvalidArgumentError);
    });

    it("an empty workflow ID is refused with InvalidArgumentError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await duro.launch();
      await expect(duro.startWorkflow(wf.with({ workflowId: "" }))).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await duro.listWorkflows()).toEqual([]);
    });
  });

  describe("workflow IDs are idempotency keys", () => {
    it("a workflow started with an explicit ID gets that ID", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => duro.workflowId);
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "order-42" }));
      expect(handle.workflowId).toBe("order-42");
      expect(await handle.getResult()).toBe("order-42");
    });

    it("starting the same ID again returns the same workflow and never runs the body twice", async () => {
      const duro = t.duro();
      let runs = 0;
      const release = gate();
      const wf = duro.registerWorkflow("once", async (x: number) => {
        runs++;
        await release.promise;
        return x;
      });
      await duro.launch();
      const first = await duro.startWorkflow(wf.with({ workflowId: "idem" }), 1);
      const second = await duro.startWorkflow(wf.with({ workflowId: "idem" }), 2); // still running
      expect(second.workflowId).toBe(first.workflowId);
      release.open();
      expect(await first.getResult()).toBe(1);
      expect(await second.getResult()).toBe(1);
      const third = await duro.startWorkflow(wf.with({ workflowId: "idem" }), 3); // finished
      expect(await third.getResult()).toBe(1);
      expect(await wf.with({ workflowId: "idem" })(4)).toBe(1);
      expect(runs).toBe(1);
      expect((await duro.listWorkflows()).map((s) => s.workflowId)).toEqual(["idem"]);
      expect((await duro.getWorkflowStatus("idem"))!.input).toEqual([1]);
    });

    it("a second executor starting an existing ID waits for it instead of running it", async () => {
      const a = t.duro({ executorId: "a" });
      const b = t.duro({ executorId: "b" });
      let runs = 0;
      const release = gate();
      const make = (duro: typeof a) =>
        duro.registerWorkflow("shared", async () => {
          runs++;
          await release.promise;
          return "from-a";
        });
      const wfA = make(a);
      const wfB = make(b);
      await a.launch();
      await b.launch();
      await a.startWorkflow(wfA.with({ workflowId: "shared-1" }));
      const fromB = await b.startWorkflow(wfB.with({ workflowId: "shared-1" }));
      const result = fromB.getResult();
      release.open();
      expect(await result).toBe("from-a");
      expect(runs).toBe(1);
      expect((await b.getWorkflowStatus("shared-1"))!.executorId).toBe("a");
    });

    it("the same ID with another workflow name fails with WorkflowConflictError", async () => {
      const duro = t.duro();
      const one = duro.registerWorkflow("one", async () => 1);
      const two = duro.registerWorkflow("two", async () => 2);
      await duro.launch();
      await duro.startWorkflow(one.with({ workflowId: "taken" }));
      const error = await rejectionOf(duro.startWorkflow(two.with({ workflowId: "taken" })));
      expect(error).toBeInstanceOf(WorkflowConflictError);
      expect(error).toBeInstanceOf(DuroError);
      expect(error.message).toContain("taken");
      expect(await duro.getResult("taken")).toBe(1);
    });

    it("the same ID on another queue returns the existing workflow, on its own queue, with a warning", async () => {
      const warnings: string[] = [];
      const duro = t.duro({ logger: { debug() {}, info() {}, warn: (message: string) => void warnings.push(message), error() {} } });
      const wf = duro.registerWorkflow("wf", async (x: number) => x);
      new WorkflowQueue(duro, "q1");
      new WorkflowQueue(duro, "q2");
      await duro.launch();
      expect(await (await duro.startWorkflow(wf.with({ workflowId: "Q", queueName: "q1" }), 1)).getResult()).toBe(1);
      const again = await duro.startWorkflow(wf.with({ workflowId: "Q", queueName: "q2" }), 2);
      expect(await again.getResult()).toBe(1);
      expect((await duro.getWorkflowStatus("Q"))!.queueName).toBe("q1");
      await duro.startWorkflow(wf.with({ workflowId: "Q" }), 3); // no queue
      await duro.startWorkflow(wf.with({ workflowId: "Q", queueName: "q1" }), 4); // its own queue: no warning
      const [batch] = await duro.enqueueMany(wf.with({ workflowId: "Q", queueName: "q2" }), [[5]]);
      expect(await batch.getResult()).toBe(1);
      expect(warnings.filter((w) => w.includes("Workflow Q already exists on"))).toEqual([
        'Workflow Q already exists on queue "q1"; this start asked for queue "q2". Its handle is returned and its queue is not changed: give a new start its own workflow ID.',
        'Workflow Q already exists on queue "q1"; this start asked for no queue. Its handle is returned and its queue is not changed: give a new start its own workflow ID.',
        'Workflow Q already exists on queue "q1"; this start asked for queue "q2". Its handle is returned and its queue is not changed: give a new start its own workflow ID.',
      ]);
    });
  });

  describe("handles and results", () => {
    it("retrieveWorkflow returns a working handle to an existing workflow", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => "r");
      await duro.launch();
      const { workflowId } = await duro.startWorkflow(wf);
      const handle = await duro.retrieveWorkflow<string>(workflowId);
      expect(handle.workflowId).toBe(workflowId);
      expect(await handle.getResult()).toBe("r");
      expect((await handle.getStatus())!.status).toBe("SUCCESS");
    });

    it("retrieveWorkflow and getResult of an unknown ID throw WorkflowNotFoundError; getWorkflowStatus gives null", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.retrieveWorkflow("nope")).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(duro.getResult("nope")).rejects.toBeInstanceOf(WorkflowNotFoundError);
      expect(await duro.getWorkflowStatus("nope")).toBeNull();
    });

    it("getResult by ID returns the output, from any instance on the database", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("wf", async (x: { n: number }) => ({ doubled: x.n * 2 }));
      await a.launch();
      const handle = await a.startWorkflow(wf, { n: 4 });
      expect(await a.getResult(handle.workflowId)).toEqual({ doubled: 8 });
      const b = t.duro({ executorId: "b" });
      await b.launch();
      expect(await b.getResult(handle.workflowId)).toEqual({ doubled: 8 });
      expect((await b.getWorkflowStatus(handle.workflowId))!.output).toEqual({ doubled: 8 });
    });

    it("getResult waits for a workflow that is still running", async () => {
      const duro = t.duro();
      const release = gate<string>();
      const wf = duro.registerWorkflow("wf", async () => release.promise);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      let settled = false;
      const result = handle.getResult().then((r) => ((settled = true), r));
      await new Promise((resolve) => setImmediate(resolve));
      expect(settled).toBe(false);
      release.open("late");
      expect(await result).toBe("late");
    });

    it("a workflow's thrown error reaches getResult as itself: same class, message and fields", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("fails", async () => {
        throw new InsufficientFunds("balance too low", "acct-9", 250);
      });
      await a.launch();
      const handle = await a.startWorkflow(wf);
      const local = await rejectionOf(handle.getResult());
      expect(local).toBeInstanceOf(InsufficientFunds);
      expect(local.message).toBe("balance too low");

      // Read back from storage by another instance: still the same class, message and own fields.
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const stored = await rejectionOf(b.getResult(handle.workflowId));
      expect(stored).toBeInstanceOf(InsufficientFunds);
      expect(stored).toBeInstanceOf(Error);
      expect(stored.message).toBe("balance too low");
      expect(stored.account).toBe("acct-9");
      expect(stored.missingCents).toBe(250);
      const status = (await b.getWorkflowStatus(handle.workflowId))!;
      expect(status.status).toBe("ERROR");
      expect(status.error).toBeInstanceOf(InsufficientFunds);
      expect(status.error!.message).toBe("balance too low");
      expect(status.output).toBeUndefined();
    });

    it("a built-in error class survives too (TypeError stays TypeError)", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("typeError", async () => {
        throw new TypeError("bad type");
      });
      await a.launch();
      const handle = await a.startWorkflow(wf);
      await handle.getResult().catch(() => undefined);
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const error = await rejectionOf(b.getResult(handle.workflowId));
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).toBe("bad type");
    });

    it("calling the workflow directly rethrows its error", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("direct", async () => {
        throw new RangeError("out of range");
      });
      await duro.launch();
      await expect(wf()).rejects.toThrow(RangeError);
    });
  });

  describe(".with() start options", () => {
    it("binds authenticatedUser and appVersion, visible in status and context", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("who", async () => ({ user: duro.authenticatedUser, version: duro.appVersion }));
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "w-1", authenticatedUser: "alice", appVersion: "v-custom" }));
      expect(await handle.getResult()).toEqual({ user: "alice", version: "v-custom" });
      expect(await handle.getStatus()).toMatchObject({ workflowId: "w-1", authenticatedUser: "alice", appVersion: "v-custom" });
    });

    it("merges options over those already bound and leaves the original untouched", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("merge", async () => duro.authenticatedUser ?? null);
      await duro.launch();
      const bound = wf.with({ workflowId: "m-1" }).with({ authenticatedUser: "bob" });
      expect(bound.startOptions).toEqual({ workflowId: "m-1", authenticatedUser: "bob" });
      expect(wf.startOptions).toEqual({});
      expect(await bound()).toBe("bob");
      expect((await duro.getWorkflowStatus("m-1"))!.authenticatedUser).toBe("bob");
      const plain = await duro.startWorkflow(wf);
      expect(plain.workflowId).not.toBe("m-1");
      expect(await plain.getResult()).toBeNull();
    });

    it("invalid start options are refused with InvalidArgumentError before anything is written", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await duro.launch();
      await expect(duro.startWorkflow(wf.with({ serialization: "xml" as never }))).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.startWorkflow(wf.with({ workflowId: "   " }))).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await duro.listWorkflows()).toEqual([]);
    });
  });

  describe("context variables", () => {
    it("workflowId, executorId and isInWorkflow are set inside a workflow and unset outside", async () => {
      const duro = t.duro({ executorId: "ctx-exec" });
      const wf = duro.registerWorkflow("ctx", async () => ({
        workflowId: duro.workflowId,
        stepId: duro.stepId,
        inWorkflow: duro.isInWorkflow(),
        inStep: duro.isInStep(),
        executorId: duro.executorId,
      }));
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "ctx-1" }));
      expect(await handle.getResult()).toEqual({ workflowId: "ctx-1", stepId: undefined, inWorkflow: true, inStep: false, executorId: "ctx-exec" });
      expect(duro.workflowId).toBeUndefined();
      expect(duro.stepId).toBeUndefined();
      expect(duro.stepStatus).toBeUndefined();
      expect(duro.isInWorkflow()).toBe(false);
      expect(duro.isInStep()).toBe(false);
      expect(duro.executorId).toBe("ctx-exec");
    });

    it("concurrent workflows each see their own workflowId", async () => {
      const duro = t.duro();
      const tick = duro.registerStep("tick", async () => undefined);
      const wf = duro.registerWorkflow("ids", async () => {
        const seen: (string | undefined)[] = [];
        for (let i = 0; i < 3; i++) {
          seen.push(duro.workflowId);
          await tick();
        }
        return seen;
      });
      await duro.launch();
      const handles = await Promise.all(["x", "y", "z"].map((id) => duro.startWorkflow(wf.with({ workflowId: id }))));
      for (const handle of handles) expect(await handle.getResult()).toEqual([handle.workflowId, handle.workflowId, handle.workflowId]);
    });

    it("duro.logger lines carry the current workflow and step IDs", async () => {
      const lines: { message: string; fields?: Record<string, unknown> }[] = [];
      const record = (message: string, fields?: Record<string, unknown>) => void lines.push({ message, fields });
      const duro = t.duro({ logger: { debug: record, info: record, warn: record, error: record } });
      const step = duro.registerStep("logStep", async () => duro.logger.info("inside the step"));
      const wf = duro.registerWorkflow("logs", async () => {
        duro.logger.info("inside the workflow");
        await step();
        return 1;
      });
      await duro.launch();
      await duro.startWorkflow(wf.with({ workflowId: "log-1" })).then((h) => h.getResult());
      expect(lines.find((l) => l.message.includes("inside the workflow"))?.fields).toMatchObject({ workflowId: "log-1" });
      expect(lines.find((l) => l.message.includes("inside the step"))?.fields).toMatchObject({ workflowId: "log-1", stepId: 1 });
    });
  });
});
