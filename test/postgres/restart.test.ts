/**
 * The database misbehaves under a running duro: restarted, crashed, its connections killed,
 * its pool starved, down at launch. Everything runs on a PRIVATE cluster (cluster.ts), each test
 * in a fresh schema, so the shared server is never disturbed.
 */
import { randomUUID } from "node:crypto";
import { createConnection, createServer, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DatabaseError, Duro, DuroError, WorkflowQueue, type DuroConfig } from "../../src/index.js";
import { retry } from "../../src/storage/postgres/connection.js";
import { freshDatabaseUrl, range, sleep, waitFor } from "../helpers.js";
import { Cluster, freePort } from "./cluster.js";
import { Proc } from "./procs.js";

let cluster: Cluster;
const instances: Duro[] = [];

beforeAll(async () => {
  cluster = await Cluster.create();
}, 60_000);

afterEach(async () => {
  // A test that failed while the database was down must not leave it down for the next one,
  // and shutting down needs the database (pending writes are flushed first).
  if (!cluster.isRunning) await cluster.start();
  await Promise.all(instances.splice(0).map((d) => d.shutdown()));
});

afterAll(async () => {
  await cluster?.destroy();
});

const freshUrl = () => cluster.url(`t_${randomUUID().replaceAll("-", "").slice(0, 12)}`);
const schemaOf = (url: string) => new URL(url).searchParams.get("schema")!;

/** Warnings and errors duro logged, kept for the test to inspect. */
function capture() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, logger: { debug() {}, info() {}, warn: at("warn"), error: at("error") } };
}

/**
 * An application: workflow "job"(input, steps) runs `steps` steps ("work", random 20–80 ms) and
 * returns their outputs. `runs` counts every step body execution by "wf/step".
 */
function app(url: string, config: DuroConfig = {}) {
  const log = capture();
  const duro = new Duro({ databaseUrl: url, executorId: "restart-app", appVersion: "restart-v1", logger: log.logger, ...config });
  instances.push(duro);
  const runs = new Map<string, number>();
  let stepsDone = 0;
  const work = duro.registerStep("work", async (i: number, input: string) => {
    const key = `${duro.workflowId}/${i}`;
    runs.set(key, (runs.get(key) ?? 0) + 1);
    await sleep(20 + Math.random() * 60);
    stepsDone++;
    return `${input}:s${i}`;
  });
  const job = duro.registerWorkflow("job", async (input: string, steps: number) => {
    const out: string[] = [];
    for (let i = 1; i <= steps; i++) out.push(await work(i, input));
    return out;
  });
  return { duro, job, runs, log, stepsDone: () => stepsDone };
}

const expected = (input: string, steps: number) => range(steps).map((i) => `${input}:s${i}`);

/** Every workflow SUCCESS with the right output; its steps recorded once each (IDs dense from 1). */
async function checkRecorded(duro: Duro, ids: string[], steps: number) {
  const statuses = await duro.listWorkflows({ workflowIds: ids, loadInput: false });
  expect(statuses).toHaveLength(ids.length);
  const recorded = await Promise.all(statuses.map((s) => duro.listWorkflowSteps(s.workflowId)));
  statuses.forEach((s, i) => {
    expect(s.status, `status of ${s.workflowId}`).toBe("SUCCESS");
    expect(recorded[i].map((r) => r.functionId), `steps of ${s.workflowId}`).toEqual(range(steps));
    expect(recorded[i].map((r) => r.output)).toEqual(s.output);
  });
}

describe("PostgreSQL restarts and crashes mid-run (private cluster)", () => {
  const modes = [
    ["restart (pg_ctl stop -m fast, then start)", "fast"],
    ["pg_ctl stop -m immediate, then start", "immediate"],
    ["kill -9 of the postmaster and its backends, then start", "crash"],
  ] as const;

  it.each(modes)("%s in the middle of 300 workflows: all finish right, no step recorded or run twice", async (_, mode) => {
    const url = freshUrl();
    const { duro, job, runs, stepsDone } = app(url);
    await duro.launch();
    const STEPS = 6;
    const first = range(300).map((i) => `w${i}`);
    const handles = await Promise.all(first.map((id) => duro.startWorkflow(job.with({ workflowId: id }), `in-${id}`, STEPS)));
    const results = handles.map((h) => h.getResult());

    await waitFor(() => stepsDone() >= 300, 20_000, "a sixth of the steps done");
    const doneAtStop = stepsDone();
    if (mode === "crash") await cluster.crash();
    else await cluster.stop(mode);
    // The database is down: more workflows are started, and wait for it.
    const late = range(50).map((i) => `late${i}`);
    const lateHandles = Promise.all(late.map((id) => duro.startWorkflow(job.with({ workflowId: id }), `in-${id}`, STEPS)));
    await sleep(300);
    await cluster.start();

    const outputs = await Promise.all([...results, ...(await lateHandles).map((h) => h.getResult())]);
    const all = [...first, ...late];
    outputs.forEach((output, i) => expect(output).toEqual(expected(`in-${all[i]}`, STEPS)));
    expect(doneAtStop, "the outage hit the run in the middle").toBeLessThan(all.length * STEPS / 2);
    // In one live process no step body ever needs to run again: interrupted writes are retried.
    expect(runs.size).toBe(all.length * STEPS);
    for (const [key, n] of runs) expect(n, `step ${key} ran ${n} times`).toBe(1);
    await checkRecorded(duro, all, STEPS);
  });

  it("two executors with a 1 s lease across a 1.5 s outage: each workflow still completes once, with each step recorded once", async () => {
    // While the database is down nobody can heartbeat; when it is back, neither executor may
    // treat the other's stale heartbeat as death and both run the same work at the same time
    // — or, if one does, the outcome is still recorded once.
    const url = freshUrl();
    const x = app(url, { executorId: "exec-x", executorLeaseSeconds: 1 });
    const y = app(url, { executorId: "exec-y", executorLeaseSeconds: 1 });
    await Promise.all([x.duro.launch(), y.duro.launch()]);
    const STEPS = 6;
    const ids = range(100).map((i) => `xy${i}`);
    const handles = await Promise.all(ids.map((id, i) => (i % 2 ? y : x).duro.startWorkflow((i % 2 ? y : x).job.with({ workflowId: id }), `in-${id}`, STEPS)));
    await waitFor(() => x.stepsDone() + y.stepsDone() >= 100, 20_000, "some steps done");
    await cluster.stop("immediate");
    await sleep(1500);
    await cluster.start();
    const outputs = await Promise.all(handles.map((h) => h.getResult()));
    outputs.forEach((output, i) => expect(output).toEqual(expected(`in-${ids[i]}`, STEPS)));
    await checkRecorded(x.duro, ids, STEPS);
    const takeovers = [...x.log.lines, ...y.log.lines].filter((l) => l.message.startsWith("Took over")).length;
    const reruns = [...x.runs.values(), ...y.runs.values()].reduce((sum, n) => sum + n, 0) - ids.length * STEPS;
    console.log(`lease across outage: ${takeovers} takeovers between live executors, ${reruns} step re-runs`);
  });

  it("an outage longer than the retry window: interrupted runs end in no ERROR, run again from their checkpoints, and keep their queue slots", async () => {
    retry.windowMs = 300; // each operation gives up after 0.3 s, well within the outage
    try {
      const url = freshUrl();
      const { duro, job, stepsDone, log } = app(url);
      let running = 0;
      let most = 0;
      const queued = duro.registerWorkflow("queued", async (input: string) => {
        most = Math.max(most, ++running);
        try {
          return await job(input, 3);
        } finally {
          running--;
        }
      });
      new WorkflowQueue(duro, "slots", { workerConcurrency: 4, pollingIntervalSeconds: 0.1 });
      await duro.launch();
      const STEPS = 6;
      const ids = range(40).map((i) => `long${i}`);
      const handles = await Promise.all(ids.map((id) => duro.startWorkflow(job.with({ workflowId: id }), `in-${id}`, STEPS)));
      const queuedHandles = await Promise.all(range(12).map((i) => duro.startWorkflow(queued.with({ queueName: "slots", workflowId: `q${i}` }), `in-q${i}`)));
      await waitFor(() => stepsDone() >= 40, 20_000, "some steps done");
      await cluster.stop("immediate");
      await sleep(2000); // every write in flight gives up meanwhile
      await cluster.start();
      // getResult itself may give up while the database is down: ask again once it is back.
      const settle = (h: { getResult(): Promise<unknown> }) => h.getResult().catch(() => h.getResult());
      const outputs = await Promise.all(handles.map(settle));
      outputs.forEach((output, i) => expect(output).toEqual(expected(`in-${ids[i]}`, STEPS)));
      await Promise.all(queuedHandles.map(settle));
      await checkRecorded(duro, ids, STEPS);
      const statuses = await duro.listWorkflows({ workflowIds: range(12).map((i) => `q${i}`), loadInput: false });
      expect(statuses.map((st) => st.status)).toEqual(range(12).map(() => "SUCCESS"));
      expect(most, "workerConcurrency across the outage").toBeLessThanOrEqual(4);
      const interrupted = log.lines.filter((l) => l.message.includes("was interrupted: the database could not be reached")).length;
      expect(interrupted, "runs the outage interrupted").toBeGreaterThan(0);
      // What fails at every poll through the outage is warned of once, not at each poll.
      for (const recurring of ["Polling queues failed", 'Dispatching queue "slots" failed', "Could not check for cancelled", "Heartbeat or takeover failed"]) {
        expect(log.lines.filter((l) => l.message.startsWith(recurring)).length, recurring).toBeLessThanOrEqual(1);
      }
    } finally {
      retry.windowMs = 60_000;
    }
  });

  it("schedule ticks due while the database is down (past the retry window) are started, each once, when it answers", async () => {
    retry.windowMs = 300;
    try {
      const log = capture();
      const duro = new Duro({ databaseUrl: freshUrl(), executorId: "sched", logger: log.logger });
      instances.push(duro);
      const tick = duro.registerWorkflow("tick", async (at: Date) => at.toISOString());
      await duro.schedule("every", "* * * * * *", tick);
      await duro.launch();
      const ticks = async () => {
        const rows = await duro.listWorkflows({ workflowIdPrefix: "sched:every:", loadInput: false });
        return rows.map((row) => Date.parse(row.workflowId.slice("sched:every:".length))).sort((a, b) => a - b);
      };
      await waitFor(async () => (await ticks()).length >= 1, 10_000, "a first tick");
      await cluster.stop("immediate");
      await sleep(3000);
      await cluster.start();
      const up = Date.now();
      // The ticks due meanwhile start late, after the first one due once the database is back.
      const everySecond = (seen: number[]) => seen.every((at, i) => at === seen[0] + i * 1000);
      await waitFor(async () => {
        const seen = await ticks();
        return seen.at(-1)! >= up && everySecond(seen);
      }, 20_000, "one tick a second, from the first to one after the outage, none lost");
      const seen = await ticks();
      expect(seen.filter((at) => at > up - 3000 && at < up).length, "ticks due during the outage").toBeGreaterThanOrEqual(2);
      const rows = await duro.listWorkflows({ workflowIdPrefix: "sched:every:" });
      await waitFor(async () => (await duro.listWorkflows({ workflowIdPrefix: "sched:every:", status: "SUCCESS" })).length >= rows.length, 10_000, "every tick done");
      expect(log.lines.some((l) => l.message.includes("could not start its tick") && l.message.includes("It will start that tick")), "the late start was announced").toBe(true);
    } finally {
      retry.windowMs = 60_000;
    }
  });

  it("pg_terminate_backend of every duro connection (pool and LISTEN) mid-run: all finish, and cross-instance wake-ups still arrive", async () => {
    const url = freshUrl();
    // The safety poll is pushed out of the picture: any wake-up across instances must come by NOTIFY.
    const x = app(url, { executorId: "exec-x", safetyPollSeconds: 60 });
    const y = new Duro({ databaseUrl: url, executorId: "exec-y", appVersion: "restart-v1", safetyPollSeconds: 60, logger: capture().logger });
    instances.push(y);
    const ping = x.duro.registerWorkflow("ping", async () => `pong:${await x.duro.recv<string>("go", 60)}`);
    await Promise.all([x.duro.launch(), y.launch()]);
    const STEPS = 5;
    const ids = range(200).map((i) => `t${i}`);
    await Promise.all(ids.map((id) => x.duro.startWorkflow(x.job.with({ workflowId: id }), `in-${id}`, STEPS)));
    // Y waits for every result: each is a wake-up that must travel through X's NOTIFY and Y's LISTEN.
    const results = Promise.all(ids.map((id) => y.getResult(id)));

    const listeners = async () =>
      Number((await cluster.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'duro' AND query LIKE 'LISTEN %'`))[0].n);
    await waitFor(async () => (await listeners()) === 2, 10_000, "both LISTEN connections");
    await waitFor(() => x.stepsDone() >= 200, 20_000, "a fifth of the steps done");
    expect(await cluster.terminateDuroBackends()).toBeGreaterThanOrEqual(3);
    // Step bodies go on while connections are down, so a count of them alone does not show that
    // duro reconnected: wait for both LISTEN connections, and for more steps than were in flight
    // at the cut (at most 200), some of which could only start after a checkpoint on a new connection.
    const cut = x.stepsDone();
    await waitFor(async () => x.stepsDone() >= Math.min(cut + 250, ids.length * STEPS) && (await listeners()) === 2, 20_000, "reconnected, more steps done");
    expect(await cluster.terminateDuroBackends()).toBeGreaterThanOrEqual(2);

    const outputs = await results;
    outputs.forEach((output, i) => expect(output).toEqual(expected(`in-${ids[i]}`, STEPS)));
    for (const [key, n] of x.runs) expect(n, `step ${key} ran ${n} times`).toBe(1);
    await checkRecorded(y, ids, STEPS);

    // After the kill both LISTEN connections are back, and a result crosses instances promptly.
    await waitFor(async () => (await listeners()) === 2, 10_000, "both LISTEN connections re-established");
    for (let round = 0; round < 3; round++) {
      const handle = await x.duro.startWorkflow(ping);
      const result = y.getResult(handle.workflowId);
      await sleep(20);
      const sent = performance.now();
      await y.send(handle.workflowId, `r${round}`, "go"); // Y → X (X's LISTEN), then X → Y (Y's LISTEN)
      expect(await result).toBe(`pong:r${round}`);
      const ms = performance.now() - sent;
      // Milliseconds in practice; the bound is loose for a loaded machine but far below the 60 s poll.
      expect(ms, "send → cross-process result").toBeLessThan(3000);
    }
  });

  it("a pool of 2 with 50 workflows waiting in recv: waiting holds no connection, other work runs, sends wake them", async () => {
    const url = freshUrl();
    const { duro, job } = app(url, { poolSize: 2 });
    const ready = duro.registerStep("ready", async () => true);
    const waiter = duro.registerWorkflow("waiter", async (n: number) => {
      await ready();
      return `${n}:${await duro.recv<string>("go", 600)}`;
    });
    await duro.launch();
    const ids = range(50).map((i) => `r${i}`);
    const handles = await Promise.all(ids.map((id, i) => duro.startWorkflow(waiter.with({ workflowId: id }), i)));
    const schema = schemaOf(url);
    // Each waiting recv has recorded its wake-up time (a duro.sleep operation).
    await waitFor(
      async () => Number((await cluster.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".operation_outputs WHERE function_name = 'duro.sleep'`))[0].n) === 50,
      20_000,
      "50 workflows waiting in recv",
    );
    // Pool of 2 plus the LISTEN connection (eventually: backends of earlier tests may still be exiting).
    const backends = async () => Number((await cluster.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'duro'`))[0].n);
    await waitFor(async () => (await backends()) <= 3, 10_000, "at most 3 duro connections");

    // Other workflows still run to completion, through the same two connections.
    const started = Date.now();
    expect(await Promise.all(range(10).map((i) => job(`other${i}`, 3)))).toEqual(range(10).map((i) => expected(`other${i}`, 3)));
    expect(Date.now() - started).toBeLessThan(10_000);
    // A second instance with a pool of ONE waits on all 50 results at once.
    const y = new Duro({ databaseUrl: url, executorId: "exec-y", appVersion: "other", poolSize: 1, logger: capture().logger });
    instances.push(y);
    await y.launch();
    const results = Promise.all(ids.map((id) => y.getResult(id)));
    await Promise.all(ids.map((id, i) => y.send(id, `go${i}`, "go")));
    expect(await results).toEqual(ids.map((_, i) => `${i}:go${i}`));
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(ids.map((_, i) => `${i}:go${i}`));
  });
});

describe("launch() against a database that is down (private cluster)", () => {
  it("retries with backoff and succeeds when the server comes up within connectTimeoutSeconds", async () => {
    const url = freshUrl();
    await cluster.stop("fast");
    const { duro, job } = app(url, { connectTimeoutSeconds: 30 });
    const t0 = Date.now();
    let settled = false;
    const launched = duro.launch().finally(() => (settled = true));
    launched.catch(() => {});
    await sleep(1500);
    expect(settled, "launch() is still retrying while the server is down").toBe(false);
    await cluster.start();
    await launched;
    const ms = Date.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(1500);
    // Backoff is capped at 2 s, so it noticed the server within a few seconds.
    expect(ms).toBeLessThan(1500 + 10_000);
    expect(await job("after-launch", 2)).toEqual(expected("after-launch", 2));
  });

  it("tries once more at connectTimeoutSeconds itself: a server reachable just before then is connected to", async () => {
    // Through a proxy to the shared server that starts listening late.
    const url = new URL(freshDatabaseUrl("postgres"));
    const target = { host: url.hostname, port: Number(url.port || 5432) };
    const port = await freePort();
    url.port = String(port);
    const duro = new Duro({ databaseUrl: url.href, connectTimeoutSeconds: 2, logger: capture().logger });
    instances.push(duro);
    const sockets: Socket[] = [];
    const proxy = createServer((client) => {
      const server = createConnection(target);
      client.pipe(server).pipe(client);
      sockets.push(client, server);
    });
    try {
      const t0 = Date.now();
      const launched = duro.launch();
      launched.catch(() => {}); // awaited below
      // Retries back off 0.1, 0.2, 0.4, 0.8 s…: the next one after 1.7 s would come after the 2 s deadline.
      await sleep(1700);
      await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
      await launched;
      expect(Date.now() - t0).toBeLessThan(2000 + 3000);
      await duro.shutdown();
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it("gives up after about connectTimeoutSeconds with a DatabaseError naming host:port, never the password", async () => {
    await cluster.stop("fast");
    const password = "pw-S3cret-not-to-leak";
    const url = `postgres://postgres:${password}@127.0.0.1:${cluster.port}/postgres?schema=never`;
    const duro = new Duro({ databaseUrl: url, connectTimeoutSeconds: 2, logger: capture().logger });
    instances.push(duro);
    const t0 = Date.now();
    const error = await duro.launch().then(
      () => null,
      (e: unknown) => e,
    );
    const ms = Date.now() - t0;
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toBeInstanceOf(DuroError);
    const message = (error as Error).message;
    expect(message).toContain(`127.0.0.1:${cluster.port}`);
    expect(message).not.toContain(password);
    expect(String((error as Error).stack)).not.toContain(password);
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(ms).toBeLessThan(2000 + 5000);
  });
});

describe("no database error crashes the process (child process on the private cluster)", () => {
  it("terminated connections (idle and busy), a crash and a restart: the application stays up and finishes its work", async () => {
    const url = freshUrl();
    const app = new Proc("resilient.mjs", { url }, "resilient");
    await app.waitFor("launched");
    await app.waitForEvent((e) => e.ev === "progress" && (e.completed as number) >= 40, "40 workflows done");

    // Busy connections killed.
    await cluster.terminateDuroBackends();
    const progress = () => (app.events.filter((e) => e.ev === "progress").at(-1)?.completed as number) ?? 0;
    let mark = progress();
    await app.waitForEvent((e) => e.ev === "progress" && (e.completed as number) >= mark + 40, "progress after terminate");

    // Idle connections killed: the pool's idle clients and the LISTEN connection get an 'error' while nobody uses them.
    app.command("pause");
    await app.waitFor("idle");
    expect(await cluster.terminateDuroBackends()).toBeGreaterThanOrEqual(1);
    await sleep(200); // let the 'error' events reach the idle clients
    app.command("resume");
    mark = progress();
    await app.waitForEvent((e) => e.ev === "progress" && (e.completed as number) >= mark + 40, "progress after idle terminate");

    // A crash of the server while idle, then a restart while busy.
    app.command("pause");
    await app.waitForCount("idle", 2);
    await cluster.crash();
    await sleep(200);
    await cluster.start();
    app.command("resume");
    mark = progress();
    await app.waitForEvent((e) => e.ev === "progress" && (e.completed as number) >= mark + 20, "progress after crash");
    await cluster.restart("fast");
    mark = progress();
    await app.waitForEvent((e) => e.ev === "progress" && (e.completed as number) >= mark + 20, "progress after restart");

    app.command("finish");
    const summary = await app.waitFor("summary", 30_000);
    const exit = await app.exited;
    expect(exit, `exit of the application; stderr:\n${app.stderr}`).toEqual({ code: 0, signal: null });
    expect(summary.wrong).toBe(0);
    expect(summary.completed).toBeGreaterThan(120);
    expect(app.stderr).not.toMatch(/Unhandled|uncaught/i);
  });
});
