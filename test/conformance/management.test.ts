/** Management: listWorkflows (every filter), listWorkflowSteps, cancelWorkflow(s). */
import { describe, expect, it } from "vitest";
import { AwaitedWorkflowCancelledError, InvalidArgumentError, WorkflowQueue, type Duro } from "../../src/index.js";
import { backends, crash, gate, rejectionOf, useDuro, waitFor, within } from "../helpers.js";

const ids = (list: { workflowId: string }[]) => list.map((s) => s.workflowId);

/** Waits until the wall clock has moved past `ms`, so creation times differ. */
const after = (ms: number) => waitFor(() => Date.now() > ms + 2);

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("listWorkflows", () => {
    /** w1…w4 in creation order: w1 ok, w2 fails, w3 ok as "bob", w4 of another name, pending. */
    async function fixture() {
      const duro = t.duro({ executorId: "main", appVersion: "v1" });
      const ok = duro.registerWorkflow("ok", async (n: number) => ({ n }));
      const fails = duro.registerWorkflow("fails", async () => {
        throw new Error("nope");
      });
      const waits = duro.registerWorkflow("waits", async () => duro.recv("go", 30));
      await duro.launch();
      const times: number[] = [];
      const start = async (p: Promise<{ workflowId: string; getResult(): Promise<unknown> }>, settle = true) => {
        const handle = await p;
        if (settle) await handle.getResult().catch(() => undefined);
        times.push((await duro.getWorkflowStatus(handle.workflowId))!.createdAt);
        await after(times[times.length - 1]);
      };
      await start(duro.startWorkflow(ok.with({ workflowId: "w1" }), 1));
      await start(duro.startWorkflow(fails.with({ workflowId: "w2" })));
      await start(duro.startWorkflow(ok.with({ workflowId: "w3", authenticatedUser: "bob", appVersion: "v2" }), 3));
      await start(duro.startWorkflow(waits.with({ workflowId: "w4" })), false);
      return { duro, times };
    }

    it("lists every workflow, oldest first, with input and output loaded", async () => {
      const { duro } = await fixture();
      const all = await duro.listWorkflows();
      expect(ids(all)).toEqual(["w1", "w2", "w3", "w4"]);
      expect(all[0]).toMatchObject({ status: "SUCCESS", input: [1], output: { n: 1 } });
      expect(all[1].status).toBe("ERROR");
      expect(all[1].error!.message).toBe("nope");
      expect(all[3].status).toBe("PENDING");
      await duro.send("w4", null, "go");
    });

    it("lists workflows started within the same millisecond in the order they were started", async () => {
      const duro = t.duro();
      const ok = duro.registerWorkflow("ok", async (n: number) => n);
      new WorkflowQueue(duro, "q");
      await duro.launch();
      const handles = await Promise.all(Array.from({ length: 200 }, (_, i) => duro.startWorkflow(ok, i)));
      const batch = await duro.enqueueMany(ok.with({ queueName: "q" }), Array.from({ length: 200 }, (_, i) => [200 + i]));
      await Promise.all([...handles, ...batch].map((h) => h.getResult()));
      const listed = await duro.listWorkflows({ loadOutput: false });
      expect(listed.map((s) => s.input![0])).toEqual(Array.from({ length: 400 }, (_, i) => i));
    });

    it("filters by workflowIds, status, name, user, appVersion and executorId", async () => {
      const { duro } = await fixture();
      const other = t.duro({ executorId: "other" });
      const wf = other.registerWorkflow("ok", async (n: number) => ({ n }));
      await other.launch();
      await (await other.startWorkflow(wf.with({ workflowId: "x1" }), 9)).getResult();

      expect(ids(await duro.listWorkflows({ workflowIds: ["w3", "w1", "missing"] }))).toEqual(["w1", "w3"]);
      expect(ids(await duro.listWorkflows({ workflowIds: [] }))).toEqual([]);
      expect(ids(await duro.listWorkflows({ status: [] }))).toEqual([]);
      expect(ids(await duro.listWorkflows({ name: [] }))).toEqual([]);
      expect(ids(await duro.listWorkflows({ status: "SUCCESS" }))).toEqual(["w1", "w3", "x1"]);
      expect(ids(await duro.listWorkflows({ status: ["ERROR", "PENDING"] }))).toEqual(["w2", "w4"]);
      expect(ids(await duro.listWorkflows({ name: "fails" }))).toEqual(["w2"]);
      expect(ids(await duro.listWorkflows({ name: ["fails", "waits"] }))).toEqual(["w2", "w4"]);
      expect(ids(await duro.listWorkflows({ user: "bob" }))).toEqual(["w3"]);
      expect(ids(await duro.listWorkflows({ user: ["bob", "nobody"] }))).toEqual(["w3"]);
      expect(ids(await duro.listWorkflows({ appVersion: "v2" }))).toEqual(["w3"]);
      expect(ids(await duro.listWorkflows({ appVersion: ["v1"] }))).toEqual(["w1", "w2", "w4"]);
      expect(ids(await duro.listWorkflows({ executorId: "other" }))).toEqual(["x1"]);
      expect(ids(await duro.listWorkflows({ executorId: ["main", "other"] }))).toEqual(["w1", "w2", "w3", "w4", "x1"]);
      expect(ids(await duro.listWorkflows({ status: "SUCCESS", name: "ok", executorId: "main" }))).toEqual(["w1", "w3"]); // filters combine
      await duro.send("w4", null, "go");
    });

    it("filters by creation time with RFC 3339 startTime and endTime", async () => {
      const { duro, times } = await fixture();
      const iso = (ms: number) => new Date(ms).toISOString();
      expect(ids(await duro.listWorkflows({ startTime: iso(times[2]) }))).toEqual(["w3", "w4"]);
      expect(ids(await duro.listWorkflows({ endTime: iso(times[1]) }))).toEqual(["w1", "w2"]);
      expect(ids(await duro.listWorkflows({ startTime: iso(times[1]), endTime: iso(times[2]) }))).toEqual(["w2", "w3"]);
      // The same instant written with a numeric offset.
      const offset = new Date(times[1] + 3_600_000).toISOString().replace("Z", "+01:00");
      expect(ids(await duro.listWorkflows({ endTime: offset }))).toEqual(["w1", "w2"]);
      // Years before 100 are years, not 1900-1999.
      expect(ids(await duro.listWorkflows({ startTime: "0001-01-01T00:00:00Z" }))).toEqual(["w1", "w2", "w3", "w4"]);
      expect(ids(await duro.listWorkflows({ endTime: "0099-12-31T23:59:59Z" }))).toEqual([]);
      await duro.send("w4", null, "go");
    });

    it("filters by workflowIdPrefix, taking % and _ literally", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await duro.launch();
      for (const id of ["order-1", "order-2", "orders", "refund-1", "a_b", "axb", "a%c"]) await (await duro.startWorkflow(wf.with({ workflowId: id }))).getResult();
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "order-" })).sort()).toEqual(["order-1", "order-2"]);
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: ["order-", "refund"] })).sort()).toEqual(["order-1", "order-2", "refund-1"]);
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "a_" }))).toEqual(["a_b"]);
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "a%" }))).toEqual(["a%c"]);
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "zzz" }))).toEqual([]);
      // Any character may follow the prefix, the last code point too; the prefix may end in it.
      for (const id of ["z\u{10FFFF}", "z\u{10FFFF}\u{10FFFF}x", "z\uFFFFy", "\u{10FFFF}"]) await (await duro.startWorkflow(wf.with({ workflowId: id }))).getResult();
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "z" })).sort()).toEqual(["z\u{10FFFF}", "z\u{10FFFF}\u{10FFFF}x", "z\uFFFFy"].sort());
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "z\u{10FFFF}" })).sort()).toEqual(["z\u{10FFFF}", "z\u{10FFFF}\u{10FFFF}x"].sort());
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: "\u{10FFFF}" }))).toEqual(["\u{10FFFF}"]);
      expect(ids(await duro.listWorkflows({ workflowIdPrefix: ["\u{10FFFF}", "z\u{10FFFF}", "z\uFFFF"] })).sort())
        .toEqual(["\u{10FFFF}", "z\u{10FFFF}", "z\u{10FFFF}\u{10FFFF}x", "z\uFFFFy"].sort());
    });

    it("filters by parentWorkflowId and hasParent", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async () => "c");
      const parent = duro.registerWorkflow("parent", async () => [await child(), await child()]);
      await duro.launch();
      await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult();
      await (await duro.startWorkflow(parent.with({ workflowId: "Q" }))).getResult();
      expect((await duro.listWorkflows({ parentWorkflowId: "P" })).map((s) => s.parentWorkflowId)).toEqual(["P", "P"]);
      expect(await duro.listWorkflows({ parentWorkflowId: ["P", "Q"] })).toHaveLength(4);
      expect(await duro.listWorkflows({ hasParent: true })).toHaveLength(4);
      expect(ids(await duro.listWorkflows({ hasParent: false })).sort()).toEqual(["P", "Q"]);
    });

    it("accepts the queue and fork filters (nothing here is queued or forked)", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await duro.launch();
      await (await duro.startWorkflow(wf.with({ workflowId: "plain" }))).getResult();
      expect(await duro.listWorkflows({ queueName: "some-queue" })).toEqual([]);
      expect(await duro.listWorkflows({ queueName: ["a", "b"] })).toEqual([]);
      expect(await duro.listWorkflows({ queuesOnly: true })).toEqual([]);
      expect(await duro.listWorkflows({ forkedFrom: "plain" })).toEqual([]);
      expect(await duro.listWorkflows({ forkedFrom: ["plain", "x"] })).toEqual([]);
      expect(await duro.listWorkflows({ wasForkedFrom: true })).toEqual([]);
      expect(ids(await duro.listWorkflows({ wasForkedFrom: false }))).toEqual(["plain"]);
      expect((await duro.getWorkflowStatus("plain"))!).toMatchObject({ queueName: null, forkedFrom: null, wasForkedFrom: false });
    });

    it("limit, offset and sortDesc page through the list", async () => {
      const { duro } = await fixture();
      expect(ids(await duro.listWorkflows({ limit: 2 }))).toEqual(["w1", "w2"]);
      expect(ids(await duro.listWorkflows({ limit: 2, offset: 1 }))).toEqual(["w2", "w3"]);
      expect(ids(await duro.listWorkflows({ offset: 3 }))).toEqual(["w4"]);
      expect(ids(await duro.listWorkflows({ offset: 10 }))).toEqual([]);
      expect(ids(await duro.listWorkflows({ limit: 0 }))).toEqual([]);
      expect(ids(await duro.listWorkflows({ sortDesc: true }))).toEqual(["w4", "w3", "w2", "w1"]);
      expect(ids(await duro.listWorkflows({ sortDesc: true, limit: 2, offset: 1 }))).toEqual(["w3", "w2"]);
      await duro.send("w4", null, "go");
    });

    it("loadInput: false and loadOutput: false leave those fields absent", async () => {
      const { duro } = await fixture();
      const noInput = await duro.listWorkflows({ workflowIds: ["w1", "w2"], loadInput: false });
      for (const status of noInput) expect("input" in status).toBe(false);
      expect(noInput[0].output).toEqual({ n: 1 });
      expect(noInput[1].error).toBeInstanceOf(Error);

      const noOutput = await duro.listWorkflows({ workflowIds: ["w1", "w2"], loadOutput: false });
      for (const status of noOutput) {
        expect("output" in status).toBe(false);
        expect("error" in status).toBe(false);
      }
      expect(noOutput[0].input).toEqual([1]);
      expect(noOutput.map((s) => s.status)).toEqual(["SUCCESS", "ERROR"]);
      await duro.send("w4", null, "go");
    });

    it("malformed filters are refused with InvalidArgumentError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.listWorkflows({ startTime: "yesterday" })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflows({ endTime: "2024-13-45T00:00:00Z" })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflows({ limit: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflows({ limit: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflows({ offset: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflows({ status: "DONE" as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });

  describe("listWorkflowSteps", () => {
    it("returns each recorded operation with its StepInfo fields, by functionId", async () => {
      const duro = t.duro();
      const good = duro.registerStep("good", async () => ({ fine: true }));
      const bad = duro.registerStep("bad", async () => {
        throw new TypeError("step failed");
      });
      const child = duro.registerWorkflow("child", async () => "child result");
      const wf = duro.registerWorkflow("mixed", async () => {
        await good();
        await bad().catch(() => undefined);
        await duro.startWorkflow(child);
        return "ok";
      });
      await duro.launch();
      await (await duro.startWorkflow(wf.with({ workflowId: "M" }))).getResult();
      const steps = await duro.listWorkflowSteps("M");
      expect(steps.map((s) => s.functionId)).toEqual([1, 2, 3]);
      expect(steps[0]).toMatchObject({ functionId: 1, functionName: "good", output: { fine: true }, error: null, childWorkflowId: null });
      expect(steps[1]).toMatchObject({ functionId: 2, functionName: "bad", childWorkflowId: null });
      expect(steps[1].error).toBeInstanceOf(TypeError);
      expect(steps[1].error!.message).toBe("step failed");
      expect(steps[2]).toMatchObject({ functionId: 3, functionName: "child", childWorkflowId: "M-3", error: null });
      for (const step of steps.slice(0, 2)) {
        expect(typeof step.startedAtEpochMs).toBe("number");
        expect(typeof step.completedAtEpochMs).toBe("number");
        expect(step.completedAtEpochMs!).toBeGreaterThanOrEqual(step.startedAtEpochMs!);
      }
    });

    it("duro's own operations that return nothing (send, setEvent, a recv that timed out, streams) have a null output", async () => {
      const duro = t.duro();
      const sink = duro.registerWorkflow("sink", async () => duro.recv("t", 30));
      const wf = duro.registerWorkflow("ops", async () => {
        await duro.send("S", "hello", "t");
        await duro.setEvent("k", 1);
        await duro.recv("none", 0.01);
        await duro.writeStream("s", 1);
        await duro.closeStream("s");
      });
      await duro.launch();
      await duro.startWorkflow(sink.with({ workflowId: "S" }));
      await (await duro.startWorkflow(wf.with({ workflowId: "O" }))).getResult();
      const steps = await duro.listWorkflowSteps("O");
      expect(steps.map((s) => [s.functionName, s.output])).toEqual([
        ["duro.send", null], ["duro.setEvent", null], ["duro.recv", null], ["duro.sleep", expect.any(Number)], ["duro.writeStream", null], ["duro.closeStream", null],
      ]);
    });

    it("limit and offset page through the steps; a negative limit is refused", async () => {
      const duro = t.duro();
      const step = duro.registerStep("s", async (i: number) => i);
      const wf = duro.registerWorkflow("many", async () => {
        for (let i = 1; i <= 5; i++) await step(i);
      });
      await duro.launch();
      await (await duro.startWorkflow(wf.with({ workflowId: "L" }))).getResult();
      expect((await duro.listWorkflowSteps("L", { limit: 2 })).map((s) => s.functionId)).toEqual([1, 2]);
      expect((await duro.listWorkflowSteps("L", { limit: 2, offset: 2 })).map((s) => s.functionId)).toEqual([3, 4]);
      expect((await duro.listWorkflowSteps("L", { offset: 4 })).map((s) => s.output)).toEqual([5]);
      await expect(duro.listWorkflowSteps("L", { limit: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.listWorkflowSteps("L", { offset: -2 })).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it("a workflow with no operations has an empty step list", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("nothing", async () => 1);
      await duro.launch();
      await (await duro.startWorkflow(wf.with({ workflowId: "N" }))).getResult();
      expect(await duro.listWorkflowSteps("N")).toEqual([]);
    });
  });

  describe("cancelWorkflow", () => {
    /** A workflow: step "before", then "blocking" (held by a gate), then "afterwards". */
    function cancellable(duro: Duro) {
      const runs = { before: 0, afterwards: 0 };
      const entered = gate();
      const release = gate();
      const exited = gate();
      const before = duro.registerStep("before", async () => void runs.before++);
      const blocking = duro.registerStep("blocking", async () => {
        entered.open();
        await release.promise;
      });
      const afterwards = duro.registerStep("afterwards", async () => void runs.afterwards++);
      const wf = duro.registerWorkflow("cancellable", async () => {
        try {
          await before();
          await blocking();
          await afterwards();
          return "finished";
        } finally {
          exited.open();
        }
      });
      return { wf, runs, entered, release, exited };
    }

    it("marks it CANCELLED, stops it at its next step, and getResult throws AwaitedWorkflowCancelledError", async () => {
      const duro = t.duro();
      const { wf, runs, entered, release, exited } = cancellable(duro);
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "C" }));
      await entered.promise;
      const waiting = rejectionOf(handle.getResult());
      await duro.cancelWorkflow("C");
      expect((await handle.getStatus())!.status).toBe("CANCELLED");
      expect(await waiting).toBeInstanceOf(AwaitedWorkflowCancelledError);
      await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
      release.open();
      await exited.promise;
      expect(runs).toEqual({ before: 1, afterwards: 0 });
      expect((await duro.listWorkflowSteps("C")).map((s) => s.functionName)).not.toContain("afterwards");
      expect((await handle.getStatus())!.status).toBe("CANCELLED"); // the body's end does not overwrite it
    });

    it("stops a workflow waiting in recv or sleep at once", async () => {
      const duro = t.duro();
      const inRecv = duro.registerWorkflow("inRecv", async () => duro.recv("never", 30));
      const inSleep = duro.registerWorkflow("inSleep", async () => duro.sleep(30));
      await duro.launch();
      const r = await duro.startWorkflow(inRecv);
      const s = await duro.startWorkflow(inSleep);
      await waitFor(async () => (await duro.listWorkflowSteps(r.workflowId)).length > 0 && (await duro.listWorkflowSteps(s.workflowId)).length > 0);
      const start = performance.now();
      await duro.cancelWorkflows([r.workflowId, s.workflowId]);
      await expect(r.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
      await expect(s.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
      expect(performance.now() - start).toBeLessThan(2000);
      expect((await duro.listWorkflows({ status: "CANCELLED" })).length).toBe(2);
    });

    it("a cancel issued by another instance stops the run at its next step", async () => {
      const a = t.duro({ executorId: "a" });
      const { wf, runs, entered, release, exited } = cancellable(a);
      await a.launch();
      const b = t.duro({ executorId: "b" });
      await b.launch();
      await a.startWorkflow(wf.with({ workflowId: "X" }));
      await entered.promise;
      await b.cancelWorkflow("X");
      // A caller waiting on the executor that runs it learns of the cancel promptly, not at a slow safety poll.
      await expect(within(2000, a.getResult("X"), "getResult on the running executor")).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
      release.open();
      await exited.promise;
      expect(runs.afterwards).toBe(0);
      expect((await b.getWorkflowStatus("X"))!.status).toBe("CANCELLED");
    });

    it("a cancel committed by another instance stops the very next step, however soon it comes", async () => {
      const a = t.duro({ executorId: "a" });
      const { wf, runs, entered, release, exited } = cancellable(a);
      await a.launch();
      const b = t.duro({ executorId: "b" });
      await b.launch();
      await a.startWorkflow(wf.with({ workflowId: "Y" }));
      await entered.promise;
      await b.cancelWorkflow("Y"); // committed: the workflow is CANCELLED from here on
      release.open(); // the blocking step returns at once; "afterwards" must not start
      await exited.promise;
      expect(runs.afterwards).toBe(0);
      expect((await b.getWorkflowStatus("Y"))!.status).toBe("CANCELLED");
    });

    it("cancelling a finished or unknown workflow changes nothing", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("quick", async () => "done");
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      await duro.cancelWorkflow(handle.workflowId);
      await duro.cancelWorkflow("never-existed");
      expect((await handle.getStatus())!.status).toBe("SUCCESS");
      expect(await handle.getResult()).toBe("done");
      expect(await duro.getWorkflowStatus("never-existed")).toBeNull();
    });

    it("a cancelled workflow is not recovered by a restart", async () => {
      const a = t.duro({ executorId: "e1" });
      const first = cancellable(a);
      await a.launch();
      await a.startWorkflow(first.wf.with({ workflowId: "K" }));
      await first.entered.promise;
      await a.cancelWorkflow("K");
      await crash(a);
      const b = t.duro({ executorId: "e1" });
      const second = cancellable(b);
      second.release.open();
      await b.launch();
      expect((await b.getWorkflowStatus("K"))!.status).toBe("CANCELLED");
      expect(second.runs).toEqual({ before: 0, afterwards: 0 });
    });
  });
});
