/** listQueuedWorkflows: only queued work (ENQUEUED, DELAYED, PENDING on a queue), with every filter. */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, WorkflowQueue } from "../../src/index.js";
import { postgresLists } from "../../src/storage/postgres/store.js";
import { numbered, listWorkflowsQuery } from "../../src/storage/sql.js";
import { sqliteLists } from "../../src/storage/sqlite/store.js";
import type { WorkflowFilter } from "../../src/storage/store.js";
import { backends, clockPast, gate, rawQuery, useClients, useDuro, waitFor } from "../helpers.js";

const ids = (list: { workflowId: string }[]) => list.map((s) => s.workflowId);

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();

  /**
   * In creation order (each on a later millisecond):
   *   run1    "job" on qa, PENDING on executor e1 (holds qa, concurrency 1)
   *   wait1   "job" on qa, ENQUEUED, user alice
   *   wait2   "other" on qa, ENQUEUED, app version v2
   *   later1  "job" on qb, DELAYED
   *   done1   "quick" on qb, SUCCESS                 (not listed)
   *   direct  "job" without a queue, PENDING         (not listed)
   *   parent  "parent" without a queue, PENDING; its child parent-1 "job" on qa, ENQUEUED
   *   fork1   fork of done1 onto qa, ENQUEUED
   */
  async function fixture() {
    const duro = t.duro({ executorId: "e1", appVersion: "v1" });
    const release = gate();
    const job = duro.registerWorkflow("job", async (x: string) => {
      await release.promise;
      return x;
    });
    const other = duro.registerWorkflow("other", async (x: string) => x);
    const quick = duro.registerWorkflow("quick", async (x: string) => x);
    const parent = duro.registerWorkflow("parent", async () => {
      const child = await duro.startWorkflow(job.with({ queueName: "qa" }), "child");
      return child.getResult();
    });
    new WorkflowQueue(duro, "qa", { concurrency: 1 });
    new WorkflowQueue(duro, "qb");
    await duro.launch();
    const times: Record<string, number> = {};
    const step = async (id: string, handle: Promise<{ workflowId: string }>) => {
      await handle;
      const { createdAt } = (await duro.getWorkflowStatus(id))!;
      times[id] = createdAt;
      await clockPast(createdAt);
    };
    await step("run1", duro.startWorkflow(job.with({ queueName: "qa", workflowId: "run1" }), "r"));
    await waitFor(async () => (await duro.getWorkflowStatus("run1"))!.status === "PENDING");
    await step("wait1", duro.startWorkflow(job.with({ queueName: "qa", workflowId: "wait1", authenticatedUser: "alice" }), "w1"));
    await step("wait2", duro.startWorkflow(other.with({ queueName: "qa", workflowId: "wait2", appVersion: "v2" }), "w2"));
    await step("later1", duro.startWorkflow(job.with({ queueName: "qb", workflowId: "later1", delaySeconds: 3600 }), "l1"));
    const done = await duro.startWorkflow(quick.with({ queueName: "qb", workflowId: "done1" }), "d1");
    await done.getResult();
    await step("done1", Promise.resolve(done));
    await step("direct", duro.startWorkflow(job.with({ workflowId: "direct" }), "direct"));
    await step("parent", duro.startWorkflow(parent.with({ workflowId: "parent" })));
    await waitFor(async () => (await duro.getWorkflowStatus("parent-1")) !== null, 10_000, "the child to be enqueued");
    times["parent-1"] = (await duro.getWorkflowStatus("parent-1"))!.createdAt;
    await clockPast(times["parent-1"]);
    await duro.forkWorkflow("done1", 1, { newWorkflowId: "fork1", queueName: "qa" });
    times.fork1 = (await duro.getWorkflowStatus("fork1"))!.createdAt;
    return { duro, release, times };
  }

  it("lists only workflows waiting in or running from a queue, oldest first, with inputs", async () => {
    const { duro, release } = await fixture();
    const all = await duro.listQueuedWorkflows();
    expect(ids(all)).toEqual(["run1", "wait1", "wait2", "later1", "parent-1", "fork1"]);
    expect(all.map((s) => s.status)).toEqual(["PENDING", "ENQUEUED", "ENQUEUED", "DELAYED", "ENQUEUED", "ENQUEUED"]);
    expect(all[1]).toMatchObject({ queueName: "qa", input: ["w1"], authenticatedUser: "alice" });
    release.open();
  });

  it("filters by status, queueName, name, workflowIds and workflowIdPrefix", async () => {
    const { duro, release } = await fixture();
    expect(ids(await duro.listQueuedWorkflows({ status: "ENQUEUED" }))).toEqual(["wait1", "wait2", "parent-1", "fork1"]);
    expect(ids(await duro.listQueuedWorkflows({ status: ["PENDING", "DELAYED"] }))).toEqual(["run1", "later1"]);
    expect(ids(await duro.listQueuedWorkflows({ queueName: "qb" }))).toEqual(["later1"]);
    expect(ids(await duro.listQueuedWorkflows({ queueName: ["qa", "qb"] }))).toHaveLength(6);
    expect(ids(await duro.listQueuedWorkflows({ queueName: "nowhere" }))).toEqual([]);
    // An explicit status reaches finished work too, as long as it came through a queue.
    expect(ids(await duro.listQueuedWorkflows({ status: "SUCCESS" }))).toEqual(["done1"]);
    expect(ids(await duro.listQueuedWorkflows({ name: "other" }))).toEqual(["wait2"]);
    expect(ids(await duro.listQueuedWorkflows({ name: ["other", "quick"] }))).toEqual(["wait2", "fork1"]);
    expect(ids(await duro.listQueuedWorkflows({ workflowIds: ["direct", "wait2", "done1", "run1"] }))).toEqual(["run1", "wait2"]);
    expect(ids(await duro.listQueuedWorkflows({ workflowIdPrefix: "wait" }))).toEqual(["wait1", "wait2"]);
    expect(ids(await duro.listQueuedWorkflows({ workflowIdPrefix: ["run", "later"] }))).toEqual(["run1", "later1"]);
    release.open();
  });

  it("filters by user, appVersion, executorId, parent, forkedFrom and creation time", async () => {
    const { duro, release, times } = await fixture();
    expect(ids(await duro.listQueuedWorkflows({ user: "alice" }))).toEqual(["wait1"]);
    expect(ids(await duro.listQueuedWorkflows({ appVersion: "v2" }))).toEqual(["wait2"]);
    expect(ids(await duro.listQueuedWorkflows({ executorId: "e1" }))).toEqual(["run1"]);
    expect(ids(await duro.listQueuedWorkflows({ parentWorkflowId: "parent" }))).toEqual(["parent-1"]);
    expect(ids(await duro.listQueuedWorkflows({ hasParent: true }))).toEqual(["parent-1"]);
    expect(ids(await duro.listQueuedWorkflows({ hasParent: false }))).toEqual(["run1", "wait1", "wait2", "later1", "fork1"]);
    expect(ids(await duro.listQueuedWorkflows({ forkedFrom: "done1" }))).toEqual(["fork1"]);
    const iso = (ms: number) => new Date(ms).toISOString();
    expect(ids(await duro.listQueuedWorkflows({ startTime: iso(times.wait2) }))).toEqual(["wait2", "later1", "parent-1", "fork1"]);
    expect(ids(await duro.listQueuedWorkflows({ endTime: iso(times.wait2) }))).toEqual(["run1", "wait1", "wait2"]);
    expect(ids(await duro.listQueuedWorkflows({ startTime: iso(times.wait1), endTime: iso(times.later1) }))).toEqual(["wait1", "wait2", "later1"]);
    await expect(duro.listQueuedWorkflows({ startTime: "yesterday" })).rejects.toThrow(InvalidArgumentError);
    release.open();
  });

  it("pages with limit, offset and sortDesc, and can leave inputs and outputs unloaded", async () => {
    const { duro, release } = await fixture();
    expect(ids(await duro.listQueuedWorkflows({ limit: 2 }))).toEqual(["run1", "wait1"]);
    expect(ids(await duro.listQueuedWorkflows({ limit: 2, offset: 2 }))).toEqual(["wait2", "later1"]);
    expect(ids(await duro.listQueuedWorkflows({ sortDesc: true }))).toEqual(["fork1", "parent-1", "later1", "wait2", "wait1", "run1"]);
    expect(ids(await duro.listQueuedWorkflows({ sortDesc: true, limit: 1, offset: 1 }))).toEqual(["parent-1"]);
    const [bare] = await duro.listQueuedWorkflows({ workflowIds: ["wait1"], loadInput: false, loadOutput: false });
    expect(bare.input).toBeUndefined();
    expect(bare.workflowId).toBe("wait1");
    await expect(duro.listQueuedWorkflows({ limit: -1 })).rejects.toThrow(InvalidArgumentError);
    release.open();
  });

  it("is offered by DuroClient with the same filters", async () => {
    const { release } = await fixture();
    const c = client(t.url);
    expect(ids(await c.listQueuedWorkflows())).toEqual(["run1", "wait1", "wait2", "later1", "parent-1", "fork1"]);
    expect(ids(await c.listQueuedWorkflows({ queueName: "qa", status: "ENQUEUED", limit: 2 }))).toEqual(["wait1", "wait2"]);
    release.open();
  });

  it("with many finished workflows, a listing with a limit reads partial indexes or ID ranges, not the whole table oldest first", async () => {
    const duro = t.duro();
    const job = duro.registerWorkflow("job", async () => "done");
    new WorkflowQueue(duro, "q");
    await duro.launch();
    for (const id of ["later1", "later2", "later3"]) await duro.startWorkflow(job.with({ queueName: "q", workflowId: id, delaySeconds: 3600 }));
    // A year of finished work, older than the waiting workflows.
    await rawQuery(t.url, `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 20000)
      INSERT INTO workflow_status (workflow_id, status, name, inputs, output, serialization, executor_id, app_version, created_at, updated_at,
        started_at, completed_at, recovery_attempts, queue_name, priority, was_forked_from)
      SELECT 'done-' || i, 'SUCCESS', 'job', '[]', '"done"', 'default', 'old', 'v0', i, i, i, i, 1, 'q', 0, 1 = 0 FROM g`);
    await rawQuery(t.url, "ANALYZE");
    const store = duro.engine.store;
    const filters: WorkflowFilter[] = [];
    const list = store.listWorkflows.bind(store);
    store.listWorkflows = (filter) => (filters.push(filter), list(filter));
    expect(ids(await duro.listQueuedWorkflows({ limit: 2 }))).toEqual(["later1", "later2"]);
    expect(ids(await duro.listQueuedWorkflows({ queueName: "q", status: "DELAYED", limit: 2, offset: 1 }))).toEqual(["later2", "later3"]);
    expect(ids(await duro.listWorkflows({ status: ["PENDING", "DELAYED"], limit: 1 }))).toEqual(["later1"]);
    // Many prefixes: their ranges read as a table, first.
    const prefixes = ["later", ...Array.from({ length: 40 }, (_, i) => `done-${100 + i}`)];
    expect(ids(await duro.listWorkflows({ workflowIdPrefix: prefixes, limit: 2 }))).toEqual(["done-100", "done-101"]);
    expect(ids(await duro.listQueuedWorkflows({ workflowIdPrefix: prefixes, limit: 2 }))).toEqual(["later1", "later2"]);
    for (const filter of filters) {
      const { sql, params } = listWorkflowsQuery("workflow_status", filter, backend === "sqlite" ? sqliteLists : postgresLists(true));
      const plan = backend === "sqlite"
        ? (await rawQuery(t.url, `EXPLAIN QUERY PLAN ${sql}`, params)).map((row) => row.detail).join("\n")
        : (await rawQuery(t.url, `EXPLAIN ${numbered(sql)}`, params)).map((row) => row["QUERY PLAN"]).join("\n");
      expect(plan).not.toMatch(/workflow_status_created_at|Seq Scan|SCAN workflow_status$/m);
    }
  });

  it("takes 5,000 workflowIdPrefix values, with or without live statuses", async () => {
    const duro = t.duro();
    const job = duro.registerWorkflow("job", async () => "done");
    new WorkflowQueue(duro, "q");
    await duro.launch();
    await duro.startWorkflow(job.with({ queueName: "q", workflowId: "p-later", delaySeconds: 3600 }));
    await (await duro.startWorkflow(job.with({ workflowId: "p-done" }))).getResult();
    await duro.startWorkflow(job.with({ queueName: "q", workflowId: "x-later", delaySeconds: 3600 }));
    const many = (n: number, wanted: string[]) => [...Array.from({ length: n - wanted.length }, (_, i) => `none-${i}-`), ...wanted];
    const sorted = async (list: Promise<{ workflowId: string }[]>) => ids(await list).sort();
    await (await duro.startWorkflow(job.with({ workflowId: "\u{10FFFF}-done" }))).getResult();
    expect(await sorted(duro.listWorkflows({ workflowIdPrefix: many(5000, ["p-"]) }))).toEqual(["p-done", "p-later"]);
    expect(await sorted(duro.listWorkflows({ workflowIdPrefix: many(5000, ["\u{10FFFF}", "p-d"]) }))).toEqual(["p-done", "\u{10FFFF}-done"]);
    // Repeated and nested prefixes: each ID listed once (and their ranges read once).
    const nested = [...Array(100).fill("p-"), "p", "p-d", "p-done", "x-later", "x-later-not"];
    expect(await sorted(duro.listWorkflows({ workflowIdPrefix: nested }))).toEqual(["p-done", "p-later", "x-later"]);
    expect(await sorted(duro.listQueuedWorkflows({ workflowIdPrefix: nested }))).toEqual(["p-later", "x-later"]);
    expect(await sorted(duro.listQueuedWorkflows({ workflowIdPrefix: many(4997, ["p-", "x-"]) }))).toEqual(["p-later", "x-later"]);
    expect(await sorted(duro.listWorkflows({ workflowIdPrefix: many(4997, ["p-", "x-"]), status: ["DELAYED", "PENDING", "ENQUEUED"] })))
      .toEqual(["p-later", "x-later"]);
    expect(await sorted(duro.listWorkflows({ workflowIdPrefix: many(4999, ["p-"]), status: "SUCCESS" }))).toEqual(["p-done"]);
  });

  it("drops a workflow from the list once it finishes or is cancelled", async () => {
    const { duro, release } = await fixture();
    await duro.cancelWorkflow("later1");
    expect(ids(await duro.listQueuedWorkflows())).not.toContain("later1");
    release.open();
    await duro.cancelWorkflow("wait2"); // its app version is not served here
    await waitFor(async () => (await duro.listQueuedWorkflows()).length === 0, 10_000, "the queues to drain");
    expect((await duro.getWorkflowStatus("wait1"))!.status).toBe("SUCCESS");
    expect(await duro.getResult("parent")).toBe("child");
  });
});
