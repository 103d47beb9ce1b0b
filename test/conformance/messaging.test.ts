/** send / recv: FIFO per topic, timeouts (durable), idempotent delivery, typed errors. */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, NonDeterminismError, NotInWorkflowError, WorkflowNotFoundError, type Duro } from "../../src/index.js";
import { backends, crash, gate, hangPoint, since, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("send and recv", () => {
    it("messages are received first-in first-out per topic, topics independently", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("inbox", async () => {
        await duro.recv("start", 10);
        const b = [await duro.recv("b", 5), await duro.recv("b", 5)];
        const a = [await duro.recv("a", 5), await duro.recv("a", 5), await duro.recv("a", 5)];
        return { a, b };
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      for (const [topic, message] of [["a", "a1"], ["b", "b1"], ["a", "a2"], ["b", "b2"], ["a", "a3"]]) await duro.send(handle.workflowId, message, topic);
      await duro.send(handle.workflowId, "go", "start");
      expect(await handle.getResult()).toEqual({ a: ["a1", "a2", "a3"], b: ["b1", "b2"] });
    });

    it("recv takes two operation numbers, the message and the timeout's wake-up time, both recorded whether it waited or not", async () => {
      const duro = t.duro();
      const waiting = gate();
      const wf = duro.registerWorkflow("twoAtOnce", async () => {
        const first = await duro.recv("t", 30);
        waiting.open();
        return [first, await duro.recv("t", 30)];
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "two-recvs" }));
      await duro.send("two-recvs", "there already", "t"); // may land before or after the first look
      await waiting.promise;
      await duro.send("two-recvs", "sent later", "t");
      expect(await handle.getResult()).toEqual(["there already", "sent later"]);
      const steps = await duro.listWorkflowSteps("two-recvs");
      expect(steps.map((s) => [s.functionId, s.functionName])).toEqual([[1, "duro.recv"], [2, "duro.sleep"], [3, "duro.recv"], [4, "duro.sleep"]]);
      for (const sleep of [steps[1], steps[3]]) expect(sleep.output).toBeGreaterThanOrEqual(sleep.startedAtEpochMs! + 29_000);
    });

    it("recv waits for a message sent later", async () => {
      const duro = t.duro();
      const waiting = gate();
      const wf = duro.registerWorkflow("waiter", async () => {
        waiting.open();
        return duro.recv<{ paid: boolean }>("payment", 10);
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await waiting.promise;
      await duro.send(handle.workflowId, { paid: true }, "payment");
      expect(await handle.getResult()).toEqual({ paid: true });
    });

    it("the null topic is its own topic: send without a topic, recv() or recv(null) take it", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("nullTopic", async () => [await duro.recv(), await duro.recv(null, 5), await duro.recv(undefined, 0.2)]);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await duro.send(handle.workflowId, "named", "some-topic");
      await duro.send(handle.workflowId, "first");
      await duro.send(handle.workflowId, "second", null);
      expect(await handle.getResult()).toEqual(["first", "second", null]);
    });

    it("the reference's keyword arguments work as options: recv/getEvent({ timeoutSeconds }), send's options in the topic's place", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("keywords", async () => {
        const keyed = await duro.recv("t", { timeoutSeconds: 5 });
        const untopical = await duro.recv({ timeoutSeconds: 5 });
        const late = await duro.recv("t", { timeoutSeconds: 0.2 });
        return [keyed, untopical, late, await duro.getEvent("nobody", "k", { timeoutSeconds: 0 })];
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "keywords" }));
      await duro.send("keywords", "on t", "t");
      for (let i = 0; i < 2; i++) await duro.send("keywords", "no topic", { idempotencyKey: "once" });
      expect(await handle.getResult()).toEqual(["on t", "no topic", null, null]);
      expect(await duro.getEvent("keywords", "missing", { timeoutSeconds: 0.05 })).toBeNull();
      const bad: [string, () => Promise<unknown>][] = [
        ["misspelt timeout", () => duro.getEvent("keywords", "k", { timeout: 1 } as never)],
        ["misspelt send option", () => duro.send("keywords", "m", { idempotency: "k" } as never)],
        ["options twice", () => duro.send("keywords", "m", { idempotencyKey: "k" } as never, {})],
        ["options, not a string", () => duro.send("keywords", "m", "t", "k" as never)],
        ["a Date for a timeout", () => duro.getEvent("keywords", "k", new Date() as never)],
        ["a Map for options", () => duro.send("keywords", "m", new Map() as never)],
      ];
      for (const [what, call] of bad) await expect(call(), what).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it("recv returns null when no message arrives within the timeout", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("timesOut", async () => duro.recv("nothing", 0.3));
      await duro.launch();
      const start = performance.now();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toBeNull();
      expect(since(start)).toBeGreaterThanOrEqual(280);
      expect(since(start)).toBeLessThan(1500);
    });

    it("a negative recv or getEvent timeout is one already past, as in the reference library: null at once", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("past", async () => {
        const first = await duro.recv("t", -5);
        const event = await duro.getEvent("nobody", "k", -1);
        return [first, event, await duro.recv("t", -0.5)];
      });
      await duro.launch();
      const start = performance.now();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "past" }));
      expect(await handle.getResult()).toEqual([null, null, null]);
      expect(since(start)).toBeLessThan(1500);
      expect(await duro.getEvent("nobody", "k", -1)).toBeNull();
      for (const bad of [Number.NaN, "1" as never]) await expect(duro.getEvent("nobody", "k", bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it("a second recv on a topic while one of the workflow's waits there throws NonDeterminismError, as in the reference library; other topics are fine", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("both", async () => {
        const [a, b] = await Promise.allSettled([duro.recv("t", 5), duro.recv("t", 5)]);
        const [u, v] = await Promise.all([duro.recv("u", 5), duro.recv("v", 5)]);
        return [a.status === "fulfilled" ? a.value : "refused", b.status === "rejected" && b.reason instanceof NonDeterminismError ? "refused" : "taken", u, v];
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "both" }));
      await duro.send("both", "first", "t");
      await duro.send("both", "to-u", "u");
      await duro.send("both", "to-v", "v");
      expect(await handle.getResult()).toEqual(["first", "refused", "to-u", "to-v"]);
    });

    it("a message of any value, including null, is delivered as sent", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("values", async () => [await duro.recv("v", 5), await duro.recv("v", 5), await duro.recv("v", 5)]);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await duro.send(handle.workflowId, 0, "v");
      await duro.send(handle.workflowId, "", "v");
      await duro.send(handle.workflowId, [1, { x: 2 }], "v");
      expect(await handle.getResult()).toEqual([0, "", [1, { x: 2 }]]);
    });

    it("send with an idempotencyKey delivers once however often it is called", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("dedup", async () => [await duro.recv("t", 5), await duro.recv("t", 0.3)]);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await duro.send(handle.workflowId, "once", "t", { idempotencyKey: "k-1" });
      await duro.send(handle.workflowId, "once", "t", { idempotencyKey: "k-1" });
      await Promise.all([1, 2, 3].map(() => duro.send(handle.workflowId, "once", "t", { idempotencyKey: "k-1" })));
      expect(await handle.getResult()).toEqual(["once", null]);
    });

    it("the same idempotencyKey sent to two workflows reaches both", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("both", async () => duro.recv("t", 5));
      await duro.launch();
      const one = await duro.startWorkflow(wf);
      const two = await duro.startWorkflow(wf);
      await duro.send(one.workflowId, "hi", "t", { idempotencyKey: "shared" });
      await duro.send(two.workflowId, "hi", "t", { idempotencyKey: "shared" });
      expect([await one.getResult(), await two.getResult()]).toEqual(["hi", "hi"]);
    });

    it("a workflow can send to another workflow", async () => {
      const duro = t.duro();
      const receiver = duro.registerWorkflow("receiver", async () => duro.recv("hello", 5));
      const sender = duro.registerWorkflow("sender", async (to: string) => {
        await duro.send(to, `hi from ${duro.workflowId}`, "hello");
        return "sent";
      });
      await duro.launch();
      const r = await duro.startWorkflow(receiver);
      await duro.startWorkflow(sender.with({ workflowId: "S" }), r.workflowId);
      expect(await r.getResult()).toBe("hi from S");
    });

    it("sending from outside a workflow creates no workflow", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("receiver", async () => duro.recv("t", 5));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await duro.send(handle.workflowId, 1, "t");
      await handle.getResult();
      expect((await duro.listWorkflows()).map((s) => s.workflowId)).toEqual([handle.workflowId]);
    });
  });

  describe("typed errors", () => {
    it("send to an unknown workflow throws WorkflowNotFoundError and writes nothing", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("late", async () => duro.recv("t", 0.2));
      await duro.launch();
      await expect(duro.send("ghost", "boo", "t")).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(duro.send("ghost", "boo", "t", { idempotencyKey: "k" })).rejects.toBeInstanceOf(WorkflowNotFoundError);
      expect(await duro.listWorkflows()).toEqual([]);
      // A workflow created with that ID afterwards finds no message waiting.
      expect(await (await duro.startWorkflow(wf.with({ workflowId: "ghost" }))).getResult()).toBeNull();
    });

    it("send to an unknown workflow inside a workflow throws WorkflowNotFoundError there", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("sendsToGhost", async () => {
        try {
          await duro.send("ghost", 1);
          return "sent";
        } catch (error) {
          return error instanceof WorkflowNotFoundError ? "not found" : `other: ${error}`;
        }
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("not found");
    });

    it("recv outside a workflow, or inside a step, throws NotInWorkflowError", async () => {
      const duro = t.duro();
      const stepRecv = duro.registerStep("stepRecv", async () => duro.recv("t", 0.1));
      const wf = duro.registerWorkflow("recvInStep", async () => {
        try {
          await stepRecv();
          return "received";
        } catch (error) {
          return error instanceof NotInWorkflowError ? "refused" : `other: ${error}`;
        }
      });
      await duro.launch();
      await expect(duro.recv("t", 0.1)).rejects.toBeInstanceOf(NotInWorkflowError);
      await expect(duro.recv("t", 0.1)).rejects.toThrow("recv() can only be called from within a workflow. Call it from a function registered with registerWorkflow().");
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("refused");
    });
  });

  describe("durability", () => {
    it("a received message is recorded: a recovered workflow gets it again and takes the next one next", async () => {
      const hang = hangPoint();
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("twoMessages", async () => {
          const first = await duro.recv("t", 10);
          await stop();
          const second = await duro.recv("t", 10);
          return [first, second];
        });
      };
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      const handle = await a.startWorkflow(wf.with({ workflowId: "M" }));
      await a.send(handle.workflowId, "m1", "t");
      await waitFor(() => hang.state.entered === 1);
      await crash(a);

      const sender = t.duro({ executorId: "sender" });
      await sender.launch();
      await sender.send("M", "m2", "t");
      hang.state.on = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("M")).toEqual(["m1", "m2"]);
    });

    it("a message sent while the workflow is down is received after recovery", async () => {
      const build = (duro: Duro) => duro.registerWorkflow("patient", async () => duro.recv("t", 30));
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      await a.startWorkflow(wf.with({ workflowId: "W" }));
      await waitFor(async () => (await a.listWorkflowSteps("W")).length > 0); // the wait is recorded
      await crash(a);

      const sender = t.duro({ executorId: "sender" });
      await sender.launch();
      await sender.send("W", "while you were out", "t");
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("W")).toBe("while you were out");
    });

    it("a send inside a workflow is delivered once even when the sender is recovered", async () => {
      const hang = hangPoint();
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        const receiver = duro.registerWorkflow("receiver", async () => [await duro.recv("t", 10), await duro.recv("t", 0.5)]);
        const sender = duro.registerWorkflow("sender", async (to: string) => {
          await duro.send(to, "exactly once", "t");
          await stop();
          return "sent";
        });
        return { receiver, sender };
      };
      const a = t.duro({ executorId: "e1" });
      const wfs = build(a);
      const other = t.duro({ executorId: "e2" });
      const receiverOnOther = build(other).receiver;
      await a.launch();
      await other.launch();
      const r = await other.startWorkflow(receiverOnOther.with({ workflowId: "RCV" }));
      await a.startWorkflow(wfs.sender.with({ workflowId: "SND" }), r.workflowId);
      await waitFor(() => hang.state.entered === 1);
      await crash(a);
      hang.state.on = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("SND")).toBe("sent");
      expect(await r.getResult()).toEqual(["exactly once", null]);
    });

    it("the recv timeout is durable: a recovered workflow waits only for what remains", async () => {
      const build = (duro: Duro) => duro.registerWorkflow("timeout", async () => duro.recv("never", 2));
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      const start = performance.now();
      await a.startWorkflow(wf.with({ workflowId: "T" }));
      await waitFor(async () => (await a.listWorkflowSteps("T")).length > 0);
      await new Promise((resolve) => setTimeout(resolve, 800 - since(start))); // the crash comes ~0.8 s in
      await crash(a);
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("T")).toBeNull();
      const elapsed = since(start);
      // 2 s in all; restarting the timeout would take 2.8 s.
      expect(elapsed).toBeGreaterThanOrEqual(1900);
      expect(elapsed).toBeLessThan(2500);
    });
  });
});
