/**
 * Queue limits across executors sharing one database: global concurrency, worker concurrency,
 * rate limit, priority, partitions. Each executor is a Duro instance with its own executorId on
 * the same URL, declaring the same queue; a shared Tracker counts the running step bodies.
 */
import { describe, expect, it } from "vitest";
import { WorkflowQueue, type Duro, type QueueOptions, type Workflow } from "../../src/index.js";
import { operation } from "../../src/engine/checkpoint.js";
import { newRow } from "../../src/engine/start.js";
import type { Write } from "../../src/storage/store.js";
import { backends, clockPast, gate, rawQuery, sleep, statusOf, useClients, useDuro, waitFor } from "../helpers.js";
import { maxInWindow, Tracker } from "./support.js";

type Job = Workflow<[string, string | null], string>;

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();

  /**
   * `n` executors, each declaring queue "q" with `options` and a workflow "job"(id, partition)
   * whose one step body is watched by the tracker. Bodies wait for `release` (opened at once
   * unless `held`), then take `ms` milliseconds.
   */
  async function executors(n: number, options: QueueOptions, { held = false, ms = 0 } = {}) {
    const tracker = new Tracker();
    const release = gate();
    if (!held) release.open();
    const list: { duro: Duro; job: Job; executorId: string }[] = [];
    for (let i = 0; i < n; i++) {
      const executorId = `exec-${i}`;
      const duro = t.duro({ executorId, appVersion: "v1" });
      const work = duro.registerStep("work", async (id: string, partition: string | null) => {
        tracker.enter(executorId, id, partition);
        try {
          await release.promise;
          if (ms) await sleep(ms);
        } finally {
          tracker.exit(executorId, partition);
        }
      });
      const job = duro.registerWorkflow("job", async (id: string, partition: string | null) => {
        await work(id, partition);
        return id;
      });
      new WorkflowQueue(duro, "q", options);
      list.push({ duro, job, executorId });
    }
    for (const e of list) await e.duro.launch();
    return { tracker, release, list };
  }

  /** Enqueues `count` jobs, spread round-robin over the executors, all at once. */
  async function enqueue(list: { duro: Duro; job: Job }[], count: number, extra: (i: number) => { partitionKey?: string } = () => ({})) {
    return Promise.all(
      Array.from({ length: count }, (_, i) => {
        const { duro, job } = list[i % list.length];
        const { partitionKey } = extra(i);
        return duro.startWorkflow(job.with({ queueName: "q", workflowId: `job-${i}`, partitionKey }), `job-${i}`, partitionKey ?? null);
      }),
    );
  }

  const pendingCount = async (duro: Duro) => (await duro.listQueuedWorkflows({ queueName: "q", status: "PENDING", loadInput: false })).length;

  describe("global concurrency", () => {
    it("is never exceeded across three executors, each of which could run more", async () => {
      // Each executor may run 2, so the limit of 3 can only be reached by two executors at once.
      const { tracker, release, list } = await executors(3, { concurrency: 3, workerConcurrency: 2 }, { held: true });
      const handles = await enqueue(list, 15);
      await waitFor(() => tracker.running === 3, 10_000, "3 running bodies");
      await sleep(300); // the other executors had every chance to start a 4th
      expect(tracker.starts).toHaveLength(3);
      expect(await pendingCount(list[0].duro)).toBe(3);
      expect(new Set(tracker.starts.map((s) => s.executor)).size).toBeGreaterThanOrEqual(2);
      release.open();
      expect((await Promise.all(handles.map((h) => h.getResult()))).sort()).toEqual(handles.map((h) => h.workflowId).sort());
      expect(tracker.max).toBe(3);
      for (const e of list) expect(tracker.maxOn(e.executorId)).toBeLessThanOrEqual(2);
      expect(tracker.starts).toHaveLength(15);
    });

    it("holds with short workflows churning through three executors", async () => {
      const { tracker, list } = await executors(3, { concurrency: 2 }, { ms: 5 });
      const handles = await enqueue(list, 40);
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.max).toBeLessThanOrEqual(2);
      expect(tracker.starts).toHaveLength(40);
      expect(new Set(tracker.starts.map((s) => s.id)).size).toBe(40);
      // The recorded times agree: no claim's start precedes the outcome whose slot it took.
      const statuses = await list[0].duro.listWorkflows({ workflowIds: handles.map((h) => h.workflowId), loadInput: false });
      const edges = statuses.flatMap((s) => [[s.startedAtEpochMs!, 1], [s.completedAtEpochMs!, -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let running = 0;
      let most = 0;
      for (const [, d] of edges) most = Math.max(most, (running += d));
      expect(most).toBeLessThanOrEqual(2);
    });
  });

  describe("workerConcurrency", () => {
    it("limits each executor separately", async () => {
      const { tracker, release, list } = await executors(3, { workerConcurrency: 2 }, { held: true });
      const handles = await enqueue(list, 12);
      await waitFor(() => tracker.running === 6, 10_000, "6 running bodies (2 per executor)");
      await sleep(300);
      expect(tracker.starts).toHaveLength(6);
      for (const e of list) expect(tracker.runningOn(e.executorId)).toBe(2);
      release.open();
      await Promise.all(handles.map((h) => h.getResult()));
      for (const e of list) expect(tracker.maxOn(e.executorId)).toBe(2);
      expect(tracker.max).toBe(6);
    });

    it("limits a lone executor even when all the work is enqueued at once", async () => {
      const { tracker, list } = await executors(1, { workerConcurrency: 3 }, { ms: 10 });
      const handles = await enqueue(list, 20);
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.max).toBe(3);
    });

    it("holds, in FIFO order, while workflows enqueued one by one start from their own insert or from a claim", async () => {
      const { tracker, list } = await executors(1, { workerConcurrency: 2 }, { ms: 3 });
      const { duro, job } = list[0];
      const ids = Array.from({ length: 40 }, (_, i) => `one-${i}`);
      const handles = [];
      for (const [i, id] of ids.entries()) {
        handles.push(await duro.startWorkflow(job.with({ queueName: "q", workflowId: id }), id, null));
        if (i % 3 === 0) await sleep(i % 7); // now and then a slot frees before the next enqueue
      }
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.max).toBe(2);
      expect(tracker.order).toEqual(ids);
    });

    it("starts a workflow enqueued here on an idle queue from its insert, with no claim", async () => {
      const { tracker, release, list } = await executors(1, { workerConcurrency: 5 }, { held: true });
      const { duro, job } = list[0];
      const store = duro.engine.store;
      const claim = store.claimQueued.bind(store);
      let claims = 0;
      store.claimQueued = (request) => {
        claims++;
        return claim(request);
      };
      // A claim still in flight (the one made at launch, on a slow machine) holds the slots it may
      // fill, and the enqueue then waits for the dispatcher: one of a few tries is enough.
      let direct = false;
      const handles = [];
      for (let i = 0; i < 5 && !direct; i++) {
        await sleep(50);
        const before = claims;
        handles.push(await duro.startWorkflow(job.with({ queueName: "q", workflowId: `direct-${i}` }), `direct-${i}`, null));
        await waitFor(() => tracker.running === i + 1, 5000, "the body to start");
        direct = claims === before;
      }
      expect(direct).toBe(true);
      release.open(); // completions make the dispatcher look for more work, as they should
      await Promise.all(handles.map((h) => h.getResult()));
      const last = handles[handles.length - 1].workflowId;
      expect(await duro.getWorkflowStatus(last)).toMatchObject({ status: "SUCCESS", queueName: "q", recoveryAttempts: 1 });
    });

    it("fills a lone slot freed on a busy queue", async () => {
      const duro = t.duro({ executorId: "solo" });
      const tracker = new Tracker();
      const gates = new Map<string, ReturnType<typeof gate>>();
      const work = duro.registerStep("work", async (id: string) => {
        tracker.enter("solo", id);
        try {
          await gates.get(id)!.promise;
        } finally {
          tracker.exit("solo");
        }
      });
      const job = duro.registerWorkflow("job", async (id: string) => work(id));
      new WorkflowQueue(duro, "q", { workerConcurrency: 8 });
      await duro.launch();
      const ids = Array.from({ length: 20 }, (_, i) => `job-${i}`);
      for (const id of ids) gates.set(id, gate());
      const handles = await duro.enqueueMany(job.with({ queueName: "q" }), ids.map((id) => [id]));
      await waitFor(() => tracker.running === 8, 10_000, "every slot taken");
      // One slot frees with seven still busy: under a quarter of the slots, yet it is filled.
      gates.get(tracker.order[0])!.open();
      await waitFor(() => tracker.starts.length === 9 && tracker.running === 8, 10_000, "the freed slot taken");
      for (const g of gates.values()) g.open();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.order).toEqual(ids);
      expect(tracker.max).toBe(8);
    });

    it("on PostgreSQL, claims the slots a completion frees in the completion's own commit", async () => {
      const { tracker, release, list } = await executors(1, { workerConcurrency: 8 }, { held: true });
      const { duro, job } = list[0];
      const store = duro.engine.store;
      const write = store.write.bind(store);
      const claimed: number[] = [];
      store.write = async (batch, options) => {
        const results = await write(batch, options);
        const completes = batch.some((w) => w.kind === "completeWorkflow");
        for (const r of results) if (r.kind === "claimQueued" && completes) claimed.push(r.claimed.length);
        return results;
      };
      const handles = await duro.enqueueMany(job.with({ queueName: "q" }), Array.from({ length: 40 }, (_, i) => [`job-${i}`, null]));
      await waitFor(() => tracker.running === 8, 10_000, "every slot taken");
      release.open();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.max).toBe(8);
      expect(tracker.order).toEqual(Array.from({ length: 40 }, (_, i) => `job-${i}`));
      if (backend === "postgres") expect(claimed.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      else expect(claimed).toEqual([]); // SQLite claims on its own (no cohorts)
      expect(duro.engine.committer.stats.splits, "batches that failed and were split").toBe(0);
    });

    it("a claim written in a batch of its own takes queued work in order, as the dispatcher's claim does", async () => {
      const duro = t.duro({ executorId: "solo", appVersion: "v1" });
      duro.registerWorkflow("job", async () => "done");
      await duro.launch(); // declares no queue: nothing here dispatches "q"
      const c = client(t.url);
      await c.enqueueMany({ workflowName: "job", queueName: "q" }, [[], [], []]);
      const request = {
        queueName: "q", executorId: "solo", appVersion: "v1", now: Date.now(), max: 2, workflowNames: ["job"], partitioned: false,
      };
      const [result] = await duro.engine.store.write([{ kind: "claimQueued", request }]);
      expect(result).toMatchObject({ kind: "claimQueued", moreQueued: true });
      const claimed = result.kind === "claimQueued" ? result.claimed.map((c) => c.workflow) : [];
      expect(claimed.map((w) => w.status)).toEqual(["PENDING", "PENDING"]);
      const queued = await duro.listWorkflows({ queueName: "q", loadInput: false });
      expect(queued.map((w) => w.status)).toEqual(["PENDING", "PENDING", "ENQUEUED"]);
      expect(claimed.map((w) => w.workflowId)).toEqual(queued.slice(0, 2).map((w) => w.workflowId));
    });

    it("a batch of steps' records, other workflows' outcomes and a claim commits each write as it would alone", async () => {
      const duro = t.duro({ executorId: "solo", appVersion: "v1" });
      duro.registerWorkflow("job", async () => "done");
      await duro.launch(); // declares no queue: nothing here dispatches "q"
      const { engine } = duro;
      const store = engine.store;
      // Workflows PENDING on this executor (and one on another) that no run here touches.
      const rows = ["a", "b", "c", "d"].map((id) => newRow(engine, id, "job", [], {}));
      rows.push({ ...newRow(engine, "elsewhere", "job", [], {}), executorId: "other" });
      await store.write(rows.map((row) => ({ kind: "insertWorkflow", row, ownerToken: "t" })));
      const record = (workflowId: string, functionId: number, output: string): Write => ({
        kind: "recordOperation", executorId: "solo", op: operation(workflowId, functionId, "s", { output: JSON.stringify(output), serialization: "default" }),
      });
      const complete = (workflowId: string): Write => ({
        kind: "completeWorkflow", workflowId, status: "SUCCESS", output: JSON.stringify(workflowId), error: null, completedAt: Date.now(), queueName: null, executorId: "solo",
      });
      await store.write([record("c", 1, "first")]);
      await client(t.url).enqueueMany({ workflowName: "job", queueName: "q" }, [[], [], []]);
      const request = { queueName: "q", executorId: "solo", appVersion: "v1", now: Date.now(), max: 2, workflowNames: ["job"], partitioned: false };
      const results = await store.write([
        record("a", 1, "a1"), complete("b"), record("c", 1, "second"), record("elsewhere", 1, "x"), complete("elsewhere"), record("a", 2, "a2"),
        { kind: "claimQueued", request },
      ]);
      expect(results.slice(0, 6)).toEqual([
        { kind: "recordOperation", recorded: true },
        { kind: "completeWorkflow", completed: true },
        { kind: "recordOperation", recorded: false, existing: expect.objectContaining({ workflowId: "c", functionId: 1, output: JSON.stringify("first") }) },
        { kind: "recordOperation", recorded: false, existing: null }, // fenced: not PENDING here
        { kind: "completeWorkflow", completed: false },
        { kind: "recordOperation", recorded: true },
      ]);
      expect(results[6]).toMatchObject({ kind: "claimQueued", moreQueued: true });
      expect(results[6].kind === "claimQueued" && results[6].claimed.length).toBe(2);
      // Without a claim, and with two outcomes of one workflow (the first counts).
      const again = await store.write([record("d", 1, "d1"), complete("a"), { ...complete("a"), output: JSON.stringify("late") }]);
      expect(again).toEqual([
        { kind: "recordOperation", recorded: true }, { kind: "completeWorkflow", completed: true }, { kind: "completeWorkflow", completed: false },
      ]);
      expect((await duro.listWorkflowSteps("a"))!.map((s) => s.output)).toEqual(["a1", "a2"]);
      expect((await duro.listWorkflowSteps("d"))!.map((s) => s.output)).toEqual(["d1"]);
      const status = Object.fromEntries((await duro.listWorkflows({ loadInput: false })).map((w) => [w.workflowId, [w.status, w.output]]));
      expect(status).toMatchObject({ a: ["SUCCESS", "a"], b: ["SUCCESS", "b"], c: ["PENDING", undefined], elsewhere: ["PENDING", undefined] });
      expect((await duro.listWorkflows({ queueName: "q", loadInput: false })).map((w) => w.status)).toEqual(["PENDING", "PENDING", "ENQUEUED"]);
    });

    it("queues an enqueue behind workflows already waiting, even with a slot free here", async () => {
      const { tracker, list } = await executors(1, { workerConcurrency: 2 });
      const { duro, job } = list[0];
      // Waiting for an application version this executor does not run: it can never claim them.
      const waiting = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "other-version", appVersion: "v0" }), "x", null);
      const handle = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "behind" }), "behind", null);
      expect(await handle.getResult()).toBe("behind"); // claimed by the dispatcher instead
      expect(await statusOf(duro, waiting.workflowId)).toBe("ENQUEUED");
      expect(tracker.order).toEqual(["behind"]);
    });
  });

  describe("rate limit", () => {
    it("never lets more than `limit` workflows start in any window of `periodSeconds`, across executors", async () => {
      const limit = 2;
      const periodMs = 600;
      const { tracker, list } = await executors(3, { rateLimit: { limit, periodSeconds: periodMs / 1000 } });
      const handles = await enqueue(list, 8);
      await Promise.all(handles.map((h) => h.getResult()));
      const statuses = await list[0].duro.listWorkflows({ queueName: "q", loadInput: false, loadOutput: false });
      const claimedAt = statuses.map((s) => s.startedAtEpochMs!);
      expect(claimedAt).toHaveLength(8);
      // Exact on the recorded start times (what the limiter counts)…
      expect(maxInWindow(claimedAt, periodMs)).toBeLessThanOrEqual(limit);
      // …and, allowing for the time from claim to body, on the bodies' own start times.
      expect(maxInWindow(tracker.starts.map((s) => s.t), periodMs - 200)).toBeLessThanOrEqual(limit);
      for (const s of statuses) expect(tracker.starts.find((x) => x.id === s.workflowId)!.t).toBeGreaterThanOrEqual(s.startedAtEpochMs!);
      // The limit throttles without stalling: 8 starts at 2 per 600 ms take 3 periods, not many more.
      const span = Math.max(...claimedAt) - Math.min(...claimedAt);
      expect(span).toBeGreaterThanOrEqual(3 * periodMs);
      expect(span).toBeLessThan(3 * periodMs + 3000);
    });

    it("work that arrives while the window is full starts as the window's oldest start leaves it, not a period after it arrived", async () => {
      const periodMs = 1500;
      // A long safety poll, so that only the wake-up at the window's opening can start it on time.
      const { list } = await executors(2, { rateLimit: { limit: 1, periodSeconds: periodMs / 1000 }, pollingIntervalSeconds: 30 });
      const [first] = await enqueue(list, 1);
      await first.getResult();
      const startOf = async (id: string) => (await list[0].duro.getWorkflowStatus(id))!.startedAtEpochMs!;
      await clockPast((await startOf("job-0")) + periodMs / 2); // halfway through the window
      const second = await list[1].duro.startWorkflow(list[1].job.with({ queueName: "q", workflowId: "late" }), "late", null);
      await second.getResult();
      const gap = (await startOf("late")) - (await startOf("job-0"));
      expect(gap).toBeGreaterThanOrEqual(periodMs);
      expect(gap).toBeLessThan(periodMs + 400); // before: about periodMs / 2 later than this, a period after it arrived
    });

    it("does not claim in a loop while a rate-limited queue is idle", async () => {
      const { list } = await executors(1, { rateLimit: { limit: 100, periodSeconds: 1 } });
      const store = list[0].duro.engine.store;
      const claim = store.claimQueued.bind(store);
      let claims = 0;
      store.claimQueued = (request) => {
        claims++;
        return claim(request);
      };
      await sleep(1000);
      // Nothing is queued: only the safety poll (every pollingIntervalSeconds, default 1 s) may look.
      expect(claims).toBeLessThanOrEqual(3);
    });

    it("polls many idle queues with one read and no claim; the poll still finds work whose wake-up never came", async () => {
      const duro = t.duro({ executorId: "e", appVersion: "v1" });
      const wf = duro.registerWorkflow("wf", async (x: string) => x);
      for (let i = 0; i < 20; i++) new WorkflowQueue(duro, `idle-${i}`, { pollingIntervalSeconds: 0.1 });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ queueName: "idle-7", workflowId: "later", delaySeconds: 3600 }), "later");
      const store = duro.engine.store;
      const claim = store.claimQueued.bind(store);
      const claimed: string[] = [];
      store.claimQueued = (request) => {
        claimed.push(request.queueName);
        return claim(request);
      };
      const look = store.queuesWithWork.bind(store);
      let polls = 0;
      store.queuesWithWork = (names, now) => {
        polls++;
        return look(names, now);
      };
      await waitFor(() => polls >= 5, 5000, "five polls");
      expect(claimed).toEqual([]); // before: 20 claims a poll
      // Due now, changed behind the executor's back (no NOTIFY on PostgreSQL): only a poll can see it.
      await rawQuery(t.url, "UPDATE workflow_status SET delay_until_epoch_ms = 0 WHERE workflow_id = 'later'");
      expect(await handle.getResult()).toBe("later");
      expect(new Set(claimed)).toEqual(new Set(["idle-7"]));
    });

    it("idle queues declared at different times share one poll a polling interval", async () => {
      const duro = t.duro();
      await duro.launch();
      for (let i = 0; i < 20; i++) {
        new WorkflowQueue(duro, `late-${i}`, { pollingIntervalSeconds: 0.2 });
        await sleep(7); // each starts in a turn of its own
      }
      const store = duro.engine.store;
      const look = store.queuesWithWork.bind(store);
      const asked: number[] = [];
      store.queuesWithWork = (names, now) => {
        asked.push(names.length);
        return look(names, now);
      };
      await sleep(1000);
      // Five intervals: five reads of all 20 (and one more if the last one lands on the second).
      expect(asked.length).toBeLessThanOrEqual(6);
      expect(asked.every((n) => n === 20)).toBe(true); // before: a read per queue
    });
  });

  describe("priority", () => {
    it("runs un-prioritized work first, then lower numbers first, FIFO within a priority", async () => {
      const { tracker, release, list } = await executors(1, { workerConcurrency: 1, priorityEnabled: true }, { held: true });
      const { duro, job } = list[0];
      const blocker = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "blocker" }), "blocker", null);
      await waitFor(() => tracker.running === 1);
      const plan: [string, number | undefined][] = [
        ["a5", 5], ["b0", undefined], ["c3", 3], ["d5", 5], ["e1", 1], ["f0", undefined], ["g3", 3], ["h-max", 2 ** 31 - 1], ["i1", 1],
      ];
      const handles = [];
      for (const [id, priority] of plan) {
        const handle = await duro.startWorkflow(job.with({ queueName: "q", workflowId: id, priority }), id, null);
        handles.push(handle);
        await clockPast((await handle.getStatus())!.createdAt);
      }
      expect((await duro.getWorkflowStatus("a5"))!.priority).toBe(5);
      expect((await duro.getWorkflowStatus("b0"))!.priority).toBe(0);
      release.open();
      await blocker.getResult();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.order).toEqual(["blocker", "b0", "f0", "e1", "i1", "c3", "g3", "a5", "d5", "h-max"]);
    });

    it("keeps FIFO within a priority for workflows enqueued in the same millisecond", async () => {
      // enqueueMany creates its rows within a millisecond or two: their order must still be kept.
      const { tracker, release, list } = await executors(1, { workerConcurrency: 1, priorityEnabled: true }, { held: true });
      const { duro, job } = list[0];
      const blocker = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "blocker" }), "blocker", null);
      await waitFor(() => tracker.running === 1);
      const ids = Array.from({ length: 20 }, (_, i) => `n${i}`);
      const handles = await duro.enqueueMany(job.with({ queueName: "q", priority: 7 }), ids.map((id) => [id, null] as [string, null]));
      release.open();
      await blocker.getResult();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.order).toEqual(["blocker", ...ids]);
    });

    it("runs a queue without priorityEnabled in FIFO order, including a batch", async () => {
      const { tracker, release, list } = await executors(1, { concurrency: 1 }, { held: true });
      const { duro, job } = list[0];
      const blocker = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "blocker" }), "blocker", null);
      await waitFor(() => tracker.running === 1);
      const ids = Array.from({ length: 20 }, (_, i) => `n${i}`);
      const handles = await duro.enqueueMany(job.with({ queueName: "q" }), ids.map((id) => [id, null] as [string, null]));
      release.open();
      await blocker.getResult();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.order).toEqual(["blocker", ...ids]);
    });
    it("takes a priority on a queue without priorityEnabled, from an executor or a client, and claims in its order, as the reference", async () => {
      const { tracker, release, list } = await executors(1, { concurrency: 1 }, { held: true });
      const { duro, job } = list[0];
      const blocker = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "blocker" }), "blocker", null);
      await waitFor(() => tracker.running === 1);
      const c = client(t.url);
      for (const [id, priority] of [["x", undefined], ["y3", 3], ["z", undefined], ["w1", 1]] as const) {
        await c.enqueue({ workflowName: "job", queueName: "q", workflowId: id, priority }, id, null);
      }
      await duro.startWorkflow(job.with({ queueName: "q", workflowId: "v2", priority: 2 }), "v2", null);
      release.open();
      await blocker.getResult();
      await Promise.all(["x", "y3", "z", "w1", "v2"].map((id) => duro.getResult(id)));
      expect(tracker.order).toEqual(["blocker", "x", "z", "w1", "v2", "y3"]);
    });
  });

  describe("partitioned queues", () => {
    it("apply the global concurrency to each partition separately, across executors", async () => {
      const { tracker, release, list } = await executors(2, { partitionQueue: true, concurrency: 1 }, { held: true });
      const keys = ["a", "b", "c"];
      const handles = await enqueue(list, 9, (i) => ({ partitionKey: keys[i % 3] }));
      await waitFor(() => tracker.running === 3, 10_000, "one running body per partition");
      await sleep(300);
      expect(tracker.starts).toHaveLength(3);
      for (const k of keys) expect(tracker.runningIn(k)).toBe(1);
      release.open();
      await Promise.all(handles.map((h) => h.getResult()));
      for (const k of keys) expect(tracker.maxIn(k)).toBe(1);
      const statuses = await list[0].duro.listWorkflows({ queueName: "q" });
      expect(statuses.map((s) => s.partitionKey).sort()).toEqual(["a", "a", "a", "b", "b", "b", "c", "c", "c"]);
    });

    it("apply workerConcurrency to each partition separately", async () => {
      const { tracker, release, list } = await executors(1, { partitionQueue: true, workerConcurrency: 1 }, { held: true });
      const handles = await enqueue(list, 4, (i) => ({ partitionKey: i % 2 ? "odd" : "even" }));
      await waitFor(() => tracker.running === 2, 5_000, "one running body in each of the two partitions");
      await sleep(300);
      expect(tracker.starts).toHaveLength(2);
      release.open();
      await Promise.all(handles.map((h) => h.getResult()));
      expect(tracker.maxIn("odd")).toBe(1);
      expect(tracker.maxIn("even")).toBe(1);
    });

    // A claim takes the partitions with work and room in key order, up to its batch (100): those
    // full here, or at their concurrency, must not fill that list and starve the partitions after them.
    it.each([
      ["full here", 1, { partitionQueue: true, workerConcurrency: 1 }],
      ["at their global concurrency", 2, { partitionQueue: true, concurrency: 1 }],
    ] as const)("pass over the partitions %s, however many come first", async (_, n, options) => {
      const { tracker, release, list } = await executors(n, options, { held: true });
      const keys = Array.from({ length: 120 }, (_, i) => `p${String(i).padStart(3, "0")}`);
      const handles = await enqueue(list, 240, (i) => ({ partitionKey: keys[i % 120] }));
      await waitFor(() => tracker.running === 120, 10_000, "one running body in each of the 120 partitions");
      const { duro, job } = list[n - 1];
      const last = await duro.startWorkflow(job.with({ queueName: "q", workflowId: "last", partitionKey: "zzz" }), "last", "zzz");
      await waitFor(() => tracker.running === 121, 5_000, "the partition after 120 full ones");
      release.open();
      await Promise.all([...handles, last].map((h) => h.getResult()));
      for (const key of [...keys, "zzz"]) expect(tracker.maxIn(key)).toBe(1);
    });

    it("apply the rate limit to each partition separately", async () => {
      const periodMs = 800;
      const { tracker, list } = await executors(2, { partitionQueue: true, rateLimit: { limit: 1, periodSeconds: periodMs / 1000 } });
      const handles = await enqueue(list, 4, (i) => ({ partitionKey: i % 2 ? "x" : "y" }));
      await Promise.all(handles.map((h) => h.getResult()));
      const statuses = await list[0].duro.listWorkflows({ queueName: "q" });
      for (const key of ["x", "y"]) {
        const times = statuses.filter((s) => s.partitionKey === key).map((s) => s.startedAtEpochMs!);
        expect(maxInWindow(times, periodMs)).toBe(1);
      }
      // The first start of each partition did not wait for the other's window.
      const firsts = ["x", "y"].map((k) => Math.min(...statuses.filter((s) => s.partitionKey === k).map((s) => s.startedAtEpochMs!)));
      expect(Math.abs(firsts[0] - firsts[1])).toBeLessThan(periodMs);
      expect(tracker.starts).toHaveLength(4);
    });
  });
});
