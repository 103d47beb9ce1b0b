/** Durable sleep, waitFirst and wait(): what a workflow waited for is recorded and replayed. */
import { describe, expect, it } from "vitest";
import { DatabaseError, InvalidArgumentError, NotInWorkflowError, type Duro, type WorkflowHandle } from "../../src/index.js";
import { backends, crash, crashedAndRelaunched, gate, hangPoint, since, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("sleep", () => {
    it("sleep waits about the given time", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("nap", async () => {
        await duro.sleep(0.3);
        return "rested";
      });
      await duro.launch();
      const start = performance.now();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("rested");
      expect(since(start)).toBeGreaterThanOrEqual(280);
      expect(since(start)).toBeLessThan(1000);
      // Recorded with its wake-up time as output, and completed at that time (as the reference).
      const [sleep] = await duro.listWorkflowSteps((await duro.listWorkflows({ name: "nap" }))[0].workflowId);
      expect(sleep).toMatchObject({ functionId: 1, functionName: "duro.sleep" });
      expect(sleep.output).toBe(sleep.startedAtEpochMs! + 300);
      expect(sleep.completedAtEpochMs).toBe(sleep.output);
    });

    it("the timeout of recv and getEvent is recorded with its wake-up time, completed when written (as the reference)", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("waits", async () => [await duro.recv("nothing", 0.2), await duro.getEvent("nobody", "k", 0.2)]);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toEqual([null, null]);
      const steps = await duro.listWorkflowSteps(handle.workflowId);
      expect(steps.map((s) => s.functionName)).toEqual(["duro.recv", "duro.sleep", "duro.getEvent", "duro.sleep"]);
      for (const timeout of [steps[1], steps[3]]) {
        expect(timeout.output).toBe(timeout.startedAtEpochMs! + 200);
        expect(timeout.completedAtEpochMs! - timeout.startedAtEpochMs!).toBeLessThan(150);
      }
    });

    it("sleep(0) returns at once", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("noNap", async () => {
        const start = performance.now();
        await duro.sleep(0);
        return performance.now() - start;
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBeLessThan(100);
    });

    it("sleep outside a workflow throws NotInWorkflowError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.sleep(0.01)).rejects.toBeInstanceOf(NotInWorkflowError);
    });

    it("a negative sleep returns at once and records nothing, as sleep(0), in a workflow or not; NaN is refused with InvalidArgumentError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("negative", async () => {
        await duro.sleep(-1);
        await duro.sleep(0);
        return "awake";
      });
      const bad = duro.registerWorkflow("bad", async () => duro.sleep(Number.NaN));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toBe("awake");
      expect(await duro.listWorkflowSteps(handle.workflowId)).toEqual([]);
      await duro.sleep(-1);
      await duro.sleep(0);
      await expect((await duro.startWorkflow(bad)).getResult()).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it("sleep is durable: a workflow restarted mid-sleep sleeps only what remains", async () => {
      const build = (duro: Duro) =>
        duro.registerWorkflow("longNap", async () => {
          await duro.sleep(2);
          return "awake";
        });
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      const start = performance.now();
      await a.startWorkflow(wf.with({ workflowId: "Z" }));
      await waitFor(async () => (await a.listWorkflowSteps("Z")).length > 0); // the wake-up time is recorded
      await new Promise((resolve) => setTimeout(resolve, 700 - since(start))); // crash ~0.7 s into the sleep
      await crash(a);
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("Z")).toBe("awake");
      const elapsed = since(start);
      // 2 s in all; sleeping the full 2 s again would end at 2.7 s.
      expect(elapsed).toBeGreaterThanOrEqual(1900);
      expect(elapsed).toBeLessThan(2450);
    });

    it("a sleep that ended before the crash is not slept again", async () => {
      const hang = hangPoint();
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("sleptAlready", async () => {
          await duro.sleep(1);
          await stop();
          return "done";
        });
      };
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      await a.startWorkflow(wf.with({ workflowId: "S" }));
      await hang.reached();
      await crash(a);
      hang.state.on = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      const start = performance.now();
      await b.launch();
      expect(await b.getResult("S")).toBe("done");
      expect(since(start)).toBeLessThan(800); // sleeping again would take 1 s
    });
  });

  describe("waitFirst", () => {
    function waiters(duro: Duro) {
      return duro.registerWorkflow("waitsForGo", async (label: string) => {
        await duro.recv("go", 30);
        return label;
      });
    }

    it("returns the handle of the first workflow to finish", async () => {
      const duro = t.duro();
      const wf = waiters(duro);
      await duro.launch();
      const handles = await Promise.all(["a", "b", "c"].map((label) => duro.startWorkflow(wf, label)));
      const first = duro.waitFirst(handles);
      await duro.send(handles[1].workflowId, null, "go");
      const winner = await first;
      expect(winner).toBe(handles[1]);
      expect(await winner.getResult()).toBe("b");
      for (const h of [handles[0], handles[2]]) await duro.send(h.workflowId, null, "go");
    });

    it("returns at once when one of the workflows has already finished, or failed", async () => {
      const duro = t.duro();
      const wf = waiters(duro);
      const fails = duro.registerWorkflow("fails", async () => {
        throw new Error("failed first");
      });
      await duro.launch();
      const pending = await duro.startWorkflow(wf, "slow");
      const failed = await duro.startWorkflow(fails);
      await failed.getResult().catch(() => undefined);
      expect(await duro.waitFirst<unknown>([pending, failed])).toBe(failed);
      await duro.send(pending.workflowId, null, "go");
    });

    it("an empty list, or one holding something else than handles, is refused with InvalidArgumentError, inside and outside a workflow", async () => {
      const duro = t.duro();
      const bad = [[], [{}], [null], ["id"]] as unknown as WorkflowHandle<unknown>[][];
      const wf = duro.registerWorkflow("emptyWait", async () => {
        const outcomes: string[] = [];
        for (const handles of bad) {
          await duro.waitFirst(handles).then(
            () => outcomes.push("returned"),
            (error) => outcomes.push(error instanceof InvalidArgumentError ? "refused" : `other: ${error}`),
          );
        }
        await duro.wait([]).then(
          () => outcomes.push("returned"),
          (error) => outcomes.push(error instanceof InvalidArgumentError ? "refused" : `other: ${error}`),
        );
        return outcomes;
      });
      await duro.launch();
      for (const handles of bad) await expect(duro.waitFirst(handles)).rejects.toBeInstanceOf(InvalidArgumentError);
      for (const items of [[], [1], [{}]] as unknown as Promise<unknown>[][]) await expect(duro.wait(items)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await (await duro.startWorkflow(wf)).getResult()).toEqual(["refused", "refused", "refused", "refused", "refused"]);
    });

    it("inside a workflow the winner is recorded: a replay returns the same one", async () => {
      const hang = hangPoint();
      const others = t.duro({ executorId: "others" });
      const racer = waiters(others);
      await others.launch();
      const first = await others.startWorkflow(racer.with({ workflowId: "racer-a" }), "a");
      const second = await others.startWorkflow(racer.with({ workflowId: "racer-b" }), "b");

      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        return duro.registerWorkflow("race", async (ids: string[]) => {
          const handles: WorkflowHandle<unknown>[] = [];
          for (const id of ids) handles.push(await duro.retrieveWorkflow(id));
          const winner = await duro.waitFirst(handles);
          await stop();
          return winner.workflowId;
        });
      };
      const a = t.duro({ executorId: "e1" });
      const race = build(a);
      await a.launch();
      await a.startWorkflow(race.with({ workflowId: "R" }), [first.workflowId, second.workflowId]);
      await others.send(second.workflowId, null, "go");
      await hang.reached();
      await crash(a);

      await others.send(first.workflowId, null, "go"); // now both have finished
      await first.getResult();
      hang.state.on = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("R")).toBe("racer-b");
    });
  });

  describe("wait", () => {
    it("ALL_COMPLETED (the default) waits for every item, failures included", async () => {
      const duro = t.duro();
      await duro.launch();
      const late = gate<string>();
      const ok = Promise.resolve("ok");
      const bad = Promise.reject(new Error("bad"));
      const slow = late.promise;
      const result = duro.wait([ok, bad, slow]);
      setTimeout(() => late.open("slow"), 50);
      const { done, pending } = await result;
      expect(done).toHaveLength(3);
      expect(new Set(done)).toEqual(new Set([ok, bad, slow]));
      expect(pending).toEqual([]);
    });

    it("FIRST_COMPLETED returns as soon as one item settles", async () => {
      const duro = t.duro();
      await duro.launch();
      const never = new Promise<void>(() => undefined);
      const soon = gate<string>();
      const result = duro.wait([never, soon.promise], { returnWhen: "FIRST_COMPLETED" });
      soon.open("first");
      const { done, pending } = await result;
      expect(done).toEqual([soon.promise]);
      expect(pending).toEqual([never]);
    });

    it("FIRST_EXCEPTION returns at the first failure, with what has completed so far", async () => {
      const duro = t.duro();
      await duro.launch();
      const never = new Promise<void>(() => undefined);
      const ok = Promise.resolve(1);
      const failing = gate<void>();
      const fails = failing.promise.then(() => {
        throw new Error("boom");
      });
      const result = duro.wait([ok, fails, never], { returnWhen: "FIRST_EXCEPTION" });
      setTimeout(() => failing.open(), 20);
      const { done, pending } = await result;
      expect(new Set(done)).toEqual(new Set([ok, fails]));
      expect(pending).toEqual([never]);
    });

    it("FIRST_EXCEPTION without any failure waits for everything", async () => {
      const duro = t.duro();
      await duro.launch();
      const a = Promise.resolve("a");
      const later = gate<string>();
      const result = duro.wait([a, later.promise], { returnWhen: "FIRST_EXCEPTION" });
      setTimeout(() => later.open("b"), 20);
      const { done, pending } = await result;
      expect(new Set(done)).toEqual(new Set([a, later.promise]));
      expect(pending).toEqual([]);
    });

    it("timeoutSeconds returns what is done when the time is up", async () => {
      const duro = t.duro();
      await duro.launch();
      const never = new Promise<void>(() => undefined);
      const ok = Promise.resolve("ok");
      const start = performance.now();
      const { done, pending } = await duro.wait([ok, never], { timeoutSeconds: 0.3 });
      expect(since(start)).toBeGreaterThanOrEqual(280);
      expect(since(start)).toBeLessThan(1200);
      expect(done).toEqual([ok]);
      expect(pending).toEqual([never]);
      // Infinity is no timeout, as recv's: the wait ends when the items do.
      const later = new Promise((resolve) => setTimeout(() => resolve("later"), 50));
      expect((await duro.wait([later], { timeoutSeconds: Infinity })).done).toEqual([later]);
    });

    /** A launched instance with two workflows started: `slow` waits for a message on "go", `fast` returns at once. */
    async function slowAndFast() {
      const duro = t.duro();
      const wf = duro.registerWorkflow("waitsForGo", async () => duro.recv("go", 30));
      const quick = duro.registerWorkflow("quick", async () => "quick");
      await duro.launch();
      return { duro, slow: await duro.startWorkflow(wf), fast: await duro.startWorkflow(quick) };
    }

    it("accepts workflow handles", async () => {
      const { duro, slow, fast } = await slowAndFast();
      const { done, pending } = await duro.wait<WorkflowHandle<unknown>>([slow, fast], { returnWhen: "FIRST_COMPLETED" });
      expect(done).toEqual([fast]);
      expect(pending).toEqual([slow]);
      await duro.send(slow.workflowId, null, "go");
    });

    it("outside a workflow, a wait that returned leaves nothing waiting on its pending handles (a poll of a long-running workflow does not pile up)", async () => {
      const { duro, slow, fast } = await slowAndFast();
      await fast.getResult();
      const before = duro.engine.waiters.size;
      for (let i = 0; i < 20; i++) {
        expect((await duro.wait([slow], { timeoutSeconds: 0 })).pending).toEqual([slow]);
        expect((await duro.wait([slow, fast], { returnWhen: "FIRST_COMPLETED" })).done).toEqual([fast]);
      }
      expect(duro.engine.waiters.size).toBe(before);
      await duro.send(slow.workflowId, "now", "go");
      expect(await slow.getResult()).toBe("now");
    });

    it("a workflow waiting on many children at once, or wait() on many handles, prints no listener-leak warning", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async (x: number) => {
        await duro.sleep(0.05);
        return x;
      });
      const parent = duro.registerWorkflow("fanOut", async () => {
        const handles = await Promise.all(Array.from({ length: 15 }, (_, i) => duro.startWorkflow(child, i)));
        return (await Promise.all(handles.map((h) => h.getResult()))).length;
      });
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on("warning", onWarning);
      try {
        await duro.launch();
        expect(await parent()).toBe(15);
        const handles = await Promise.all(Array.from({ length: 15 }, (_, i) => duro.startWorkflow(child, i)));
        expect((await duro.wait(handles, { timeoutSeconds: 10 })).done).toHaveLength(15);
        await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
      } finally {
        process.off("warning", onWarning);
      }
      expect(warnings.map((w) => w.name)).not.toContain("MaxListenersExceededWarning");
    });

    it("items done already at the call are all in done, with FIRST_COMPLETED and with a timeout of 0, in a workflow or not", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async (x: number) => x);
      const parent = duro.registerWorkflow("parent", async () => {
        const a = await duro.startWorkflow(child, 1);
        const b = await duro.startWorkflow(child, 2);
        await a.getResult();
        await b.getResult();
        const handles = await duro.wait([a, b], { returnWhen: "FIRST_COMPLETED" });
        const promises = await duro.wait([Promise.resolve(1), Promise.reject(new Error("x")), Promise.resolve(3)], { returnWhen: "FIRST_COMPLETED" });
        const timedOut = await duro.wait([a, b], { timeoutSeconds: 0 });
        return [handles, promises, timedOut].map(({ done, pending }) => [done.length, pending.length]);
      });
      await duro.launch();
      expect(await parent()).toEqual([[2, 0], [3, 0], [2, 0]]);
      // Outside a workflow, and with handles of workflows finished in another process (read back).
      const [a, b] = await Promise.all([1, 2].map((x) => duro.startWorkflow(child, x)));
      await Promise.all([a.getResult(), b.getResult()]);
      const other = t.duro();
      await other.launch();
      const [ra, rb] = [await other.retrieveWorkflow(a.workflowId), await other.retrieveWorkflow(b.workflowId)];
      for (const options of [{ returnWhen: "FIRST_COMPLETED" as const }, { timeoutSeconds: 0 }]) {
        const { done, pending } = await other.wait([ra, rb], options);
        expect(done.length, JSON.stringify(options)).toBe(2);
        expect(pending).toEqual([]);
      }
    });

    it("an unknown returnWhen is refused with InvalidArgumentError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.wait([Promise.resolve(1)], { returnWhen: "SOMETIMES" as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it("inside a workflow the done/pending split is recorded and replayed as it was", async () => {
      const hang = hangPoint();
      let runs = 0;
      const never = gate();
      const build = (duro: Duro) => {
        const stop = hang.register(duro);
        // A step that never returns in the first run and returns at once in the second.
        const step = duro.registerStep("flip", async () => {
          if (runs === 1) await never.promise;
          return "step";
        });
        return duro.registerWorkflow("split", async () => {
          runs++;
          // A plain timer: quick in the first run, slow in the second.
          const timer = new Promise((resolve) => setTimeout(() => resolve("timer"), runs === 1 ? 10 : 300));
          const items = [timer, step()];
          const { done, pending } = await duro.wait(items, { returnWhen: "FIRST_COMPLETED" });
          await stop();
          return { done: done.map((p) => items.indexOf(p)), pending: pending.map((p) => items.indexOf(p)) };
        });
      };
      // Left to itself the second run would see the step finish first; the record says the timer did.
      const b = await crashedAndRelaunched(t, hang, build, "W");
      expect(await b.getResult("W")).toEqual({ done: [0], pending: [1] });
      expect(runs).toBe(2);
    });

    it("a wait's pending item that ends after its workflow is recorded then, in the original and in a fork replaying the wait, and ends no process", async () => {
      const duro = t.duro();
      let slowRuns = 0;
      const slowDone = gate();
      const wf = duro.registerWorkflow("firstOfTwo", async () => {
        const slow = duro.runStep(async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          if (++slowRuns === 2) slowDone.open();
          return "slow";
        }, { name: "slow" });
        const fast = duro.runStep(async () => "fast", { name: "fast" });
        const { done } = await duro.wait([slow, fast], { returnWhen: "FIRST_COMPLETED" });
        return done.length;
      });
      await duro.launch();
      expect(await duro.startWorkflow(wf.with({ workflowId: "A" })).then((h) => h.getResult())).toBe(1);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      try {
        // The fork replays everything recorded, the wait included. The slow step had not ended
        // when it was forked, so the fork runs it again; each run records it when it ends.
        const fork = await duro.forkWorkflow("A", 100, { newWorkflowId: "A-fork" });
        expect(await fork.getResult()).toBe(1);
        await slowDone.promise;
        const slowOf = async (id: string) => (await duro.listWorkflowSteps(id)).find((s) => s.functionName === "slow")?.output;
        await waitFor(async () => (await slowOf("A")) === "slow" && (await slowOf("A-fork")) === "slow", 10_000, "both slow steps recorded");
        await new Promise((resolve) => setImmediate(resolve));
        expect(unhandled).toEqual([]);
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    });

    it("a handle it could not look at (the database out) fails the wait rather than counting as done", async () => {
      const runner = t.duro();
      const naps = runner.registerWorkflow("naps", async () => runner.sleep(30));
      await runner.launch();
      const asleep = await runner.startWorkflow(naps);
      const duro = t.duro({ executorId: "other" });
      await duro.launch();
      const handle = await duro.retrieveWorkflow(asleep.workflowId);
      const rows = (duro as unknown as { engine: { rows: { read: () => Promise<unknown> } } }).engine.rows;
      rows.read = async () => {
        throw new DatabaseError("The database is out (a test's).");
      };
      const outcome = await duro.wait([handle], { returnWhen: "FIRST_EXCEPTION", timeoutSeconds: 5 }).then((split) => split, (e: unknown) => e);
      expect(outcome).toBeInstanceOf(DatabaseError); // it said { done: [handle] }
    });
  });
});
