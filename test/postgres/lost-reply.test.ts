/**
 * A claim whose commit went through but whose reply never came back (the connection died in
 * between) is sent again by the connection layer. The rows its first commit took must still
 * run here, once each, and hold their slots meanwhile; before claims carried a token, they
 * stayed PENDING on this executor with nothing running them until it restarted.
 *
 * The fault is made in the client: the statement really runs and commits, then the reply is
 * dropped and the connection reported reset, as when a network cut lands between the two.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { DatabaseError, DuroClient, WorkflowQueue, type QueueOptions } from "../../src/index.js";
import { PgConnection, retry } from "../../src/storage/postgres/connection.js";
import { crash, hangPoint, quietLogger, range, rawQuery, rejectionOf, useDuro, within } from "../helpers.js";
import type { Duro, DuroConfig } from "../../src/index.js";

const realQuery = pg.Client.prototype.query;
afterEach(() => {
  pg.Client.prototype.query = realQuery;
  retry.windowMs = 60_000;
});

/**
 * Drops the reply of the next `times` statements `lose` picks, after they ran; `lose` sees each
 * statement's name (or text), the client it ran on and its result.
 */
function loseReplies(times: number, lose: (statement: string, client: pg.Client, result: pg.QueryResult) => boolean) {
  const lost: string[] = [];
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    const run = (realQuery as (...a: unknown[]) => Promise<pg.QueryResult>).call(this, config, ...rest);
    if (rest.length || lost.length >= times) return run;
    const statement = typeof config === "string" ? config : (config as { name?: string })?.name ?? "";
    return run.then((result) => {
      if (lost.length >= times || !lose(statement, this, result)) return result;
      lost.push(statement);
      throw Object.assign(new Error("read ECONNRESET (test: the reply was lost)"), { code: "ECONNRESET" });
    });
  } as typeof realQuery;
  return lost;
}

/** Loses the reply of the next `times` COMMITs of transactions that ran a statement `pattern` matches. */
function loseCommitsAfter(times: number, pattern: RegExp) {
  const marked = new WeakSet<pg.Client>();
  return loseReplies(times, (statement, client) => {
    if (pattern.test(statement)) marked.add(client);
    return statement === "COMMIT" && marked.delete(client);
  });
}

/** 20 workflows queued before the executor starts, so that it claims them; each records its runs. */
async function drain(t: ReturnType<typeof useDuro>, options: QueueOptions, config: DuroConfig = {}) {
  const duro = t.duro({ executorId: "lost-reply", ...config });
  const runs = new Map<string, number>();
  let running = 0;
  let most = 0;
  duro.registerWorkflow("job", async (n: number) => {
    runs.set(duro.workflowId!, (runs.get(duro.workflowId!) ?? 0) + 1);
    most = Math.max(most, ++running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running--;
    return n * 2;
  });
  new WorkflowQueue(duro, "q", options);
  const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
  await client.enqueueMany({ workflowName: "job", queueName: "q" }, range(20).map((n) => [n]));
  await client.close();
  const ids = (await rawQuery(t.url, "SELECT workflow_id FROM workflow_status ORDER BY seq")).map((r) => r.workflow_id as string);
  return { duro, ids, runs, most: () => most };
}

async function expectAllRanOnce(t: ReturnType<typeof useDuro>, setup: Awaited<ReturnType<typeof drain>>) {
  const { duro, ids, runs } = setup;
  const results = await within(15_000, Promise.all(ids.map((id) => duro.getResult(id))), "every queued workflow's result");
  expect(results).toEqual(range(20).map((n) => n * 2));
  expect(ids.map((id) => runs.get(id))).toEqual(ids.map(() => 1));
  const left = await rawQuery(t.url, "SELECT count(*)::int AS n FROM workflow_status WHERE status <> 'SUCCESS'");
  expect(left[0].n).toBe(0);
}

describe("postgres: a claim whose reply was lost", () => {
  const t = useDuro("postgres");

  it("on a queue without shared limits: the rows its commit took run, once each, within workerConcurrency", async () => {
    const setup = await drain(t, { workerConcurrency: 4 });
    const lost = loseReplies(3, (statement) => /^duro_(claimInBatch|completeAndClaim)/.test(statement));
    await setup.duro.launch();
    await expectAllRanOnce(t, setup);
    expect(lost.length).toBe(3);
    expect(setup.most()).toBeLessThanOrEqual(4);
  });

  it("on a queue with a global concurrency limit: the claim transaction's lost COMMIT reply loses nothing", async () => {
    const setup = await drain(t, { concurrency: 3 });
    const lost = loseCommitsAfter(3, /^duro_claim/);
    await setup.duro.launch();
    await expectAllRanOnce(t, setup);
    expect(lost).toEqual(["COMMIT", "COMMIT", "COMMIT"]);
    expect(setup.most()).toBeLessThanOrEqual(3);
  });

  it("on a partitioned queue: what the lost commit took counts against its partition's workerConcurrency", async () => {
    const duro = t.duro({ executorId: "lost-reply" });
    const runs = new Map<string, number>();
    const running = new Map<string, number>();
    let most = 0;
    duro.registerWorkflow("job", async (n: number) => {
      const partition = String(n % 2);
      runs.set(duro.workflowId!, (runs.get(duro.workflowId!) ?? 0) + 1);
      running.set(partition, (running.get(partition) ?? 0) + 1);
      most = Math.max(most, running.get(partition)!);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running.set(partition, running.get(partition)! - 1);
      return n;
    });
    new WorkflowQueue(duro, "q", { partitionQueue: true, workerConcurrency: 2 });
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    for (const n of range(12)) await client.enqueue({ workflowName: "job", queueName: "q", partitionKey: String(n % 2) }, n);
    await client.close();
    const ids = (await rawQuery(t.url, "SELECT workflow_id FROM workflow_status ORDER BY seq")).map((r) => r.workflow_id as string);
    const lost = loseCommitsAfter(2, /^duro_claim/);
    await duro.launch();
    const results = await within(15_000, Promise.all(ids.map((id) => duro.getResult(id))), "every queued workflow's result");
    expect(results).toEqual(range(12));
    expect(ids.map((id) => runs.get(id))).toEqual(ids.map(() => 1));
    expect(lost).toEqual(["COMMIT", "COMMIT"]);
    expect(most).toBeLessThanOrEqual(2);
  });
});

describe("postgres: a fork whose reply was lost", () => {
  const t = useDuro("postgres");

  it("is recognized as its own when sent again: the fork runs once, and no WorkflowConflictError", async () => {
    const duro = t.duro();
    let runs = 0;
    const step = duro.registerStep("step", async (n: number) => n + 1);
    const wf = duro.registerWorkflow("wf", async (n: number) => {
      runs++;
      return step(n);
    });
    await duro.launch();
    const original = await duro.startWorkflow(wf.with({ workflowId: "orig" }), 1);
    expect(await original.getResult()).toBe(2);
    const lost = loseCommitsAfter(1, /^duro_fork$/);
    const fork = await duro.forkWorkflow("orig", 1, { newWorkflowId: "copy" });
    expect(lost).toEqual(["COMMIT"]);
    expect(await fork.getResult()).toBe(2);
    expect(runs).toBe(2);
    expect((await duro.getWorkflowStatus("copy"))!.forkedFrom).toBe("orig");
  });
});

describe("postgres: a recovery whose reply was lost", () => {
  const t = useDuro("postgres");

  /**
   * Workflow `id` of "wf" (n → 2n), started on an executor that then crashes mid-run; returns a
   * second executor (`config`), not launched, that can run it.
   */
  async function crashedMidRun(id: string, n: number, crashed: DuroConfig, config: DuroConfig) {
    const hang = hangPoint();
    const app = (duro: Duro) => {
      const step = hang.register(duro);
      return duro.registerWorkflow("wf", async (n: number) => {
        await step();
        return n * 2;
      });
    };
    const first = t.duro({ appVersion: "v1", ...crashed });
    const wf = app(first);
    await first.launch();
    await first.startWorkflow(wf.with({ workflowId: id }), n);
    await hang.reached(1);
    await crash(first);
    hang.state.on = false;
    const next = t.duro({ appVersion: "v1", ...config });
    app(next);
    return next;
  }

  it("at launch: the workflows it recovered run, each attempt counted once", async () => {
    const again = await crashedMidRun("r1", 21, { executorId: "x" }, { executorId: "x" });
    const lost = loseReplies(1, (statement) => statement === "duro_recoverOwn");
    await again.launch();
    expect(await within(15_000, again.getResult("r1"), "the recovered workflow")).toBe(42);
    expect(lost).toEqual(["duro_recoverOwn"]);
    // One attempt for the first run, one for the recovery: the retried statement counted none.
    expect((await again.getWorkflowStatus("r1"))!.recoveryAttempts).toBe(2);
  });

  it("in a takeover: the workflows it took from a dead executor run here", async () => {
    const live = await crashedMidRun("t1", 5, { executorId: "dead", executorLeaseSeconds: 1 }, { executorId: "live", executorLeaseSeconds: 1 });
    // The reply of the takeover that took something.
    const lost = loseReplies(1, (statement, _client, result) => statement === "duro_takeOver" && result.rows[0]?.rows !== null);
    await live.launch();
    expect(await within(15_000, live.getResult("t1"), "the adopted workflow")).toBe(10);
    expect(lost).toEqual(["duro_takeOver"]);
    expect((await live.getWorkflowStatus("t1"))!.executorId).toBe("live");
  });
});

/**
 * A write whose reply was lost past the store's retries fails with DatabaseError, yet it may have
 * committed (then, or later: its bytes were still on their way). Its rows, PENDING on this live
 * executor, must still run; before, nothing ran them until the executor restarted.
 */
describe("postgres: a write whose reply was lost past the retry window", () => {
  const t = useDuro("postgres");

  it("a start that failed with DatabaseError but committed runs, once; starting its ID again returns it", async () => {
    const duro = t.duro({ executorId: "late", executorLeaseSeconds: 1.5 });
    const runs = new Map<string, number>();
    const wf = duro.registerWorkflow("wf", async (n: number) => {
      runs.set(duro.workflowId!, (runs.get(duro.workflowId!) ?? 0) + 1);
      return n * 2;
    });
    await duro.launch();
    retry.windowMs = 0; // no second try: the caller gets DatabaseError at once
    const lost = loseReplies(1, (statement) => statement === "duro_insertOne");
    const error = await rejectionOf(duro.startWorkflow(wf.with({ workflowId: "late-1" }), 21));
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.message).toMatch(/^Lost the connection to PostgreSQL at .* and could not get it back within 0s: .*\. Check that the server is up and reachable \(behind a pooler, that its pool has room for each process's poolSize \+ 1 connections\); interrupted workflows run again from their checkpoints once it is\.$/);
    expect(lost).toEqual(["duro_insertOne"]);
    retry.windowMs = 60_000;
    const again = await duro.startWorkflow(wf.with({ workflowId: "late-1" }), 21);
    expect(await within(10_000, again.getResult(), "the workflow whose start's reply was lost")).toBe(42);
    expect(runs.get("late-1")).toBe(1);
    // A start under way meanwhile is not taken for one (it runs once too).
    expect(await (await duro.startWorkflow(wf, 5)).getResult()).toBe(10);
    expect([...runs.values()]).toEqual([1, 1]);
  });

  it("a queue claim that failed with DatabaseError but committed: what it took runs, once each", async () => {
    const setup = await drain(t, { workerConcurrency: 4 }, { executorLeaseSeconds: 1.5 });
    retry.windowMs = 0;
    const lost = loseReplies(2, (statement) => /^duro_(claimInBatch|completeAndClaim)/.test(statement));
    await setup.duro.launch();
    await expectAllRanOnce(t, setup);
    expect(lost.length).toBe(2);
    expect(setup.most()).toBeLessThanOrEqual(4);
  });
});

describe("postgres: a session the server ends as it opens", () => {
  it("an error event before the pool listens does not crash the process (the server ended the session in the tick it opened)", async () => {
    const conn = new PgConnection("postgres://postgres@127.0.0.1:5432/postgres", {});
    try {
      // The pool's client class, as it is before the pool's connect callback adds its listener.
      const PoolClient = (conn.pool as unknown as { options: { Client: new (config: pg.ClientConfig) => pg.Client } }).options.Client;
      const client = new PoolClient({});
      expect(() => client.emit("error", new Error("terminating connection due to administrator command"))).not.toThrow();
    } finally {
      await conn.close();
    }
  });
});
