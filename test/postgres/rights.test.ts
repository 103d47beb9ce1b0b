/**
 * What a DBA sets up: a role with only the rights to use duro's tables (no CREATE), a read-only
 * session (a replica), and timeouts that cancel statements. A schema already at duro's version
 * is only read at launch, and a statement the server gave up on runs again: none of them fails
 * a workflow.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { AwaitedWorkflowCancelledError, DatabaseError, DuroClient, WorkflowQueue, type Duro } from "../../src/index.js";
import { clockPast, gate, POSTGRES_URL, quietLogger, rawQuery, rejectionOf, sleepingPastDeadline, useDuro, waitFor } from "../helpers.js";

describe("postgres", () => {
  const t = useDuro("postgres");
  const roles: string[] = [];
  afterEach(async () => {
    for (const role of roles.splice(0)) await rawQuery(POSTGRES_URL, `DROP OWNED BY ${role}; DROP ROLE ${role}`);
  });

  /** The URL of a new role that may read and write the tables of t.url's schema, and not create anything. */
  async function appRole(settings: string[] = []): Promise<string> {
    const role = `duro_test_${randomUUID().slice(0, 8)}`;
    const schema = `"${new URL(t.url).searchParams.get("schema")}"`;
    roles.push(role);
    await rawQuery(POSTGRES_URL, [
      `CREATE ROLE ${role} LOGIN`,
      `GRANT USAGE ON SCHEMA ${schema} TO ${role}`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`,
      `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`,
      ...settings.map((s) => `ALTER ROLE ${role} SET ${s}`),
    ].join("; "));
    const url = new URL(t.url);
    url.username = role;
    return url.toString();
  }

  /** Migrates t.url's schema (as its owner would, or `duro migrate`) and runs one workflow there. */
  async function migrated() {
    const owner = t.duro({ executorId: "owner" });
    const wf = owner.registerWorkflow("double", async (x: number) => (await owner.runStep(async () => x * 2, { name: "twice" })));
    await owner.launch();
    expect(await wf(21)).toBe(42);
    await owner.shutdown();
  }

  /** A workflow that runs step "first", waits for `go`, then runs step "second". */
  function twoSteps(duro: Duro) {
    const go = gate();
    const state = { firstDone: false };
    const wf = duro.registerWorkflow("two", async () => {
      const a = await duro.runStep(async () => "a", { name: "first" });
      state.firstDone = true;
      await go.promise;
      return a + (await duro.runStep(async () => "b", { name: "second" }));
    });
    return { wf, go, firstDone: () => state.firstDone };
  }

  it("a role that may only use duro's tables runs workflows on a schema migrated already (launch only reads it)", async () => {
    await migrated();
    const url = await appRole();
    const app = t.duro({ databaseUrl: url, executorId: "app" });
    const wf = app.registerWorkflow("double", async (x: number) => (await app.runStep(async () => x * 2, { name: "twice" })));
    await app.launch();
    expect(await wf(5)).toBe(10);
    const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
    try {
      expect((await client.listWorkflows({ name: "double" })).map((s) => s.output)).toEqual([42, 10]);
    } finally {
      await client.close();
    }
  });

  /** An executor on a new role of a migrated schema, its log lines ("warn …"), and the owner's grants and revokes of that role's rights. */
  async function appExecutor() {
    await migrated();
    const url = await appRole();
    const role = new URL(url).username;
    const schema = `"${new URL(t.url).searchParams.get("schema")}"`;
    const lines: string[] = [];
    const log = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
    const app = t.duro({ databaseUrl: url, executorId: "app", logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") } });
    const rights = (verb: "GRANT" | "REVOKE", right: string, table: string) =>
      rawQuery(POSTGRES_URL, `${verb} ${right} ON ${schema}.${table} ${verb === "GRANT" ? "TO" : "FROM"} ${role}`);
    return { app, lines, rights };
  }

  it("a write the server refuses (a right revoked mid-run) interrupts the workflow, not fails it: it finishes once the right is back", async () => {
    const { app, lines, rights } = await appExecutor();
    const { wf, go, firstDone } = twoSteps(app);
    await app.launch();
    const handle = await app.startWorkflow(wf.with({ workflowId: "refused" }));
    await waitFor(firstDone, 10_000, "the first step");
    await rights("REVOKE", "INSERT", "operation_outputs");
    go.open();
    const interrupted = () => lines.find((l) => l.startsWith("warn Workflow refused was interrupted"));
    await waitFor(() => interrupted() !== undefined, 10_000, "the interruption");
    expect(interrupted()).toMatch(/SQLSTATE 42501.*Grant duro's role the rights/);
    expect((await app.getWorkflowStatus("refused"))!.status).toBe("PENDING");
    await rights("GRANT", "INSERT", "operation_outputs");
    expect(await handle.getResult()).toBe("ab");
    expect((await app.listWorkflowSteps("refused")).map((s) => [s.functionName, s.output])).toEqual([["first", "a"], ["second", "b"]]);
  });

  it("a queue whose claims the server refuses says so once, not at every poll, and dispatches once the right is back", async () => {
    const { app, lines, rights } = await appExecutor();
    new WorkflowQueue(app, "q", { pollingIntervalSeconds: 0.05 });
    app.registerWorkflow("queued", async () => "ran");
    await app.launch();
    await rights("REVOKE", "UPDATE", "workflow_status");
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger }); // the owner's: its insert is allowed
    try {
      const handle = await client.enqueue<[], string>({ workflowName: "queued", queueName: "q" });
      const failures = () => lines.filter((l) => l.includes('Dispatching queue "q" failed'));
      await waitFor(() => failures().length >= 5, 10_000, "five failed claims");
      expect(failures().filter((l) => l.startsWith("warn"))).toHaveLength(1);
      expect(failures()[0]).toMatch(/SQLSTATE 42501/);
      await rights("GRANT", "UPDATE", "workflow_status");
      expect(await handle.getResult()).toBe("ran");
      expect(lines).toContain('info Dispatching queue "q" works again.');
    } finally {
      await client.close();
    }
  });

  it("a deadline that passes while the server refuses the cancel still holds: the run stops at it, and the cancel lands once it can", async () => {
    const { app, rights } = await appExecutor();
    const { runs, start } = sleepingPastDeadline(app);
    await app.launch();
    const { handle, startedAt } = await start();
    await rights("REVOKE", "UPDATE", "workflow_status"); // the cancel is an UPDATE
    await clockPast(startedAt + 2_000); // past the deadline, and past the sleep's end
    await rights("GRANT", "UPDATE", "workflow_status");
    await expect(handle.getResult()).rejects.toBeInstanceOf(AwaitedWorkflowCancelledError);
    expect(runs.after, "steps run past the deadline").toBe(0);
  });

  it("a read-only session (a replica) is read by a client; an executor's launch fails with a DatabaseError that says so", async () => {
    await migrated();
    const url = await appRole(["default_transaction_read_only = on"]);
    const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
    try {
      expect((await client.listWorkflows({})).map((s) => [s.workflowName, s.status, s.output])).toEqual([["double", "SUCCESS", 42]]);
    } finally {
      await client.close();
    }
    const warnings: string[] = [];
    const logger = { ...quietLogger, warn: (message: string) => void warnings.push(message) };
    const error = await rejectionOf(t.duro({ databaseUrl: url, executorId: "replica", logger }).launch());
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.message).toMatch(/read-only.*point databaseUrl at the primary/);
    expect(warnings).toEqual([]); // its first heartbeat failed: it has no shutdown to record either
  });

  it("a pooler in transaction mode (PgBouncer's) is refused at launch and at a client's first call, with a DatabaseError that says what to do", async () => {
    // What such a pooler shows: two connections open at once on one backend, or one connection's backend changing.
    for (const backend of [() => 4242, (() => { let n = 0; return () => ++n; })()]) {
      const query = pg.Client.prototype.query;
      pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
        if (args[0] === "SELECT pg_backend_pid() AS pid") return Promise.resolve({ rows: [{ pid: backend() }] });
        return (query as (...a: unknown[]) => unknown).apply(this, args);
      } as typeof query;
      try {
        const launch = rejectionOf(t.duro().launch());
        const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
        const errors = [await launch, await rejectionOf(client.listWorkflows({})).finally(() => client.close())];
        for (const error of errors) {
          expect(error).toBeInstanceOf(DatabaseError);
          expect(error.message).toMatch(/through a pooler .*pool_mode = transaction or statement.*Point databaseUrl at PostgreSQL itself, or at a pooler in session mode\.$/);
        }
      } finally {
        pg.Client.prototype.query = query;
      }
    }
    // Without a pooler in the way: launched.
    await t.duro().launch();
  });

  it("a step record cancelled by lock_timeout runs again until the lock is gone: the workflow finishes as if nothing happened", async () => {
    await migrated();
    const url = new URL(t.url);
    url.searchParams.set("options", "-c lock_timeout=20ms");
    const duro = t.duro({ databaseUrl: url.toString(), executorId: "app" });
    const { wf, go, firstDone } = twoSteps(duro);
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: "locked" }));
    await waitFor(firstDone, 10_000, "the first step");
    // Another session holds a lock that blocks every step record, for longer than lock_timeout.
    const schema = `"${url.searchParams.get("schema")}"`;
    const holder = rawQuery(POSTGRES_URL, `BEGIN; LOCK TABLE ${schema}.operation_outputs IN EXCLUSIVE MODE; SELECT pg_sleep(0.5); COMMIT`);
    await waitFor(async () => (await rawQuery(POSTGRES_URL, "SELECT 1 FROM pg_locks WHERE mode = 'ExclusiveLock' AND relation = $1::regclass", [`${schema}.operation_outputs`])).length > 0, 10_000, "the lock");
    go.open();
    await holder;
    expect(await handle.getResult()).toBe("ab");
    expect((await duro.listWorkflowSteps("locked")).map((s) => [s.functionName, s.output])).toEqual([["first", "a"], ["second", "b"]]);
  });
});
