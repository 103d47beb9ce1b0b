/**
 * The `duro` command line, run for real: `node dist/cli/main.js …` (the package's bin) as a
 * child process against a real database that a Duro instance in this process serves. Needs
 * `npm run build` first. Exit codes: 0 done, 1 failed, 2 bad usage, 3 workflow not found.
 */
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { DatabaseError, DuroClient, type Duro, type ListWorkflowsFilter } from "../../src/index.js";
import { loadMigrations } from "../../src/storage/migrations.js";
import { backends, freshDatabaseUrl, POSTGRES_URL, rawQuery, statusOf, useDuro, waitFor, waitForStatus, type Backend } from "../helpers.js";
import { blockedQueue, CLI, cli, snapshot } from "./support.js";

/** What `--json` prints for a value: JSON, with errors as { name, message }. */
const asJson = (value: unknown) =>
  JSON.parse(JSON.stringify(value, (_k, v) => (v instanceof Error ? { name: v.name, message: v.message } : v)));
const iso = (ms: number) => new Date(ms).toISOString();
const tick = async () => {
  const now = Date.now();
  await waitFor(() => Date.now() > now + 1);
};

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this suite.`);
});

/** Makes `url` a database as an older duro left it: every migration but the last. Returns the last one's version. */
async function olderSchema(backend: Backend, url: string): Promise<number> {
  const all = loadMigrations(new URL(`../../src/storage/${backend}/migrations/`, import.meta.url));
  const older = all.slice(0, -1);
  const tracking = "CREATE TABLE duro_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
  if (backend === "sqlite") {
    const db = new Database(url.slice("sqlite:".length));
    db.pragma("journal_mode = WAL");
    db.exec(tracking);
    for (const m of older) db.exec(m.sql), db.prepare("INSERT INTO duro_migrations VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
    db.close();
  } else {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get("schema")!;
    parsed.searchParams.delete("schema");
    const client = new pg.Client({ connectionString: parsed.toString() });
    await client.connect();
    await client.query(`CREATE SCHEMA "${schema}"; SET search_path TO "${schema}"; ${tracking}`);
    for (const m of older) await client.query(m.sql), await client.query("INSERT INTO duro_migrations VALUES ($1, $2, $3)", [m.version, m.name, Date.now()]);
    await client.end();
  }
  return all[all.length - 1].version;
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  /**
   * ok-1, ok-2 (user alice, app version v2), bad-1 (ERROR), wait-1 (PENDING in recv), par with
   * child par-1, ok-1-f (a fork of ok-1), and on queue "q" (held by q-blocker) queued-1.
   */
  async function fixture() {
    const duro = t.duro({ executorId: "exec-A", appVersion: "v1" });
    const q = blockedQueue(duro, "q");
    const runs = { s: 0 };
    const s = duro.registerStep("s", async (x: number) => (runs.s++, x + 1));
    const ok = duro.registerWorkflow("ok", async (x: number) => s(await s(x)));
    const bad = duro.registerWorkflow("bad", async () => {
      throw new TypeError("bad input");
    });
    const waits = duro.registerWorkflow("waits", async () => duro.recv<string>("go", 60));
    const child = duro.registerWorkflow("child", async () => "c");
    const parent = duro.registerWorkflow("parent", async () => child());
    const mid = duro.registerWorkflow("mid", async () => (await duro.startWorkflow(waits.with({ workflowId: "nest-grandchild" }))).getResult());
    const nest = duro.registerWorkflow("nest", async () => (await duro.startWorkflow(mid.with({ workflowId: "nest-child" }))).getResult());
    await duro.launch();
    await q.block();
    const times: Record<string, number> = {};
    const run = async (id: string, p: Promise<{ getResult(): Promise<unknown> }>, settle = true) => {
      const h = await p;
      if (settle) await h.getResult().catch(() => undefined);
      times[id] = (await duro.getWorkflowStatus(id))!.createdAt;
      await tick();
    };
    await run("ok-1", duro.startWorkflow(ok.with({ workflowId: "ok-1" }), 1));
    await run("ok-2", duro.startWorkflow(ok.with({ workflowId: "ok-2", authenticatedUser: "alice", appVersion: "v2" }), 2));
    await run("bad-1", duro.startWorkflow(bad.with({ workflowId: "bad-1" })));
    await run("wait-1", duro.startWorkflow(waits.with({ workflowId: "wait-1" })), false);
    await run("queued-1", duro.startWorkflow(ok.with({ workflowId: "queued-1", queueName: "q" }), 5), false);
    await run("par", duro.startWorkflow(parent.with({ workflowId: "par" })));
    await run("ok-1-f", duro.forkWorkflow("ok-1", 2, { newWorkflowId: "ok-1-f" }));
    await waitFor(async () => (await duro.listWorkflowSteps("wait-1")).length > 0, 10_000, "wait-1 to wait");
    return { duro, q, runs, times, nest };
  }

  /** The library's answer to what `duro list` asks, as `--json` prints it. */
  const listed = async (duro: Duro, filter: ListWorkflowsFilter) =>
    asJson(await duro.listWorkflows({ sortDesc: true, limit: 50, loadInput: false, loadOutput: false, ...filter }));

  it("list (every filter as flags), get, steps and queue list print what the library returns", async () => {
    const { duro, times } = await fixture();
    const db = ["--db", t.url];
    const cases: [string[], ListWorkflowsFilter, string[] | null][] = [
      [[], {}, null],
      [["--status", "SUCCESS", "--name", "ok"], { status: ["SUCCESS"], name: ["ok"] }, ["ok-1-f", "ok-2", "ok-1"]],
      [["--status", "ERROR", "--status", "PENDING"], { status: ["ERROR", "PENDING"] }, ["wait-1", "bad-1", "q-blocker"]],
      [["--queue", "q"], { queueName: ["q"] }, ["queued-1", "q-blocker"]],
      [["--user", "alice"], { user: ["alice"] }, ["ok-2"]],
      [["--app-version", "v2"], { appVersion: ["v2"] }, ["ok-2"]],
      [["--executor", "exec-A", "--name", "bad"], { executorId: ["exec-A"], name: ["bad"] }, ["bad-1"]],
      [["--prefix", "ok-"], { workflowIdPrefix: ["ok-"] }, ["ok-1-f", "ok-2", "ok-1"]],
      [["--prefix", "par", "--prefix", "bad"], { workflowIdPrefix: ["par", "bad"] }, ["par-1", "par", "bad-1"]],
      [["--parent", "par"], { parentWorkflowId: ["par"] }, ["par-1"]],
      [["--forked-from", "ok-1"], { forkedFrom: ["ok-1"] }, ["ok-1-f"]],
      [["--since", iso(times["ok-2"]), "--until", iso(times["wait-1"])], { startTime: iso(times["ok-2"]), endTime: iso(times["wait-1"]) }, ["wait-1", "bad-1", "ok-2"]],
      [["--limit", "2", "--offset", "1", "--prefix", "ok-"], { limit: 2, offset: 1, workflowIdPrefix: ["ok-"] }, ["ok-2", "ok-1"]],
      [["--asc", "--prefix", "ok-"], { sortDesc: false, workflowIdPrefix: ["ok-"] }, ["ok-1", "ok-2", "ok-1-f"]],
    ];
    const results = await Promise.all(cases.map(([flags]) => cli(["list", ...db, "--json", ...flags])));
    for (const [i, [flags, filter, ids]] of cases.entries()) {
      const { code, stdout, stderr } = results[i];
      expect(code, `${flags.join(" ")}: ${stderr}`).toBe(0);
      const printed = JSON.parse(stdout);
      expect(printed, flags.join(" ")).toEqual(await listed(duro, filter));
      if (ids) expect(printed.map((s: { workflowId: string }) => s.workflowId), flags.join(" ")).toEqual(ids);
      for (const row of printed) expect(row).not.toHaveProperty("input");
    }
    expect(JSON.parse(results[0].stdout)).toHaveLength(9);

    const [table, viaEnv, get, getBad, steps, stepsPaged, queued, queuedQ, queuedEnqueued] = await Promise.all([
      cli(["list", ...db]),
      cli(["list", "--json"], { DURO_DATABASE_URL: t.url }),
      cli(["get", "ok-1", ...db, "--json"]),
      cli(["get", "bad-1", ...db, "--json"]),
      cli(["steps", "ok-1-f", ...db, "--json"]),
      cli(["steps", "ok-1", "--limit", "1", "--offset", "1", ...db, "--json"]),
      cli(["queue", "list", ...db, "--json"]),
      cli(["queue", "list", "--queue", "q", ...db, "--json"]),
      cli(["queue", "list", "--status", "ENQUEUED", ...db, "--json"]),
    ]);
    // The readable table: a header, then one line per workflow.
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^WORKFLOW ID\s+NAME\s+STATUS\s+QUEUE\s+EXECUTOR\s+CREATED\s+ATTEMPTS$/);
    expect(lines).toHaveLength(10);
    expect(lines[1]).toMatch(/^ok-1-f\s+ok\s+SUCCESS\s+exec-A/);
    expect(lines.find((l) => l.startsWith("queued-1"))).toMatch(/^queued-1\s+ok\s+ENQUEUED\s+q\s/);

    expect(viaEnv.code).toBe(0);
    expect(JSON.parse(viaEnv.stdout)).toEqual(JSON.parse(results[0].stdout));

    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual(asJson(await duro.getWorkflowStatus("ok-1")));
    expect(JSON.parse(get.stdout)).toMatchObject({ workflowId: "ok-1", status: "SUCCESS", input: [1], output: 3, wasForkedFrom: true });
    expect(JSON.parse(getBad.stdout)).toMatchObject({ status: "ERROR", error: { name: "TypeError", message: "bad input" } });

    expect(steps.code).toBe(0);
    expect(JSON.parse(steps.stdout)).toEqual(asJson(await duro.listWorkflowSteps("ok-1-f")));
    expect(JSON.parse(steps.stdout).map((st: { functionName: string; output: number }) => [st.functionName, st.output])).toEqual([["s", 2], ["s", 3]]);
    expect(JSON.parse(stepsPaged.stdout)).toEqual(asJson(await duro.listWorkflowSteps("ok-1", { limit: 1, offset: 1 })));

    const queuedIds = (r: { stdout: string }) => JSON.parse(r.stdout).map((s: { workflowId: string }) => s.workflowId);
    expect(queued.code).toBe(0);
    expect(JSON.parse(queued.stdout)).toEqual(asJson(await duro.listQueuedWorkflows({ sortDesc: true, limit: 50, loadInput: false, loadOutput: false })));
    expect(queuedIds(queued)).toEqual(["queued-1", "q-blocker"]);
    expect(queuedIds(queuedQ)).toEqual(["queued-1", "q-blocker"]);
    expect(queuedIds(queuedEnqueued)).toEqual(["queued-1"]);

    // Readable forms of get and steps.
    const [getText, stepsText] = await Promise.all([cli(["get", "bad-1", ...db]), cli(["steps", "ok-1", ...db])]);
    expect(getText.stdout).toMatch(/^workflowId\s+bad-1$/m);
    expect(getText.stdout).toMatch(/^status\s+ERROR$/m);
    expect(getText.stdout).toMatch(/^error\s+TypeError: bad input$/m);
    // An error of a class the CLI cannot know is shown by its name, without the library's advice to register it.
    await duro.startWorkflow(duro.registerWorkflow("odd", async () => {
      throw Object.assign(new (class OddError extends Error {})("odd one"), { name: "OddError" });
    }).with({ workflowId: "odd-1" })).then((h) => h.getResult()).catch(() => undefined);
    const odd = await cli(["get", "odd-1", ...db]);
    expect(odd.stdout).toMatch(/^error\s+OddError: odd one$/m);
    expect(odd.stderr).toBe("");
    expect(stepsText.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+OUTPUT \/ ERROR\s+CHILD\s+MS$/);
    expect(stepsText.stdout).toMatch(/^1\s+s\s+2\s/m);
    // A number is shown as it is, even one the size of a timestamp; only the time fields are dates.
    await duro.startWorkflow(duro.registerWorkflow("big", async (n: number) => n).with({ workflowId: "big" }), 1234567890123).then((h) => h.getResult());
    const big = await cli(["get", "big", ...db]);
    expect(big.stdout).toMatch(/^output\s+1234567890123$/m);
    expect(big.stdout).toMatch(/^createdAt\s+\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    // A wait without end, and a deadline past Date's range, are shown too (not a crash); duro.now is a time.
    const forever = duro.registerWorkflow("forever", async () => (await duro.now(), duro.recv("never", Infinity)));
    await duro.startWorkflow(forever.with({ workflowId: "forever", deadlineEpochMs: 9e15 }));
    await waitFor(async () => (await duro.listWorkflowSteps("forever")).length === 2, 10_000, "forever to wait");
    const [foreverSteps, foreverGet] = await Promise.all([cli(["steps", "forever", ...db]), cli(["get", "forever", ...db])]);
    expect(foreverSteps.code, foreverSteps.stderr).toBe(0);
    expect(foreverSteps.stdout).toMatch(/^1\s+duro\.now\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s/m);
    expect(foreverSteps.stdout).toMatch(/^3\s+duro\.sleep\s+never\s/m); // recv is 2: its timeout is 3
    // A sleep under way has no duration yet (its record holds its wake-up time).
    await duro.startWorkflow(duro.registerWorkflow("napper", async () => duro.sleep(3600)).with({ workflowId: "napper" }));
    await waitFor(async () => (await duro.listWorkflowSteps("napper")).length === 1, 10_000, "napper to sleep");
    expect((await cli(["steps", "napper", ...db])).stdout).toMatch(/^1\s+duro\.sleep\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s*$/m);
    expect(foreverGet.code, foreverGet.stderr).toBe(0);
    expect(foreverGet.stdout).toMatch(/^deadlineEpochMs\s+9000000000000000$/m);

    // Stored text reaches the terminal with its control characters escaped: an ID cannot forge a
    // line of the table or send an escape sequence.
    const evil = "evil\nok-9  ok  SUCCESS\u001b[2J\u202e";
    await duro.forkWorkflow("ok-1", 9, { newWorkflowId: evil }).then((h) => h.getResult());
    const shown = await Promise.all([cli(["list", "--prefix", "evil", ...db]), cli(["get", evil, ...db]), cli(["cancel", evil, ...db])]);
    for (const r of shown) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
      expect(r.stdout).toContain("evil\\u000aok-9  ok  SUCCESS\\u001b[2J\\u202e");
    }
    expect(shown[0].stdout.trim().split("\n")).toHaveLength(2);
  });

  it("cancel --children lists the descendants it cancelled among the cancelled, not those that had finished", async () => {
    const { duro, nest } = await fixture();
    await duro.startWorkflow(nest.with({ workflowId: "nest" }));
    await waitForStatus(duro, "nest-grandchild", "PENDING");
    // nest-child is named and a descendant too: listed once.
    const cancel = await cli(["cancel", "nest", "nest-child", "par", "--children", "--db", t.url, "--json"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    // par finished, and so did its child par-1: neither is cancelled.
    expect(JSON.parse(cancel.stdout)).toEqual({ cancelled: ["nest", "nest-child", "nest-grandchild"], leftAlone: [{ workflowId: "par", status: "SUCCESS" }] });
    for (const id of ["nest", "nest-child", "nest-grandchild"]) expect(await statusOf(duro, id)).toBe("CANCELLED");
    expect(await statusOf(duro, "par-1")).toBe("SUCCESS");
  });

  it("cancel, resume and fork change the workflows; not-found and bad usage change nothing", async () => {
    const { duro, runs } = await fixture();
    const db = ["--db", t.url];

    const cancel = await cli(["cancel", "wait-1", "queued-1", "no-such-id", ...db, "--json"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(JSON.parse(cancel.stdout)).toEqual({ cancelled: ["wait-1", "queued-1"], leftAlone: [{ workflowId: "no-such-id", status: null }] });
    expect(await statusOf(duro, "wait-1")).toBe("CANCELLED");
    expect((await duro.getWorkflowStatus("queued-1"))!).toMatchObject({ status: "CANCELLED", queueName: null });
    await waitFor(() => !duro.engine.running.has("wait-1"), 10_000, "the executor to stop wait-1");
    const cancelText = await cli(["cancel", "ok-1", "wait-1", "nobody", ...db]); // finished, cancelled already or unknown: left alone
    expect(cancelText.code).toBe(0);
    expect(cancelText.stdout.trim().split("\n")).toEqual(["ok-1 is SUCCESS: left as it is.", "wait-1 is CANCELLED: left as it is.", "nobody: no such workflow."]);
    expect(await statusOf(duro, "ok-1")).toBe("SUCCESS");

    // Refused calls first, on a snapshot.
    const before = await snapshot(duro);
    const refused = await Promise.all([
      cli(["resume", "queued-1", "no-such-id", ...db]),
      cli(["resume", "no-such-id", ...db, "--json"]),
      cli(["fork", "no-such-id", "--step", "1", ...db]),
      cli(["fork", "ok-1", ...db]),
      cli(["fork", "ok-1", "--step", "1.5", ...db]),
      cli(["fork", "ok-1", "--step", "2x", ...db]),
      cli(["fork", "ok-1", "--step", "two", ...db]),
      cli(["steps", "no-such-id", ...db]),
      cli(["get", "no-such-id", ...db, "--json"]),
      cli(["cancel", ...db]),
      cli(["resume", ...db]),
    ]);
    expect(refused.map((r) => r.code)).toEqual([3, 3, 3, 2, 2, 2, 2, 3, 3, 2, 2]);
    for (const r of refused) {
      expect(r.stdout).toBe("");
      expect(r.stderr).not.toBe("");
    }
    expect(refused[0].stderr).toContain("no-such-id");
    expect(await snapshot(duro)).toEqual(before);

    // resume: through the internal queue, which the executor serves.
    const resume = await cli(["resume", "wait-1", ...db, "--json"]);
    expect(resume.code, resume.stderr).toBe(0);
    expect(JSON.parse(resume.stdout)).toEqual({ resumed: ["wait-1"], leftAlone: [] });
    await waitForStatus(duro, "wait-1", "PENDING");
    await duro.send("wait-1", "hello", "go");
    expect(await duro.getResult("wait-1")).toBe("hello");

    const onQueue = await cli(["resume", "queued-1", "--queue", "q", ...db]);
    expect(onQueue.code, onQueue.stderr).toBe(0);
    expect(onQueue.stdout.trim()).toBe("Resumed queued-1.");
    const finished = await cli(["resume", "ok-1", ...db]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout.trim()).toBe("ok-1 is SUCCESS: left as it is.");
    expect((await duro.getWorkflowStatus("queued-1"))!).toMatchObject({ status: "ENQUEUED", queueName: "q" });

    // fork: the executor runs it from --step on.
    const sBefore = runs.s;
    const fork = await cli(["fork", "ok-1", "--step", "2", "--new-id", "ok-1-g", ...db, "--json"]);
    expect(fork.code, fork.stderr).toBe(0);
    expect(JSON.parse(fork.stdout)).toEqual({ workflowId: "ok-1-g", forkedFrom: "ok-1" });
    expect(await duro.getResult("ok-1-g")).toBe(3);
    expect(runs.s).toBe(sBefore + 1); // only the second step ran again
    expect((await duro.getWorkflowStatus("ok-1-g"))!).toMatchObject({ forkedFrom: "ok-1", status: "SUCCESS" });

    const queuedFork = await cli(["fork", "ok-1", "--step", "1", "--new-id", "ok-1-h", "--queue", "q", "--app-version", "v1", "--timeout", "30", ...db]);
    expect(queuedFork.code, queuedFork.stderr).toBe(0);
    expect(queuedFork.stdout.trim()).toBe("Forked ok-1 as ok-1-h.");
    expect((await duro.getWorkflowStatus("ok-1-h"))!).toMatchObject({ status: "ENQUEUED", queueName: "q", appVersion: "v1", timeoutMs: 30_000 });
  });

  it("a schema of an older duro is an error (exit 1) that changes nothing; migrate upgrades it", async () => {
    const url = freshDatabaseUrl(backend);
    const latest = await olderSchema(backend, url);
    const version = async () => Number((await rawQuery(url, "SELECT MAX(version) AS v FROM duro_migrations"))[0].v);
    for (const args of [["list"], ["get", "x"], ["queue", "list"]]) {
      const r = await cli([...args, "--db", url]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toContain(`has duro schema version ${latest - 1}, older than this duro's ${latest}, and is left as it is`);
    }
    const reader = new DuroClient({ databaseUrl: url, createSchema: false });
    await expect(reader.listWorkflows({})).rejects.toThrow(DatabaseError);
    await reader.close();
    expect(await version()).toBe(latest - 1);
    const migrated = await cli(["migrate", "--db", url]);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(new RegExp(`^Upgraded duro's schema at .+ from version ${latest - 1} to ${latest}\\.\n$`));
    expect(await version()).toBe(latest);
    expect((await cli(["list", "--db", url, "--json"])).stdout.trim()).toBe("[]");
  });

  it("migrate creates the schema of a new database, and is idempotent", async () => {
    const url = freshDatabaseUrl(backend);
    const first = await cli(["migrate", "--db", url]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^Created duro's schema \(version \d+\) at .+\.\n$/);
    const tables =
      backend === "sqlite"
        ? await rawQuery(url, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'workflow_status'")
        : await rawQuery(url, "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'workflow_status'", [
            new URL(url).searchParams.get("schema"),
          ]);
    expect(tables).toHaveLength(1);
    const again = await cli(["migrate", "--json"], { DURO_DATABASE_URL: url });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ migrated: null });
    expect((await cli(["migrate", "--db", url])).stdout).toBe("duro's schema is at the current version already: nothing to do.\n");
    const list = await cli(["list", "--db", url, "--json"]);
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  it("--help for each command; exit codes for bad usage (2) and other failures (1)", async () => {
    const commands = [["list"], ["get"], ["steps"], ["cancel"], ["resume"], ["fork"], ["queue", "list"], ["migrate"]];
    const helps = await Promise.all([
      ...commands.map((c) => cli([...c, "--help"])), cli(["get", "-h"]), cli(["--help"]), cli(["help"]), cli(["queue", "--help"]), cli(["queue"]), cli([]),
    ]);
    for (const [i, c] of commands.entries()) {
      expect(helps[i].code, c.join(" ")).toBe(0);
      expect(helps[i].stdout, c.join(" ")).toContain(`Usage: duro ${c.join(" ")}`);
    }
    expect(helps[0].stdout).toContain("--status");
    expect(helps[5].stdout).toContain("--step N");
    expect(helps[8].code).toBe(0);
    for (const top of [helps[9], helps[10]]) {
      expect(top.code).toBe(0);
      for (const c of commands) expect(top.stdout).toContain(`duro ${c.join(" ")}`);
      expect(top.stdout).toMatch(/Exit codes/);
    }
    const [queueHelp, queueAlone, alone] = [helps[11], helps[12], helps[13]];
    expect(queueHelp.code).toBe(0);
    expect(queueHelp.stdout).toContain("duro queue list");
    expect(queueHelp.stdout).not.toContain("duro get");
    // Help for a bad call goes to stderr, with exit code 2: stdout (maybe piped on) gets nothing.
    expect(queueAlone.code).toBe(2);
    expect(queueAlone.stdout).toBe("");
    expect(queueAlone.stderr).toContain("duro queue list");
    expect(queueAlone.stderr).not.toContain("duro get");
    expect(alone.code).toBe(2);
    expect(alone.stdout).toBe("");
    expect(alone.stderr).toContain("duro get");

    const noSuchDatabase = new URL(POSTGRES_URL);
    noSuchDatabase.pathname = "/duro_no_such_database";
    const badDb = backend === "sqlite" ? "sqlite:/dev/null/not-a-dir/duro.sqlite" : noSuchDatabase.toString();
    const db = ["--db", freshDatabaseUrl(backend)];
    expect((await cli(["migrate", ...db])).code).toBe(0);
    const [none, unknown, unknownQueueCmd, unknownFlag, missingValue, badLimit, negativeLimit, badSince, badStatus, twoIds, badScheme, badTimeout, unreachable, noServer,
      listArg, queueListArg, migrateArg, queueFlagFirst, forkTimeout, sinceYear] =
      await Promise.all([
        cli([]),
        cli(["frobnicate"]),
        cli(["queue", "purge"]),
        cli(["list", "--bogus", ...db]),
        cli(["list", ...db, "--status"]),
        cli(["list", "--limit", "ten", ...db]),
        cli(["list", "--limit=-1", ...db]),
        cli(["list", "--since", "yesterday", ...db]),
        cli(["list", "--status", "DONE", ...db]),
        cli(["get", "a", "b", ...db]),
        cli(["list", "--db", "mysql://localhost/x"]),
        cli(["list", "--connect-timeout", "0", ...db]),
        cli(["list", "--db", badDb]),
        cli(["list", "--db", "postgres://postgres@127.0.0.1:1/postgres", "--connect-timeout", "0.5"]), // nothing listens on port 1
        cli(["list", "PENDING", ...db]), // a filter needs its flag: not silently ignored
        cli(["queue", "list", "orders", ...db]),
        cli(["migrate", "extra", ...db]),
        cli(["queue", ...db, "list"]),
        cli(["fork", "some-id", "--step", "1", "--timeout", "abc", ...db]),
        cli(["list", "--since", "2026", ...db]),
      ]);
    expect(none.code).toBe(2);
    expect(none.stdout + none.stderr).toContain("Usage:");
    const moreBadUsage = { listArg, queueListArg, migrateArg, queueFlagFirst, forkTimeout, sinceYear };
    for (const [name, r] of Object.entries({ unknown, unknownQueueCmd, unknownFlag, missingValue, badLimit, negativeLimit, badSince, badStatus, twoIds, badScheme, badTimeout, ...moreBadUsage })) {
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr, name).not.toBe("");
    }
    expect(unknown.stderr).toContain('Unknown command "frobnicate"');
    expect(badSince.stderr).toContain('--since must be an RFC 3339 time'); // the flag's name, not the library option's
    expect(sinceYear.stderr).toContain("--since must be an RFC 3339 time");
    expect(listArg.stderr).toContain('takes no arguments but options, got "PENDING"');
    expect(queueFlagFirst.stderr).toContain('"duro queue" needs a subcommand first');
    expect(forkTimeout.stderr).toContain('--timeout must be a positive number of seconds, got "abc"');
    expect(unreachable.code, unreachable.stderr).toBe(1);
    expect(unreachable.stderr).toMatch(/duro list: /);
    expect(unreachable.stderr).toMatch(/--db/); // the CLI's flag, not the library's option
    expect(unreachable.stderr).not.toContain("databaseUrl");
    // A server that does not answer is given up on after --connect-timeout, and the message names that flag.
    expect(noServer.code, noServer.stderr).toBe(1);
    expect(noServer.stderr).toMatch(/within 0\.5s: .*raise --connect-timeout/);
  });
});

describe("postgres", () => {
  it("a schema without duro's tables is an error (exit 1) that creates nothing; migrate makes them", async () => {
    const url = freshDatabaseUrl("postgres");
    const schema = new URL(url).searchParams.get("schema");
    const schemaExists = async () => (await rawQuery(POSTGRES_URL, "SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema])).length > 0;
    for (const args of [["list"], ["get", "x"], ["queue", "list"]]) {
      const r = await cli([...args, "--db", url]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toContain(`There are no duro tables in schema ${schema}`);
    }
    expect(await schemaExists()).toBe(false);
    expect((await cli(["migrate", "--db", url])).code).toBe(0);
    expect((await cli(["list", "--db", url, "--json"])).stdout.trim()).toBe("[]");
  });
});

// SQLite only by nature: PostgreSQL databases are not created by connecting.
describe("sqlite", () => {
  it("a mistyped SQLite path is an error (exit 1), not a new empty database; migrate makes one", async () => {
    const url = freshDatabaseUrl("sqlite");
    const path = url.slice("sqlite:".length);
    for (const args of [["list"], ["get", "x"], ["steps", "x"], ["cancel", "x"], ["resume", "x"], ["fork", "x", "--step", "1"], ["queue", "list"]]) {
      const r = await cli([...args, "--db", url]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr, args.join(" ")).toContain(`There is no SQLite database at "${path}"`);
    }
    expect((await cli(["list", "--limit", "ten", "--db", url])).code).toBe(2); // bad usage is still told first
    expect(existsSync(path)).toBe(false);
    expect((await cli(["migrate", "--db", url])).code).toBe(0);
    expect(existsSync(path)).toBe(true);
    expect((await cli(["list", "--db", url, "--json"])).stdout.trim()).toBe("[]");
  });

  it("a SQLite file without duro's tables is an error (exit 1) that changes nothing in it", async () => {
    const url = freshDatabaseUrl("sqlite");
    await rawQuery(url, "CREATE TABLE other (x INTEGER)");
    const r = await cli(["list", "--db", url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("There are no duro tables in the database at");
    expect((await rawQuery(url, "SELECT name FROM sqlite_master WHERE type = 'table'")).map((t) => t.name)).toEqual(["other"]);
    expect((await rawQuery(url, "PRAGMA journal_mode"))[0].journal_mode).toBe("delete"); // not even switched to WAL
  });

  it("stops quietly, exit 0, when its reader goes away (duro list | head -1)", async () => {
    const url = freshDatabaseUrl("sqlite");
    expect((await cli(["migrate", "--db", url])).code).toBe(0);
    const client = new DuroClient({ databaseUrl: url });
    await client.enqueueMany({ workflowName: "w", queueName: "q" }, Array.from({ length: 1500 }, () => [])); // more than a pipe holds
    await client.close();
    const child = spawn(process.execPath, [CLI, "list", "--limit", "1500", "--db", url], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });
});
