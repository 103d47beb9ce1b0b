/** Configuration: database URLs and their failures, schema versions, defaults. */
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DatabaseError, Duro, DuroClient, DuroError, InvalidArgumentError, WorkflowQueue } from "../../src/index.js";
import { type Backend, backends, freshDatabaseUrl, gate, POSTGRES_URL, quietLogger, rawQuery, rejectionOf, useDuro, waitFor, within } from "../helpers.js";
import { requireBuild } from "../processes.js";
import { consoleLogger } from "../../src/engine/logger.js";

/** A URL whose database cannot be opened or reached. */
function unusableUrl(backend: Backend, scratch: string): string {
  if (backend === "sqlite") {
    const file = join(scratch, "a-file");
    writeFileSync(file, "not a directory");
    return `sqlite:${join(file, "sub", "duro.sqlite")}`; // its "directory" is a regular file
  }
  return "postgres://postgres@127.0.0.1:1/postgres"; // nothing listens on port 1
}

function withEnv(name: string, value: string | undefined): () => void {
  const saved = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  return () => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  };
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const scratchDirs: string[] = [];
  const restores: (() => void)[] = [];
  afterEach(() => {
    for (const restore of restores.splice(0).reverse()) restore();
    for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), "duro-config-"));
    scratchDirs.push(dir);
    return dir;
  };

  describe("database URL", () => {
    it("a URL of an unknown kind fails launch with InvalidArgumentError", async () => {
      for (const databaseUrl of ["mysql://localhost/db", "sqlite:", "not a url", "postgres://"]) {
        const duro = t.duro({ databaseUrl });
        const error = await rejectionOf(duro.launch());
        expect(error, databaseUrl).toBeInstanceOf(InvalidArgumentError);
        expect(error).toBeInstanceOf(DuroError);
      }
      // A URL's scheme alone is repeated (the rest may hold a password); a bare path is shown whole, with its fix.
      expect((await rejectionOf(t.duro({ databaseUrl: "mysql://u:secret@h/db" }).launch())).message).toContain('(got "mysql:…")');
      expect((await rejectionOf(t.duro({ databaseUrl: "./app.sqlite" }).launch())).message).toContain('(got "./app.sqlite"). Example: "sqlite:./.duro/app.sqlite", or "sqlite:./app.sqlite" for that file.');
      if (backend === "postgres") {
        // PostgreSQL cuts names past 63 bytes, so two such schemas were one (sharing tables, not wake-ups).
        const long = `${POSTGRES_URL}${POSTGRES_URL.includes("?") ? "&" : "?"}schema=${"s".repeat(63)}x`;
        const error = await rejectionOf(t.duro({ databaseUrl: long }).launch());
        expect(error).toBeInstanceOf(InvalidArgumentError);
        expect(error.message).toContain("is 64 bytes; PostgreSQL keeps names of at most 63");
      }
    });

    it("a database that cannot be opened or reached fails launch with DatabaseError", async () => {
      const duro = t.duro({ databaseUrl: unusableUrl(backend, scratch()), connectTimeoutSeconds: 1 });
      const start = performance.now();
      const error = await rejectionOf(duro.launch());
      expect(error).toBeInstanceOf(DatabaseError);
      expect(error).toBeInstanceOf(DuroError);
      expect(error.message.length).toBeGreaterThan(0);
      expect(performance.now() - start).toBeLessThan(5000);
    });

    it("a launch that fails after connecting leaves nothing running: the process exits, and the instance says to make a new one", async () => {
      requireBuild("this test");
      const first = t.duro();
      await first.launch();
      await first.shutdown();
      await rawQuery(t.url, "DROP TABLE executors"); // the recovery at launch fails on it
      const script = `
        import { Duro } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)};
        const duro = new Duro({ databaseUrl: process.argv[1], logger: { debug() {}, info() {}, warn() {}, error() {} } });
        await duro.launch().catch((error) => console.log(JSON.stringify({ failed: error.constructor.name })));
        await duro.launch().catch((error) => console.log(JSON.stringify({ again: error.message })));`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script, t.url], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      const code = await within(15_000, new Promise((resolve) => child.on("exit", resolve)), "the process to exit").finally(() => child.kill("SIGKILL"));
      expect(code).toBe(0);
      const [failed, again] = out.trim().split("\n").map((line) => JSON.parse(line));
      expect(failed.failed).toMatch(/Error$/);
      // SQLite prepares every statement as it opens the file, so there the launch fails before it starts anything.
      expect(again.again).toMatch(backend === "postgres" ? /create a new one/ : /Cannot open/);
    });

    it("shutdown() while launch() is under way: both resolve, nothing is left running, and the process exits", async () => {
      requireBuild("this test");
      t.duro(); // fixes this test's fresh database URL
      // Shut down at points all along a launch (connecting, migrating, recovering, starting queues).
      const script = `
        import { Duro, WorkflowQueue } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)};
        for (const delay of [0, 1, 2, 4, 8, 15, 30, 60, 120]) {
          const duro = new Duro({ databaseUrl: process.argv[1], logger: { debug() {}, info() {}, warn() {}, error() {} } });
          duro.registerWorkflow("w", async () => 1);
          new WorkflowQueue(duro, "q");
          const launched = duro.launch();
          await new Promise((resolve) => setTimeout(resolve, delay));
          await duro.shutdown();
          await launched;
          console.log(JSON.stringify({ delay, relaunch: await duro.launch().then(() => "launched", (e) => e.constructor.name) }));
        }`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script, t.url], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      const code = await within(20_000, new Promise((resolve) => child.on("exit", resolve)), "the process to exit").finally(() => child.kill("SIGKILL"));
      expect(code).toBe(0);
      const lines = out.trim().split("\n").map((line) => JSON.parse(line));
      expect(lines.map((l) => l.delay)).toEqual([0, 1, 2, 4, 8, 15, 30, 60, 120]);
      for (const line of lines) expect(line.relaunch).toBe("DuroError");
    });

    it("a database written by a newer duro (higher schema version) fails launch with DatabaseError", async () => {
      const first = t.duro();
      await first.launch();
      await first.shutdown();
      await rawQuery(t.url, "INSERT INTO duro_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [999_999, "999999_future.sql", Date.now()]);
      const second = t.duro();
      const error = await rejectionOf(second.launch());
      expect(error).toBeInstanceOf(DatabaseError);
      expect(error.message).toContain("999999");
    });

    it("a database of schema version 1 is upgraded at launch, and the work queued in it runs in enqueue order", async () => {
      const order: string[] = [];
      const executor = t.duro(); // fixes this test's fresh database URL; launched after the downgrade
      const step = executor.registerStep("step", async (n: number) => n * 10);
      executor.registerWorkflow("wf", async (n: number) => {
        order.push(executor.workflowId!);
        return step(n);
      });
      new WorkflowQueue(executor, "q", { workerConcurrency: 1 });
      const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
      for (const id of ["A", "B", "C"]) await client.enqueue({ workflowName: "wf", queueName: "q", workflowId: id }, id.charCodeAt(0));
      await client.close();
      // Back to version 1: its queue index and (on PostgreSQL) the step records' foreign key, no claim tokens, no app versions,
      // no index of stream writers or partitions (and on SQLite no wake log).
      for (const sql of [
        "DROP INDEX streams_writer",
        "DROP INDEX workflow_status_partition_queued",
        "DROP INDEX workflow_status_partition_running",
        "DROP TABLE app_versions",
        "ALTER TABLE executors DROP COLUMN app_version",
        "DROP INDEX workflow_status_by_priority",
        "DROP INDEX workflow_status_started",
        "DROP INDEX workflow_status_queued",
        "CREATE INDEX workflow_status_queued ON workflow_status (queue_name, status, priority, created_at) WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED')",
        ...(backend === "postgres"
          ? [
              "ALTER TABLE operation_outputs ADD FOREIGN KEY (workflow_id) REFERENCES workflow_status (workflow_id) ON DELETE CASCADE",
              "ALTER TABLE workflow_status DROP COLUMN claim_token",
            ]
          : ["DROP TABLE wake_log"]),
        "DELETE FROM duro_migrations WHERE version > 1",
      ]) await rawQuery(t.url, sql);
      const versionNow = async () => Number((await rawQuery(t.url, "SELECT MAX(version) AS version FROM duro_migrations"))[0].version);
      expect(await versionNow()).toBe(1);

      await executor.launch();
      expect(await Promise.all(["A", "B", "C"].map((id) => executor.getResult(id)))).toEqual([650, 660, 670]);
      expect(order).toEqual(["A", "B", "C"]);
      expect(await versionNow()).toBeGreaterThan(1);
    });

    it("DURO_DATABASE_URL is used when no databaseUrl is given", async () => {
      const probe = t.duro(); // fixes this test's fresh database URL
      restores.push(withEnv("DURO_DATABASE_URL", t.url));
      const fromEnv = t.duro({ databaseUrl: undefined, executorId: "env" });
      const wf = fromEnv.registerWorkflow("wf", async () => "stored via env");
      await fromEnv.launch();
      await (await fromEnv.startWorkflow(wf.with({ workflowId: "E" }))).getResult();
      await probe.launch();
      expect(await probe.getResult("E")).toBe("stored via env");
      // Set but empty is refused, and the message names the variable.
      restores.push(withEnv("DURO_DATABASE_URL", ""));
      const empty = await rejectionOf(t.duro({ databaseUrl: undefined, executorId: "empty" }).launch());
      expect(empty).toBeInstanceOf(InvalidArgumentError);
      expect((empty as Error).message).toContain("DURO_DATABASE_URL");
    });

    it("a shutdown while launch recovers starts no more recovered workflows: they stay PENDING for the next launch", async () => {
      const started: string[] = [];
      const make = (onStart?: (duro: Duro) => void) => {
        const duro = t.duro({ executorId: "exec-r" });
        const wf = duro.registerWorkflow("rec", async (id: string) => {
          started.push(id);
          onStart?.(duro);
          await duro.recv<string>("go", 60);
          return id;
        });
        return { duro, wf };
      };
      const ids = Array.from({ length: 40 }, (_, i) => `rec-${i}`);
      const first = make();
      await first.duro.launch();
      await Promise.all(ids.map((id) => first.duro.startWorkflow(first.wf.with({ workflowId: id }), id)));
      await first.duro.shutdown(); // all 40 stay PENDING on exec-r
      started.length = 0;
      let stopping: Promise<void> | undefined;
      const second = make((duro) => void (stopping ??= duro.shutdown())); // the first recovered run shuts its executor down
      await second.duro.launch();
      await stopping;
      expect(started.length, started.join(" ")).toBe(1);
      const third = make();
      await third.duro.launch();
      for (const id of ids) await third.duro.send(id, "go", "go");
      expect(await Promise.all(ids.map((id) => third.duro.getResult(id)))).toEqual(ids);
    });

    it("launching twice is harmless; a shut-down instance cannot be launched again", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await Promise.all([duro.launch(), duro.launch()]);
      await duro.launch();
      expect(await wf()).toBe(1);
      await duro.shutdown();
      await duro.shutdown();
      await expect(duro.launch()).rejects.toBeInstanceOf(DuroError);
    });

    it("a second shutdown() (or client close()) under way resolves only once the shutdown is done", async () => {
      for (const make of [() => t.duro(), () => new DuroClient({ databaseUrl: t.url, logger: quietLogger })]) {
        const instance = make();
        if (instance instanceof Duro) await instance.launch();
        else await instance.listWorkflows({});
        const stop = () => (instance instanceof Duro ? instance.shutdown() : instance.close());
        let done = false;
        const first = stop().then(() => void (done = true));
        await stop();
        expect(done, instance.constructor.name).toBe(true);
        await first;
      }
    });

    it("an instance shut down while it launched says so when used, not that it is not launched", async () => {
      for (let i = 0; i < 5; i++) {
        const duro = t.duro();
        const wf = duro.registerWorkflow("wf", async () => 1);
        const launched = duro.launch().catch(() => undefined);
        for (let ticks = 0; ticks < i * 3; ticks++) await new Promise((resolve) => setImmediate(resolve));
        await duro.shutdown();
        await launched;
        const error = await rejectionOf(duro.startWorkflow(wf));
        expect(error).toBeInstanceOf(DuroError);
        expect(error.message).toMatch(/shut down/);
      }
    });

    it("getResult() and wait() asked while shutdown() runs settle: those it cuts off, and those asked while the store closes (they hung)", async () => {
      const duro = t.duro();
      const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
      const sleeper = duro.registerWorkflow("sleeper", async () => duro.sleep(30));
      const quick = duro.registerWorkflow("quick", async () => "done");
      await duro.launch();
      const sleeping = await duro.startWorkflow(sleeper);
      const finished = await duro.startWorkflow(quick);
      await finished.getResult();
      const asked: Promise<unknown>[] = [];
      const ask = () => asked.push(sleeping.getResult().then(() => "result", (e: Error) => e));
      // wait() neither: a handle whose wait was cut off is not done (it said done: [sleeping]).
      const waited = duro.wait([sleeping, finished], { timeoutSeconds: 60 }).then((split) => split, (e: Error) => e);
      let closed = false;
      const shutdown = duro.shutdown().then(() => (closed = true));
      while (!closed) {
        ask();
        await new Promise((resolve) => setImmediate(resolve));
      }
      await shutdown;
      for (let i = 0; i < 3; i++) ask();
      const outcomes = await within(5000, Promise.all(asked), "every getResult");
      for (const outcome of outcomes) expect(outcome).toBeInstanceOf(DuroError);
      expect(asked.length).toBeGreaterThan(3);
      expect(await within(5000, waited, "the wait")).toBeInstanceOf(DuroError);
      expect(await duro.wait([sleeping], { timeoutSeconds: 5 }).then((split) => split, (e: Error) => e)).toBeInstanceOf(DuroError);
      expect(await finished.getResult()).toBe("done"); // known here: still answered after shutdown
      expect((await client.getWorkflowStatus(sleeping.workflowId))?.status).toBe("PENDING"); // runs again at the next launch
      await client.close();
    });

    it("using an instance before launch fails with a DuroError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => 1);
      await expect(duro.startWorkflow(wf)).rejects.toBeInstanceOf(DuroError);
      await expect(duro.listWorkflows()).rejects.toBeInstanceOf(DuroError);
    });
  });

  describe("instance settings", () => {
    it("executorId defaults to DURO_EXECUTOR_ID, else \"local\"", async () => {
      restores.push(withEnv("DURO_EXECUTOR_ID", undefined));
      expect(t.duro().executorId).toBe("local");
      restores.push(withEnv("DURO_EXECUTOR_ID", "from-env"));
      const duro = t.duro();
      expect(duro.executorId).toBe("from-env");
      const wf = duro.registerWorkflow("wf", async () => duro.executorId);
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toBe("from-env");
      expect((await handle.getStatus())!.executorId).toBe("from-env");
    });

    it("an explicit appVersion is reported and recorded on workflows", async () => {
      const duro = t.duro({ appVersion: "2024.06.1" });
      const wf = duro.registerWorkflow("wf", async () => duro.appVersion);
      await duro.launch();
      expect(duro.appVersion).toBe("2024.06.1");
      const handle = await duro.startWorkflow(wf);
      expect(await handle.getResult()).toBe("2024.06.1");
      expect((await handle.getStatus())!.appVersion).toBe("2024.06.1");
    });

    it("appVersion defaults to DURO_APP_VERSION (checked as the option is); an explicit one wins", async () => {
      restores.push(withEnv("DURO_APP_VERSION", "release-7"));
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async () => duro.appVersion);
      await duro.launch();
      expect(await wf()).toBe("release-7");
      expect((await duro.listWorkflows({ name: "wf" }))[0].appVersion).toBe("release-7");
      expect(t.duro({ appVersion: "explicit" }).appVersion).toBe("explicit");
      restores.push(withEnv("DURO_APP_VERSION", "v".repeat(1025))); // past the 1,024 bytes IDs and versions may take
      expect(() => t.duro()).toThrow(/DURO_APP_VERSION/);
      await new DuroClient({ databaseUrl: t.url, logger: quietLogger }).close(); // its enqueues carry no version: not its business
    });

    it("the default appVersion is a hash of the registered workflows' sources", async () => {
      restores.push(withEnv("DURO_APP_VERSION", undefined));
      const version = (register: (duro: Duro) => void) => {
        const duro = new Duro({ databaseUrl: "sqlite::memory:", logger: quietLogger });
        register(duro);
        return duro.appVersion;
      };
      const v1 = version((d) => d.registerWorkflow("checkout", async (x: number) => x + 1));
      const v1Again = version((d) => d.registerWorkflow("checkout", async (x: number) => x + 1));
      const v2 = version((d) => d.registerWorkflow("checkout", async (x: number) => x + 2));
      const v3 = version((d) => d.registerWorkflow("refund", async (x: number) => x + 1));
      expect(typeof v1).toBe("string");
      expect(v1.length).toBeGreaterThan(0);
      expect(v1Again).toBe(v1);
      expect(v2).not.toBe(v1); // the code changed
      expect(v3).not.toBe(v1); // another workflow
    });

    it("launch warns of this executor's PENDING work of another app version, which it leaves alone", async () => {
      const first = t.duro({ appVersion: "v1" });
      const started = gate();
      const wf = first.registerWorkflow("wf", async () => {
        await first.runStep(async () => started.open());
        await first.sleep(3600);
      });
      await first.launch();
      await first.startWorkflow(wf.with({ workflowId: "old-code" }));
      await started.promise;
      await first.shutdown(); // a crash: the workflow stays PENDING on executor "local"
      const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
      const second = t.duro({ appVersion: "v2", logger: { ...quietLogger, warn: (message, fields) => void warnings.push({ message, fields }) } });
      second.registerWorkflow("wf", async () => undefined);
      await second.launch();
      const warning = warnings.find((w) => w.message.includes("another app version"))!;
      expect(warning, "the warning, by the time launch() returns").toBeDefined();
      expect(warning.message).toMatch(/^1 workflow\(s\) PENDING on executor local/);
      expect(warning.fields).toEqual({ appVersions: ["v1"], workflowIds: ["old-code"] });
      expect((await second.getWorkflowStatus("old-code"))?.status).toBe("PENDING"); // left alone
    });

    it("a logger that throws (or rejects) fails nothing of duro's: a retried step succeeds, launch recovers; its warnings go to stderr", async () => {
      const stderr = vi.spyOn(console, "error").mockImplementation(() => undefined);
      try {
        const broken = {
          debug: () => { throw new Error("debug broke"); },
          info: () => { throw Object.create(null); }, // String() of it throws too
          // An async logger of another realm (a vm context, as some test runners use): its promise is no `instanceof Promise`.
          warn: runInNewContext("async () => { throw new Error('warn broke'); }") as () => Promise<void>,
          error: async () => { throw new Error("error broke"); },
        };
        const first = t.duro({ executorId: "e1", logger: broken });
        let tries = 0;
        const hold = gate();
        const build = (duro: Duro) => duro.registerWorkflow("flaky", async () => {
          // Its failed first try logs a warning ("retrying…"), which throws.
          const n = await duro.runStep(async () => {
            if (++tries === 1) throw new Error("once");
            return tries;
          }, { name: "flaky", retriesAllowed: true, intervalSeconds: 0.01 });
          await duro.runStep(() => hold.promise, { name: "hold" });
          return n;
        });
        const wf = build(first);
        await first.launch();
        await first.startWorkflow(wf.with({ workflowId: "f" }));
        await waitFor(() => tries === 2, 10_000, "the retry");
        await first.shutdown(); // a crash: "f" stays PENDING, and the next launch logs its recovery (info, which throws)
        hold.open();
        const second = t.duro({ executorId: "e1", logger: broken });
        build(second);
        await second.launch();
        expect(await (await second.retrieveWorkflow<number>("f")).getResult()).toBe(2);
        const lines = stderr.mock.calls.map(([line]) => String(line)).join("\n");
        expect(lines).toMatch(/WARN .*retrying.*\(the logger given failed: Error: warn broke\)/);
        expect(lines).toMatch(/The logger given failed \(a value that cannot be shown\); its debug and info lines are dropped/);
      } finally {
        stderr.mockRestore();
      }
    });

    it("maxRecoveryAttempts must be a non-negative integer", () => {
      expect(() => new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: -1, logger: quietLogger })).toThrow(InvalidArgumentError);
      expect(() => new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: 1.5, logger: quietLogger })).toThrow(InvalidArgumentError);
      expect(() => new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: NaN, logger: quietLogger })).toThrow(InvalidArgumentError);
      expect(() => new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: -Infinity, logger: quietLogger })).toThrow(InvalidArgumentError);
      new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: null, logger: quietLogger }); // no limit
      new Duro({ databaseUrl: "sqlite::memory:", maxRecoveryAttempts: Infinity, logger: quietLogger });
    });

    it("poolSize, connectTimeoutSeconds, executorLeaseSeconds and safetyPollSeconds are checked at construction (a pool of -1 hung every call)", () => {
      const url = freshDatabaseUrl(backend);
      const bad = [
        { poolSize: -1 }, { poolSize: 0 }, { poolSize: 1.5 }, { poolSize: "x" }, { connectTimeoutSeconds: -1 }, { connectTimeoutSeconds: "x" },
        { executorLeaseSeconds: 0 }, { executorLeaseSeconds: 1e9 }, { safetyPollSeconds: 0 }, { safetyPollSeconds: Number.NaN },
      ];
      const thrown = (make: () => unknown) => {
        try {
          make();
        } catch (error) {
          return error as Error;
        }
        throw new Error("Expected it to throw.");
      };
      for (const setting of bad) {
        const error = thrown(() => new Duro({ databaseUrl: url, logger: quietLogger, ...(setting as object) }));
        expect(error, JSON.stringify(setting)).toBeInstanceOf(InvalidArgumentError);
        expect(error.message).toContain(Object.keys(setting)[0]);
        if (!("executorLeaseSeconds" in setting || "safetyPollSeconds" in setting)) {
          expect(() => new DuroClient({ databaseUrl: url, logger: quietLogger, ...(setting as object) }), JSON.stringify(setting)).toThrow(InvalidArgumentError);
        }
      }
      expect(thrown(() => new Duro({ databaseUrl: url, poolSize: "3" as never })).message).toContain('got "3"'); // a string shown as one
      expect(() => new DuroClient({ databaseUrl: url, createSchema: "no" as never })).toThrow(InvalidArgumentError);
      expect(() => new Duro({ databaseUrl: url, createSchema: false } as never)).toThrow(InvalidArgumentError); // a client's setting only
      new Duro({ databaseUrl: url, logger: quietLogger, poolSize: 1, connectTimeoutSeconds: 0, executorLeaseSeconds: 0.5, safetyPollSeconds: 0.1 });
    });

    it("a DuroClient closed while its first call connects fails that call as closed, not as never launched", async () => {
      const client = new DuroClient({ databaseUrl: freshDatabaseUrl(backend), logger: quietLogger });
      const listing = client.listWorkflows();
      await client.close();
      const error = await listing.then(() => undefined, (e) => e);
      expect(error).toBeInstanceOf(DuroError);
      expect(error.message).toBe("This DuroClient is closed; create a new one.");
    });

    it("executorId and appVersion must be non-empty strings the database keeps exactly", () => {
      for (const bad of [{ executorId: "" }, { executorId: " " }, { appVersion: "" }, { appVersion: "a\u0000b" }, { executorId: "\ud800" }]) {
        expect(() => new Duro({ databaseUrl: "sqlite::memory:", logger: quietLogger, ...bad }), JSON.stringify(bad)).toThrow(InvalidArgumentError);
      }
    });
  });
});

describe("sqlite defaults", () => {
  const t = useDuro("sqlite");

  it("sqlite::memory: works for a whole workflow", async () => {
    const duro = t.duro({ databaseUrl: "sqlite::memory:" });
    const step = duro.registerStep("s", async () => 2);
    const wf = duro.registerWorkflow("wf", async () => (await step()) * 21);
    await duro.launch();
    expect(await wf()).toBe(42);
    expect(await duro.listWorkflows()).toHaveLength(1);
  });

  it("without any URL, the default ./.duro/duro.sqlite is created with its directory", async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "duro-cwd-")));
    const cwd = process.cwd();
    const restore = withEnv("DURO_DATABASE_URL", undefined);
    try {
      process.chdir(dir);
      const duro = t.duro({ databaseUrl: undefined });
      const wf = duro.registerWorkflow("wf", async () => "default db");
      await duro.launch();
      process.chdir(cwd); // the database stays open where it was created
      expect(await wf()).toBe("default db");
      expect(existsSync(join(dir, ".duro", "duro.sqlite"))).toBe(true);
      await duro.shutdown();
    } finally {
      process.chdir(cwd);
      restore();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the default logger", () => {
  it("takes DURO_LOG_LEVEL in any case; an unknown level logs warnings and errors, and says so once", () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: string) => void lines.push(line));
    try {
      const logAll = (logger: ReturnType<typeof consoleLogger>) => {
        for (const level of ["debug", "info", "warn", "error"] as const) logger[level](level);
      };
      logAll(consoleLogger(" INFO "));
      expect(lines).toEqual(["[duro] INFO info", "[duro] WARN warn", "[duro] ERROR error"]);
      lines.length = 0;
      logAll(consoleLogger("loud"));
      consoleLogger("loud");
      expect(lines).toEqual([
        '[duro] WARN DURO_LOG_LEVEL="loud" is not one of debug, info, warn, error; logging warnings and errors.',
        "[duro] WARN warn",
        "[duro] ERROR error",
      ]);
    } finally {
      spy.mockRestore();
    }
  });
});
