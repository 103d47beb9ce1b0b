/** Events: setEvent (last value wins), getEvent with a timeout inside and outside workflows, getAllEvents. */
import { describe, expect, it } from "vitest";
import { NotInWorkflowError, type Duro } from "../../src/index.js";
import { backends, crash, gate, since, useDuro, waitFor, within } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("setEvent and getEvent", () => {
    it("the last value set wins", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("publisher", async () => {
        await duro.setEvent("state", "started");
        await duro.setEvent("state", "paid");
        await duro.setEvent("other", { n: 1 });
        return "done";
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      expect(await duro.getEvent(handle.workflowId, "state", 1)).toBe("paid");
      expect(await duro.getEvent(handle.workflowId, "other", 1)).toEqual({ n: 1 });
      expect(await duro.getAllEvents(handle.workflowId)).toEqual({ state: "paid", other: { n: 1 } });
    });

    it("getEvent outside a workflow waits for an event set later", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("later", async () => {
        await duro.recv("go", 10);
        await duro.setEvent("ready", true);
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const event = duro.getEvent(handle.workflowId, "ready", 10);
      await duro.send(handle.workflowId, null, "go");
      expect(await event).toBe(true);
    });

    it("getEvent on another instance sees an event set by this one", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("publisher", async () => {
        await a.recv("go", 10);
        await a.setEvent("k", "v");
      });
      await a.launch();
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const handle = await a.startWorkflow(wf);
      const event = b.getEvent(handle.workflowId, "k", 10);
      await a.send(handle.workflowId, null, "go");
      expect(await event).toBe("v");
    });

    it("a getEvent waiter is looked at again for writes to its key only, here and in another instance", async () => {
      const a = t.duro({ executorId: "a" });
      const b = t.duro({ executorId: "b" });
      const wf = a.registerWorkflow("progress", async () => {
        await a.recv("go", 10);
        for (let i = 0; i < 20; i++) await a.setEvent("progress", i);
        await a.setEvent("done", "yes");
      });
      await Promise.all([a.launch(), b.launch()]);
      const handle = await a.startWorkflow(wf);
      const looks = { a: 0, b: 0 };
      for (const [name, duro] of [["a", a], ["b", b]] as const) {
        const store = duro.engine.store;
        const getEvent = store.getEvent.bind(store);
        store.getEvent = (id, key) => (key === "done" && looks[name]++, getEvent(id, key));
      }
      const waiters = [...Array.from({ length: 10 }, () => a.getEvent(handle.workflowId, "done", 30)), ...Array.from({ length: 10 }, () => b.getEvent(handle.workflowId, "done", 30))];
      await waitFor(() => looks.a === 10 && looks.b === 10, 5000, "every waiter's first look");
      await a.send(handle.workflowId, null, "go");
      expect(await Promise.all(waiters)).toEqual(Array(20).fill("yes"));
      // Each waiter looked once at the start and about once when "done" was set: not once per "progress" write.
      expect(looks.a).toBeLessThanOrEqual(30);
      expect(looks.b).toBeLessThanOrEqual(30);
    });

    it("a waiter in another instance hears of keys and IDs with newlines and backslashes at once, not at a safety poll", async () => {
      const a = t.duro({ executorId: "a" });
      const keys = ["two\nlines", "back\\slash\\n", "\n"];
      const wf = a.registerWorkflow("odd keys", async () => {
        await a.recv("go", 10);
        for (const key of keys) await a.setEvent(key, key);
        await a.writeStream("s\nt", 1);
        await a.closeStream("s\nt");
      });
      await a.launch();
      const b = t.duro({ executorId: "b", safetyPollSeconds: 60 });
      await b.launch();
      const handle = await a.startWorkflow(wf.with({ workflowId: "id\nwith\\newline" }));
      const events = keys.map((key) => b.getEvent(handle.workflowId, key, 3));
      const read = (async () => {
        const values: unknown[] = [];
        for await (const value of b.readStream(handle.workflowId, "s\nt")) values.push(value);
        return values;
      })();
      await a.send(handle.workflowId, null, "go");
      expect(await Promise.all(events)).toEqual(keys);
      expect(await within(3000, read, "the stream to end")).toEqual([1]);
      expect(await within(3000, b.getResult(handle.workflowId), "the result")).toBeUndefined();
      // A cancel's wake-up is written by the database itself.
      const waiting = await a.startWorkflow(wf.with({ workflowId: "cancel\\me\nnow" }));
      const outcome = b.getResult(waiting.workflowId).catch((error: Error) => error.name);
      await a.cancelWorkflow(waiting.workflowId);
      expect(await within(3000, outcome, "the cancel to be heard")).toBe("AwaitedWorkflowCancelledError");
    });

    it("getEvent returns null after its timeout when the event is never set", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("silent", async () => "no events");
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      const start = performance.now();
      expect(await duro.getEvent(handle.workflowId, "missing", 0.3)).toBeNull();
      expect(since(start)).toBeGreaterThanOrEqual(280);
      expect(since(start)).toBeLessThan(1500);
      expect(await duro.getEvent("no-such-workflow", "k", 0.1)).toBeNull();
    });

    it("getEvent inside a workflow waits, returns the value and records it", async () => {
      const duro = t.duro();
      const publisher = duro.registerWorkflow("publisher", async () => {
        await duro.recv("go", 10);
        await duro.setEvent("price", 42);
      });
      const watcher = duro.registerWorkflow("watcher", async (target: string) => duro.getEvent<number>(target, "price", 10));
      await duro.launch();
      const p = await duro.startWorkflow(publisher);
      const w = await duro.startWorkflow(watcher, p.workflowId);
      await duro.send(p.workflowId, null, "go");
      expect(await w.getResult()).toBe(42);
      const steps = await duro.listWorkflowSteps(w.workflowId);
      expect(steps.some((s) => s.output === 42)).toBe(true);
    });

    it("getEvent inside a workflow records the value and the timeout's wake-up time, also when the value is there at once", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("selfWatch", async () => {
        await duro.setEvent("k", "v");
        return duro.getEvent(duro.workflowId!, "k", 0);
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(wf.with({ workflowId: "self-watch" }))).getResult()).toBe("v");
      const steps = await duro.listWorkflowSteps("self-watch");
      expect(steps.map((s) => [s.functionId, s.functionName, s.functionName === "duro.sleep" ? "wake-up" : s.output])).toEqual([
        [1, "duro.setEvent", null], [2, "duro.getEvent", "v"], [3, "duro.sleep", "wake-up"],
      ]);
    });

    it("getEvent inside a workflow returns null after its timeout", async () => {
      const duro = t.duro();
      const watcher = duro.registerWorkflow("watcher", async () => duro.getEvent(duro.workflowId!, "never", 0.3));
      await duro.launch();
      const start = performance.now();
      expect(await (await duro.startWorkflow(watcher)).getResult()).toBeNull();
      expect(since(start)).toBeGreaterThanOrEqual(280);
    });

    it("a step can set an event of its workflow", async () => {
      const duro = t.duro();
      const step = duro.registerStep("announce", async () => duro.setEvent("from-step", "hi"));
      const wf = duro.registerWorkflow("stepEvents", async () => {
        await step();
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      expect(await duro.getEvent(handle.workflowId, "from-step", 1)).toBe("hi");
    });

    it("a step that sets a key twice, or is retried, leaves its last value, in a fork past it too", async () => {
      const duro = t.duro();
      let attempt = 0;
      const twice = duro.registerStep("twice", async () => {
        await duro.setEvent("k", "first");
        await duro.setEvent("k", "last");
        await Promise.all([1, 2, 3].map((n) => duro.setEvent("both", n))); // the last two in one commit
      });
      const retried = duro.registerStep("retried", async () => {
        await duro.setEvent("try", `try${++attempt}`);
        if (attempt === 1) throw new Error("again");
      }, { retriesAllowed: true, intervalSeconds: 0.01 });
      const wf = duro.registerWorkflow("setters", async () => {
        await twice();
        await retried();
        return "ok";
      });
      await duro.launch();
      await (await duro.startWorkflow(wf.with({ workflowId: "setters" }))).getResult();
      expect(await duro.getAllEvents("setters")).toEqual({ k: "last", both: 3, try: "try2" });
      const fork = await duro.forkWorkflow("setters", 3);
      expect(await fork.getResult()).toBe("ok");
      expect(await duro.getAllEvents(fork.workflowId)).toEqual({ k: "last", both: 3, try: "try2" });
      expect(attempt).toBe(2);
    });

    it("setEvent outside a workflow throws NotInWorkflowError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.setEvent("k", 1)).rejects.toBeInstanceOf(NotInWorkflowError);
      // It works in a step too, and says so.
      await expect(duro.setEvent("k", 1)).rejects.toThrow("setEvent() can only be called from within a workflow or a step.");
    });

    it("getAllEvents is empty for a workflow without events, and works inside a workflow", async () => {
      const duro = t.duro();
      const publisher = duro.registerWorkflow("publisher", async () => {
        await duro.setEvent("a", 1);
        await duro.setEvent("b", [2]);
      });
      const reader = duro.registerWorkflow("reader", async (id: string) => duro.getAllEvents(id));
      await duro.launch();
      const p = await duro.startWorkflow(publisher);
      await p.getResult();
      expect(await (await duro.startWorkflow(reader, p.workflowId)).getResult()).toEqual({ a: 1, b: [2] });
      const r = await duro.startWorkflow(reader, "nothing-here");
      expect(await r.getResult()).toEqual({});
    });
  });

  describe("durability", () => {
    it("a recovered workflow replays its recorded getEvent value even if the event changed since", async () => {
      const state = { hang: true, entered: 0 };
      const never = gate();
      const build = (duro: Duro) => {
        const stop = duro.registerStep("hang", async () => {
          state.entered++;
          if (state.hang) await never.promise;
        });
        const publisher = duro.registerWorkflow("publisher", async () => {
          await duro.setEvent("v", 1);
          await duro.recv("again", 30);
          await duro.setEvent("v", 2);
        });
        const watcher = duro.registerWorkflow("watcher", async (target: string) => {
          const seen = await duro.getEvent(target, "v", 10);
          await stop();
          return seen;
        });
        return { publisher, watcher };
      };
      const main = t.duro({ executorId: "main" });
      const { publisher } = build(main);
      await main.launch();
      const p = await main.startWorkflow(publisher.with({ workflowId: "PUB" }));

      const a = t.duro({ executorId: "e1" });
      const { watcher } = build(a);
      await a.launch();
      await a.startWorkflow(watcher.with({ workflowId: "WATCH" }), p.workflowId);
      await waitFor(() => state.entered === 1);
      await crash(a);

      await main.send(p.workflowId, null, "again");
      await p.getResult();
      expect(await main.getEvent(p.workflowId, "v", 1)).toBe(2);
      state.hang = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("WATCH")).toBe(1);
    });

    it("the getEvent timeout inside a workflow is durable across a restart", async () => {
      const build = (duro: Duro) => duro.registerWorkflow("waits", async () => duro.getEvent("nobody", "k", 2));
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      const start = performance.now();
      await a.startWorkflow(wf.with({ workflowId: "G" }));
      await waitFor(async () => (await a.listWorkflowSteps("G")).length > 0);
      await new Promise((resolve) => setTimeout(resolve, 800 - since(start)));
      await crash(a);
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("G")).toBeNull();
      const elapsed = since(start);
      expect(elapsed).toBeGreaterThanOrEqual(1900);
      expect(elapsed).toBeLessThan(2500); // restarting the timeout would take 2.8 s
    });
  });
});
