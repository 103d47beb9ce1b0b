/**
 * Queued work across executor deaths and mismatched executors, and dispatch without polling
 * delay: an enqueue wakes the dispatcher directly (same process) or by notification (another
 * instance or a DuroClient), so `pollingIntervalSeconds` never delays a start.
 */
import { describe, expect, it } from "vitest";
import { WorkflowQueue, type Duro } from "../../src/index.js";
import { backends, crash, gate, range, rawQuery, sleep, useClients, useDuro, waitFor, within } from "../helpers.js";
import { Tracker } from "./support.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();
  /**
   * Instances of executor `executorId` whose workflow "job" runs step "work" from queue "q": the
   * step logs its ID in `log` and returns "<id> done"; with `hang` it never ends (the process
   * "dies" mid-step).
   */
  const hangingJobs = (executorId: string, log: string[], workerConcurrency: number) => (hang: boolean) => {
    const duro = t.duro({ executorId, appVersion: "v1" });
    const work = duro.registerStep("work", async (id: string) => {
      log.push(id);
      if (hang) await new Promise<void>(() => {});
      return `${id} done`;
    });
    const job = duro.registerWorkflow("job", async (id: string) => work(id));
    new WorkflowQueue(duro, "q", { workerConcurrency });
    return { duro, job };
  };

  describe("a claimed workflow whose executor dies", () => {
    it("is recovered by the executor's restart and counts against the concurrency limit until done", async () => {
      const tracker = new Tracker();
      const never = new Promise<void>(() => {});
      /** An instance for `executorId`, labelled `label` in the tracker; `hang` bodies never end. */
      const instance = (label: string, executorId: string, hang = false): Duro => {
        const duro = t.duro({ executorId, appVersion: "v1" });
        const work = duro.registerStep("work", async (id: string) => {
          tracker.enter(label, id);
          if (hang) await never; // this process "dies" mid-step: the body never ends
          await sleep(20);
          tracker.exit(label);
        });
        duro.registerWorkflow("job", async (id: string) => {
          await work(id);
          return id;
        });
        new WorkflowQueue(duro, "q", { concurrency: 2 });
        return duro;
      };
      const a1 = instance("a1", "exec-a", true);
      await a1.launch();
      const c = client(t.url);
      const enqueue = (id: string) => c.enqueue<string>({ workflowName: "job", queueName: "q", workflowId: id }, id);
      const first = [await enqueue("w1"), await enqueue("w2")];
      await waitFor(() => tracker.runningOn("a1") === 2, 10_000, "exec-a to run two workflows");

      const b = instance("b", "exec-b");
      await b.launch();
      const rest = await Promise.all(["w3", "w4", "w5", "w6"].map(enqueue));
      await a1.shutdown(); // exec-a dies with w1 and w2 claimed
      tracker.exit("a1");
      tracker.exit("a1");
      await sleep(600);
      // The dead executor's claims still fill the queue: exec-b starts nothing.
      expect(tracker.maxOn("b")).toBe(0);
      const queued = await c.listQueuedWorkflows({ queueName: "q" });
      expect(queued.filter((s) => s.status === "PENDING").map((s) => [s.workflowId, s.executorId])).toEqual([["w1", "exec-a"], ["w2", "exec-a"]]);
      expect(queued.filter((s) => s.status === "ENQUEUED")).toHaveLength(4);

      const a2 = instance("a2", "exec-a");
      await a2.launch(); // the restart recovers w1 and w2
      expect(await Promise.all([...first, ...rest].map((h) => h.getResult()))).toEqual(["w1", "w2", "w3", "w4", "w5", "w6"]);
      expect(tracker.max).toBe(2);
      const recovered = tracker.starts.filter((s) => s.executor === "a2").map((s) => s.id);
      expect(recovered).toEqual(expect.arrayContaining(["w1", "w2"]));
      for (const id of ["w1", "w2"]) expect((await c.getWorkflowStatus(id))!.recoveryAttempts).toBeGreaterThanOrEqual(2);
      // Every workflow's step ran exactly once, apart from the two interrupted by the death.
      expect(tracker.starts.map((s) => s.id).sort()).toEqual(["w1", "w1", "w2", "w2", "w3", "w4", "w5", "w6"]);
    });
  });

  describe("a claimed workflow whose executor dies", () => {
    it("taken over by a live executor whose slots are full, waits for a slot there: workerConcurrency holds", async () => {
      const active = new Map<string, number>();
      const most = new Map<string, number>();
      const instance = (executorId: string) => {
        const duro = t.duro({ executorId, appVersion: "v1", executorLeaseSeconds: 1 });
        const job = duro.registerWorkflow("job", async (id: string) => {
          active.set(executorId, (active.get(executorId) ?? 0) + 1);
          most.set(executorId, Math.max(most.get(executorId) ?? 0, active.get(executorId)!));
          try {
            return `${id}:${await duro.recv<string>("go", 60)}`;
          } finally {
            active.set(executorId, active.get(executorId)! - 1);
          }
        });
        new WorkflowQueue(duro, "q", { workerConcurrency: 2 });
        return { duro, job };
      };
      const x = instance("exec-x");
      const y = instance("exec-y");
      await Promise.all([x.duro.launch(), y.duro.launch()]);
      // Each enqueues two on its idle queue, and runs them itself.
      const handles = [
        ...(await Promise.all(["x1", "x2"].map((id) => x.duro.startWorkflow(x.job.with({ queueName: "q", workflowId: id }), id)))),
        ...(await Promise.all(["y1", "y2"].map((id) => y.duro.startWorkflow(y.job.with({ queueName: "q", workflowId: id }), id)))),
      ];
      await waitFor(() => active.get("exec-x") === 2 && active.get("exec-y") === 2, 10_000, "two running on each executor");
      await crash(x.duro);
      const pendingOnY = async () =>
        (await y.duro.listWorkflows({ workflowIds: ["x1", "x2"], status: "PENDING", executorId: "exec-y" })).length === 2;
      await waitFor(pendingOnY, 15_000, "exec-y to take over exec-x's two");
      for (const id of ["x1", "x2", "y1", "y2"]) await y.duro.send(id, "go", "go");
      expect(await Promise.all(handles.map((h) => y.duro.getResult(h.workflowId)))).toEqual(["x1:go", "x2:go", "y1:go", "y2:go"]);
      expect(most.get("exec-y"), "most running at once on exec-y").toBe(2);
    });

    it("recovered at its executor's restart, starts ahead of the workflows still queued behind it", async () => {
      const starts: string[] = [];
      const instance = hangingJobs("exec-x", starts, 1);
      for (let round = 0; round < 3; round++) {
        starts.length = 0;
        const ids = ["w1", "w2", "w3"].map((id) => `${id}-${round}`);
        const x = instance(true);
        await x.duro.launch();
        for (const id of ids) await x.duro.startWorkflow(x.job.with({ queueName: "q", workflowId: id }), id);
        await waitFor(() => starts.length === 1, 10_000, "the first to start");
        await crash(x.duro);
        starts.length = 0;
        const again = instance(false);
        await again.duro.launch(); // recovers the first: it takes the one slot before the queue claims
        expect(await Promise.all(ids.map((id) => again.duro.getResult(id)))).toEqual(ids.map((id) => `${id} done`));
        expect(starts, `round ${round}`).toEqual(ids);
        await again.duro.shutdown();
      }
    });

    /**
     * Executor `executorId` restarted with fewer slots: its two recovered workflows on `queue`
     * (options `seeded`, then `restarted`) wait for one slot, their step held by `held`. Returns
     * the restarted instance.
     */
    async function restartedWithOneSlot(executorId: string, queue: Record<string, unknown>, held: Promise<void>, partitionKey?: string) {
      const instance = (hang: boolean, slots: number) => {
        const duro = t.duro({ executorId, appVersion: "v1" });
        const work = duro.registerStep("work", async (id: string) => {
          if (hang || id.startsWith("r")) await (hang ? new Promise<void>(() => {}) : held);
          return id;
        });
        const job = duro.registerWorkflow("job", async (id: string) => work(id));
        new WorkflowQueue(duro, "q", { ...queue, workerConcurrency: slots });
        return { duro, job };
      };
      const x = instance(true, 2);
      await x.duro.launch();
      for (const id of ["r1", "r2"]) await x.duro.startWorkflow(x.job.with({ queueName: "q", workflowId: id, partitionKey }), id);
      await waitFor(async () => (await x.duro.listWorkflows({ workflowIds: ["r1", "r2"], status: "PENDING" })).length === 2, 10_000, "both to run");
      await crash(x.duro);
      const again = instance(false, 1);
      await again.duro.launch(); // one recovered workflow runs, the other waits for the slot
      return again;
    }

    it("recovered on a partitioned queue and waiting for its partition's slot, holds up no other partition", async () => {
      const held = gate();
      const { duro, job } = await restartedWithOneSlot("exec-p", { partitionQueue: true }, held.promise, "p0");
      const other = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "x1", partitionKey: "p1" }), "x1");
      expect(await within(5000, other.getResult(), "the other partition's workflow")).toBe("x1");
      held.open();
      expect(await Promise.all(["r1", "r2"].map((id) => duro.getResult(id)))).toEqual(["r1", "r2"]);
    });

    it("recovered and waiting for a slot, does not keep a due DELAYED workflow from becoming ENQUEUED", async () => {
      const held = gate();
      const { duro, job } = await restartedWithOneSlot("exec-d", { pollingIntervalSeconds: 0.2 }, held.promise);
      await duro.startWorkflow(job.with({ queueName: "q", workflowId: "d1", delaySeconds: 0.3 }), "d1");
      await waitFor(async () => (await duro.getWorkflowStatus("d1"))?.status === "ENQUEUED", 5000, "the delayed workflow to be promoted");
      held.open();
      expect(await Promise.all(["r1", "r2", "d1"].map((id) => duro.getResult(id)))).toEqual(["r1", "r2", "d1"]);
    });

    it("taken over by an executor busy draining the queue, starts ahead of the queue's new claims", async () => {
      const starts: string[] = [];
      const instance = (executorId: string, hang: boolean) => {
        const duro = t.duro({ executorId, appVersion: "v1", executorLeaseSeconds: 1 });
        const work = duro.registerStep("work", async (id: string) => {
          if (hang) await new Promise<void>(() => {}); // exec-x "dies" mid-step
          await sleep(10);
          return id;
        });
        const job = duro.registerWorkflow("job", async (id: string) => {
          if (!hang) starts.push(id);
          return work(id);
        });
        new WorkflowQueue(duro, "q", { workerConcurrency: 3 });
        return { duro, job };
      };
      const x = instance("exec-x", true);
      await x.duro.launch();
      const taken = await Promise.all(["x1", "x2", "x3"].map((id) => x.duro.startWorkflow(x.job.with({ queueName: "q", workflowId: id }), id)));
      await waitFor(async () => (await x.duro.listWorkflows({ workflowIds: ["x1", "x2", "x3"], status: "PENDING", executorId: "exec-x" })).length === 3, 10_000, "exec-x to run three");
      await crash(x.duro);
      const y = instance("exec-y", false);
      await y.duro.launch();
      // exec-y drains a long queue, in cohorts, while exec-x's lease runs out.
      const c = client(t.url);
      await c.enqueueMany({ workflowName: "job", queueName: "q" }, range(3000).map((n) => [`n${n}`]));
      await waitFor(() => ["x1", "x2", "x3"].every((id) => starts.includes(id)), 30_000, "the taken-over three to start");
      const takenOverAt = Math.min(...["x1", "x2", "x3"].map((id) => starts.indexOf(id)));
      const lastOfThem = Math.max(...["x1", "x2", "x3"].map((id) => starts.indexOf(id)));
      // Once the first of them started, at most one claim already under way (two here) goes before the others.
      expect(lastOfThem - takenOverAt, starts.slice(takenOverAt, lastOfThem + 1).join(" ")).toBeLessThanOrEqual(4);
      expect(await Promise.all(taken.map((h) => y.duro.getResult(h.workflowId)))).toEqual(["x1", "x2", "x3"]);
    });
  });

  describe("a workflow started from its own insert (idle queue, free slot here)", () => {
    it("is recovered by its executor's restart after a crash mid-run, and finishes once", async () => {
      const runs: string[] = [];
      const instance = hangingJobs("exec-a", runs, 4);
      const first = instance(true);
      await first.duro.launch();
      await sleep(100); // the claim made at launch has come back, so the insert may claim (if not, the dispatcher does)
      const handle = await first.duro.startWorkflow(first.job.with({ queueName: "q", workflowId: "j1" }), "j1");
      await waitFor(() => runs.length === 1, 5000, "the step to start");
      expect(await first.duro.getWorkflowStatus("j1")).toMatchObject({ status: "PENDING", executorId: "exec-a", queueName: "q" });
      await crash(first.duro);

      const second = instance(false);
      await second.duro.launch();
      expect(await second.duro.getResult("j1")).toBe("j1 done");
      expect(runs).toEqual(["j1", "j1"]); // the step ran again (it never returned), the workflow once to the end
      expect(await second.duro.getWorkflowStatus("j1")).toMatchObject({ status: "SUCCESS", recoveryAttempts: 2 });
      void handle;
    });
  });

  describe("a workflow no running executor knows", () => {
    it("stays ENQUEUED, without holding up the queue, until an executor that knows it starts", async () => {
      const a = t.duro({ executorId: "exec-a", appVersion: "va" });
      a.registerWorkflow("known", async (x: string) => `known:${x}`);
      new WorkflowQueue(a, "q", { concurrency: 1 });
      await a.launch();
      const c = client(t.url);
      const later = await c.enqueue<string>({ workflowName: "later", queueName: "q" }, "L");
      const known = await c.enqueue<string>({ workflowName: "known", queueName: "q" }, "K");
      expect(await known.getResult()).toBe("known:K");
      await sleep(300);
      expect((await later.getStatus())!).toMatchObject({ status: "ENQUEUED", executorId: null });

      const b = t.duro({ executorId: "exec-b", appVersion: "vb" });
      b.registerWorkflow("later", async (x: string) => `later:${x}@${b.executorId}`);
      new WorkflowQueue(b, "q", { concurrency: 1 });
      await b.launch();
      expect(await later.getResult()).toBe("later:L@exec-b");
      expect((await later.getStatus())!.executorId).toBe("exec-b");
    });
  });

  describe("work of no app version (a client's enqueue or fork)", () => {
    /** An executor of `appVersion` whose workflow "job" tells where it ran. */
    const instance = (executorId: string, appVersion: string, executorLeaseSeconds: number) => {
      const duro = t.duro({ executorId, appVersion, executorLeaseSeconds });
      duro.registerWorkflow("job", async (x: string) => `${x}@${duro.executorId}`);
      return duro;
    };

    it("is run by the newest version a live executor runs, as in the reference library; by an older one once the newer is gone", async () => {
      const old = instance("old", "v1", 1);
      new WorkflowQueue(old, "q", { pollingIntervalSeconds: 0.1 });
      await old.launch();
      const c = client(t.url);
      const before = await c.enqueue<string>({ workflowName: "job", queueName: "q" }, "before");
      expect(await before.getResult()).toBe("before@old"); // the only version running

      // v2 starts (first seen after v1), without queue "q" for now.
      const newer = instance("new", "v2", 1);
      await newer.launch();
      const waiting = await c.enqueue<string>({ workflowName: "job", queueName: "q" }, "waiting");
      const pinned = await c.enqueue<string>({ workflowName: "job", queueName: "q", appVersion: "v1" }, "pinned");
      expect(await pinned.getResult()).toBe("pinned@old"); // claimed after "waiting" would have been
      expect((await waiting.getStatus())!).toMatchObject({ status: "ENQUEUED", executorId: null, appVersion: null });
      const fork = await c.forkWorkflow<string>(before.workflowId, 1);
      expect(await fork.getResult()).toBe("before@new");
      expect((await fork.getStatus())!.appVersion).toBe("v2");

      new WorkflowQueue(newer, "q");
      expect(await waiting.getResult()).toBe("waiting@new");

      // v2 dies (its heartbeat and dispatch stop, without a shutdown): once its lease has run
      // out, v1 is the newest version running.
      newer.engine.recovery.stop();
      for (const queue of newer.engine.queues.values()) queue.stop();
      // Enqueued once v2's lease has run out, so that no claim v2 had under way can take it.
      const beat = async () => Number((await rawQuery(t.url, "SELECT heartbeat_at FROM executors WHERE executor_id = 'new'"))[0].heartbeat_at);
      await waitFor(async () => Date.now() - (await beat()) > 1_000, 5_000, "v2's lease to run out");
      const after = await c.enqueue<string>({ workflowName: "job", queueName: "q" }, "after");
      expect(await after.getResult()).toBe("after@old");
      expect((await after.getStatus())!.appVersion).toBe("v1");
    });

    it("stops counting a version at once when its executors shut down cleanly, not after their lease", async () => {
      const old = instance("old", "v1", 30);
      new WorkflowQueue(old, "q", { pollingIntervalSeconds: 0.1 });
      await old.launch();
      const newer = instance("new", "v2", 30); // without queue "q": work of no version waits while it runs
      await newer.launch();
      const c = client(t.url);
      const waiting = await c.enqueue<string>({ workflowName: "job", queueName: "q" }, "waiting");
      await sleep(300); // three of v1's polls
      expect((await waiting.getStatus())!.status).toBe("ENQUEUED");
      await newer.shutdown();
      const shutAt = performance.now();
      expect(await waiting.getResult()).toBe("waiting@old");
      expect(performance.now() - shutAt).toBeLessThan(5_000); // the lease is 30 s
      // A launch after that counts the version again.
      const back = instance("new", "v2", 30);
      await back.launch();
      const next = await c.enqueue<string>({ workflowName: "job", queueName: "q" }, "next");
      await sleep(300);
      expect((await next.getStatus())!.status).toBe("ENQUEUED");
    });
  });

  describe("dispatch without polling delay", () => {
    /** Executor "a" (app version va) serving queue "q" that polls only every 30 s; `started` records body starts. */
    async function slowPoller() {
      const started = new Map<string, number>();
      const a = t.duro({ executorId: "exec-a", appVersion: "va", safetyPollSeconds: 30 });
      const job = a.registerWorkflow("job", async (id: string) => {
        started.set(id, performance.now());
        return a.executorId;
      });
      new WorkflowQueue(a, "q", { pollingIntervalSeconds: 30 });
      await a.launch();
      await sleep(200); // past the dispatcher's first pass at launch
      return { a, job, started };
    }

    it("starts a workflow enqueued in the same process at once", async () => {
      const { a, job, started } = await slowPoller();
      for (let i = 0; i < 5; i++) {
        const handle = await a.startWorkflow(job.with({ queueName: "q", workflowId: `local-${i}` }), `local-${i}`);
        const enqueued = performance.now();
        await waitFor(() => started.has(`local-${i}`), 5_000, `local-${i} to start`);
        expect(started.get(`local-${i}`)! - enqueued).toBeLessThan(500);
        await handle.getResult();
      }
    });

    it("starts a workflow enqueued by another Duro instance at once", async () => {
      const { started } = await slowPoller();
      const b = t.duro({ executorId: "exec-b", appVersion: "vb", safetyPollSeconds: 30 });
      const job = b.registerWorkflow("job", async (_id: string) => b.executorId);
      new WorkflowQueue(b, "q", { pollingIntervalSeconds: 30 });
      await b.launch();
      await sleep(200);
      for (let i = 0; i < 3; i++) {
        // Stamped with exec-a's app version, so only exec-a may run it.
        const handle = await b.startWorkflow(job.with({ queueName: "q", workflowId: `remote-${i}`, appVersion: "va" }), `remote-${i}`);
        const enqueued = performance.now();
        await waitFor(() => started.has(`remote-${i}`), 5_000, `remote-${i} to start on exec-a`);
        expect(started.get(`remote-${i}`)! - enqueued).toBeLessThan(500);
        expect(await handle.getResult()).toBe("exec-a");
      }
    });

    it("starts a workflow enqueued by a DuroClient at once", async () => {
      const { started } = await slowPoller();
      const c = client(t.url);
      await c.listWorkflows({ limit: 1 }); // connect first: the first enqueue should not pay for it
      for (let i = 0; i < 3; i++) {
        const handle = await c.enqueue<string>({ workflowName: "job", queueName: "q", workflowId: `client-${i}` }, `client-${i}`);
        const enqueued = performance.now();
        await waitFor(() => started.has(`client-${i}`), 5_000, `client-${i} to start`);
        expect(started.get(`client-${i}`)! - enqueued).toBeLessThan(500);
        expect(await handle.getResult()).toBe("exec-a");
      }
    });

    it("starts the next queued workflow as soon as a slot frees", async () => {
      const { a, started } = await slowPoller();
      const chain = a.registerWorkflow("chain", async (id: string) => {
        started.set(id, performance.now());
        return id;
      });
      new WorkflowQueue(a, "one", { concurrency: 1, pollingIntervalSeconds: 30 });
      const begin = performance.now();
      const handles = await a.enqueueMany(chain.with({ queueName: "one" }), Array.from({ length: 20 }, (_, i) => [`c${i}`]));
      // Each completion and each enqueue must wake the dispatcher: none may wait for the 30 s poll.
      const done = await Promise.race([Promise.all(handles.map((h) => h.getResult())), sleep(5_000).then(() => null)]);
      expect(done, `only ${started.size} of 20 started within 5 s`).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
      expect(performance.now() - begin).toBeLessThan(5_000);
    });
  });
});
