/**
 * Several executors — real processes, each its own executorId — share one PostgreSQL schema.
 * One is SIGKILLed (or SIGSTOPped) mid-run; a live executor whose lease check finds it silent
 * adopts its PENDING workflows, counting a recovery attempt, and finishes them. Each workflow
 * completes once, each step is recorded once, and a live executor's work is never touched.
 * Runs on the shared server in a fresh schema (nothing here stops the database).
 */
import { describe, expect, it } from "vitest";
import type { DuroClient, WorkflowStatus } from "../../src/index.js";
import { freshDatabaseUrl, range, useClients, waitFor } from "../helpers.js";
import { Proc, type ProcEvent } from "./procs.js";

interface Spec {
  id: string;
  input: string;
  steps: number;
  waitForGo?: boolean;
}

const expectedOutput = (w: Spec, go?: string) => [...(w.waitForGo ? [go] : []), ...range(w.steps).map((i) => `${w.input}:s${i}`)];

const client = useClients();

function executor(url: string, executorId: string, extra: Record<string, unknown> = {}): Proc {
  return new Proc("executor.mjs", { url, executorId, ...extra }, executorId);
}

/** Every workflow SUCCESS with its output; its steps recorded once each, densely, in order. */
async function checkFinished(c: DuroClient, workflows: Spec[], go: (w: Spec) => string | undefined = () => undefined) {
  const statuses = new Map((await c.listWorkflows({ workflowIds: workflows.map((w) => w.id) })).map((s) => [s.workflowId, s]));
  for (const w of workflows) {
    const s = statuses.get(w.id);
    expect(s?.status, `status of ${w.id}`).toBe("SUCCESS");
    expect(s?.output, `output of ${w.id}`).toEqual(expectedOutput(w, go(w)));
    const steps = await c.listWorkflowSteps(w.id);
    const names = [...(w.waitForGo ? ["duro.recv", "duro.sleep"] : []), ...range(w.steps).map((i) => `step${i}`)];
    // recv records its wake-up time as a "duro.sleep" operation only when it had to wait.
    const recorded = steps.map((s) => s.functionName).filter((n) => n !== "duro.sleep");
    expect(recorded, `steps of ${w.id}`).toEqual(names.filter((n) => n !== "duro.sleep"));
    const ids = steps.map((s) => s.functionId);
    expect(new Set(ids).size, `function IDs of ${w.id} are unique`).toBe(ids.length);
    expect(ids, `function IDs of ${w.id} are dense`).toEqual(range(ids.length));
    for (const s of steps) expect(s.error, `${w.id} #${s.functionId} error`).toBeNull();
  }
  return statuses;
}

const byWf = (events: ProcEvent[], ev: string) => {
  const map = new Map<string, ProcEvent[]>();
  for (const e of events) if (e.ev === ev) map.set(e.wf!, [...(map.get(e.wf!) ?? []), e]);
  return map;
};

/** Waits until none of `workflows` is PENDING on `executorId`: another executor adopted them. */
const adoptedFrom = (c: DuroClient, workflows: Spec[], executorId: string) =>
  waitFor(
    async () => (await c.listWorkflows({ workflowIds: workflows.map((w) => w.id), status: "PENDING", executorId })).length === 0,
    15_000,
    `another executor to adopt ${executorId}'s pending workflows`,
  );

const errorsLogged = (p: Proc) => p.events.filter((e) => e.ev === "log" && e.level === "error");

describe("executor takeover (PostgreSQL, real processes)", () => {
  it("SIGKILL mid-run: live executors adopt the dead one's PENDING workflows and finish each exactly once", async () => {
    const url = freshDatabaseUrl("postgres");
    const workflows: Spec[] = range(24).map((i) => ({ id: `kill-${i}`, input: `in-${i}`, steps: 8 }));
    // A heartbeats every 1/3 s; B and C presume it dead after 1.5 s of silence.
    const b = executor(url, "exec-b", { leaseSeconds: 1.5 });
    const c = executor(url, "exec-c", { leaseSeconds: 1.5 });
    await Promise.all([b.waitFor("launched"), c.waitFor("launched")]);
    const a = executor(url, "exec-a", { leaseSeconds: 1, workflows, stepMs: 40 });
    await a.waitForCount("step-returned", 60);
    expect(await a.kill()).toBe(true);
    const killedAt = Date.now();
    const aEvents = [...a.events];

    const obs = client(url);
    // Every result arrives (getResult is woken by the adopters' NOTIFY).
    const outputs = await Promise.all(workflows.map((w) => obs.getResult(w.id)));
    const finishedMs = Date.now() - killedAt;
    outputs.forEach((output, i) => expect(output).toEqual(expectedOutput(workflows[i])));
    const statuses = await checkFinished(obs, workflows);

    const survivors = [...b.events, ...c.events];
    const tookOver = byWf(survivors, "took-over");
    const adopted = workflows.filter((w) => statuses.get(w.id)!.executorId !== "exec-a");
    expect(adopted.length, "A was killed with unfinished work").toBeGreaterThan(0);
    for (const w of workflows) {
      const s = statuses.get(w.id)!;
      if (s.executorId === "exec-a") {
        // Finished by A before the kill: nobody touched it.
        expect(aEvents.some((e) => e.ev === "wf-end" && e.wf === w.id), `${w.id} completed by A`).toBe(true);
        expect(s.recoveryAttempts).toBe(1);
        expect(tookOver.has(w.id)).toBe(false);
        continue;
      }
      // Adopted by exactly one survivor, with one more recovery attempt.
      expect(["exec-b", "exec-c"]).toContain(s.executorId);
      expect(s.recoveryAttempts, `recovery attempts of ${w.id}`).toBe(2);
      expect(tookOver.get(w.id)?.length, `adoptions of ${w.id}`).toBe(1);
      const adopter = s.executorId === "exec-b" ? b : c;
      expect(tookOver.get(w.id)![0].pid).toBe(adopter.pid);
    }
    // No adoption before A died (A kept heartbeating until then).
    for (const e of survivors.filter((e) => e.ev === "took-over")) expect(e.t).toBeGreaterThanOrEqual(killedAt - 50);

    // Step bodies: a step A had recorded never ran again; the others ran at most once in the survivors.
    const returnedInA = new Set(aEvents.filter((e) => e.ev === "step-returned").map((e) => `${e.wf}/${e.step}`));
    const survivorRuns = new Map<string, number>();
    for (const e of survivors) if (e.ev === "step-start") survivorRuns.set(`${e.wf}/${e.step}`, (survivorRuns.get(`${e.wf}/${e.step}`) ?? 0) + 1);
    for (const [key, n] of survivorRuns) {
      expect(returnedInA.has(key), `step ${key} was recorded by A, yet ran again`).toBe(false);
      expect(n, `step ${key} ran ${n} times in the survivors`).toBe(1);
    }
    // Each body reached its end at most once among the survivors.
    for (const [wf, ends] of byWf(survivors, "wf-end")) expect(ends.length, `${wf} ended ${ends.length} times`).toBe(1);

    console.log(`takeover: ${adopted.length}/${workflows.length} workflows adopted, all finished ${finishedMs} ms after the kill`);
    expect(errorsLogged(b)).toEqual([]);
    expect(errorsLogged(c)).toEqual([]);
    await Promise.all([b.shutdown(), c.shutdown()]);
  });

  it("launch() recovers only its own PENDING work; a live executor's work is left alone until it dies", async () => {
    const url = freshDatabaseUrl("postgres");
    const workflows: Spec[] = range(6).map((i) => ({ id: `wait-${i}`, input: `in-${i}`, steps: 3, waitForGo: true }));
    const a = executor(url, "exec-a", { leaseSeconds: 1, workflows });
    await a.waitForCount("waiting", workflows.length);

    const obs = client(url);
    const snapshot = async () => new Map((await obs.listWorkflows({ workflowIds: workflows.map((w) => w.id) })).map((s) => [s.workflowId, s]));
    const expectOwnedByA = (statuses: Map<string, WorkflowStatus>) => {
      for (const w of workflows) {
        expect(statuses.get(w.id)?.status).toBe("PENDING");
        expect(statuses.get(w.id)?.executorId).toBe("exec-a");
        expect(statuses.get(w.id)?.recoveryAttempts).toBe(1);
      }
    };

    // B launches while A is alive: its launch() recovers nothing of A's.
    const b = executor(url, "exec-b", { leaseSeconds: 1.5 });
    await b.waitFor("launched");
    expect(b.count("recovering") + b.count("took-over")).toBe(0);
    expectOwnedByA(await snapshot());

    // Two lease periods of B's lease checks later, A (still heartbeating) still owns all of it.
    // (Proving that something does not happen needs an observation window.)
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(b.count("recovering") + b.count("took-over")).toBe(0);
    expectOwnedByA(await snapshot());

    // A dies: B adopts every workflow, still waiting in recv, and a message finishes each one.
    expect(await a.kill()).toBe(true);
    await b.waitForCount("took-over", workflows.length, 15_000);
    await Promise.all(workflows.map((w) => obs.send(w.id, `go-${w.id}`, "go")));
    const outputs = await Promise.all(workflows.map((w) => obs.getResult(w.id)));
    outputs.forEach((output, i) => expect(output).toEqual(expectedOutput(workflows[i], `go-${workflows[i].id}`)));
    const statuses = await checkFinished(obs, workflows, (w) => `go-${w.id}`);
    for (const w of workflows) {
      expect(statuses.get(w.id)!.executorId).toBe("exec-b");
      expect(statuses.get(w.id)!.recoveryAttempts).toBe(2);
    }

    // A restarted under its own ID finds nothing of its own left to recover.
    const a2 = executor(url, "exec-a", { leaseSeconds: 1 });
    await a2.waitFor("launched");
    expect(a2.count("recovering") + a2.count("took-over")).toBe(0);
    expect(errorsLogged(b)).toEqual([]);
    await Promise.all([a2.shutdown(), b.shutdown()]);
  });

  it("SIGSTOP: a frozen executor's work is adopted; when it wakes it loses the race and stops cleanly", async () => {
    const url = freshDatabaseUrl("postgres");
    const workflows: Spec[] = range(8).map((i) => ({ id: `frozen-${i}`, input: `in-${i}`, steps: 12 }));
    // B's steps are slow, so once A wakes it runs ahead of B and tries to record steps B has not.
    const b = executor(url, "exec-b", { leaseSeconds: 1.5, stepMs: 200 });
    await b.waitFor("launched");
    const a = executor(url, "exec-a", { leaseSeconds: 1, workflows, stepMs: 40 });
    await a.waitForCount("step-returned", 16);
    a.signal("SIGSTOP");

    const obs = client(url);
    // B adopts everything A had not finished, and starts running it.
    await b.waitFor("took-over", 15_000);
    await adoptedFrom(obs, workflows, "exec-a");
    await b.waitForEvent((e) => e.ev === "step-returned", "B recording a step of an adopted workflow");
    a.signal("SIGCONT");
    const resumedAt = Date.now();

    // Both carry on; A's stale runs are fenced off (their writes refused, or stopped when A sees the
    // new owner), nothing A does is recorded as an outcome, and A's getResult calls still resolve
    // with the outcomes recorded once.
    await a.waitFor("all-done", 30_000);
    await checkFinished(obs, workflows);
    expect(a.events.filter((e) => e.ev === "result-error"), "getResult errors in the woken executor").toEqual([]);
    expect(a.count("result")).toBe(workflows.length);
    for (const e of a.events.filter((e) => e.ev === "result")) expect(e.output).toEqual(expectedOutput(workflows.find((w) => w.id === e.wf)!));
    // (A stale run stops at its first fenced write, or silently when A's sweep sees the new owner.)
    const endedInA = a.events.filter((e) => e.ev === "wf-end" && e.t >= resumedAt - 5).length;
    expect(a.count("superseded"), "A's writes fenced off").toBeGreaterThan(0);
    console.log(`sigstop: ${b.count("took-over")} adopted; after waking, A logged ${a.count("superseded")} fenced runs and ran ${endedInA} bodies to their end`);
    expect(errorsLogged(a)).toEqual([]);
    expect(errorsLogged(b)).toEqual([]);
    await Promise.all([a.shutdown(), b.shutdown()]);
  });

  it.each([
    ["still running there", false],
    ["finished there", true],
  ])("SIGSTOP past the lease: on waking, the frozen executor starts no step of the workflows adopted meanwhile (%s)", async (_, finished) => {
    const url = freshDatabaseUrl("postgres");
    // Each workflow sleeps durably between steps, so when A freezes most of its runs are between steps.
    const workflows: Spec[] = range(6).map((i) => ({ id: `napping-${i}`, input: `in-${i}`, steps: 6 }));
    const b = executor(url, "exec-b", { leaseSeconds: 1, sleepSeconds: 0.2 });
    await b.waitFor("launched");
    const a = executor(url, "exec-a", { leaseSeconds: 1, workflows, sleepSeconds: 0.2 });
    await a.waitForCount("step-returned", 6);
    a.signal("SIGSTOP");
    const obs = client(url);
    await adoptedFrom(obs, workflows, "exec-a");
    if (finished) {
      const done = async () => (await obs.listWorkflows({ workflowIds: workflows.map((w) => w.id), status: "SUCCESS" })).length === workflows.length;
      await waitFor(done, 30_000, "B to finish them");
    }
    a.signal("SIGCONT");
    const resumedAt = Date.now();
    await a.waitFor("all-done", 30_000);
    await checkFinished(obs, workflows);
    // Its sleeps ran out while it was frozen; it looked for the new owners before taking the next step.
    expect(a.events.filter((e) => e.ev === "step-start" && e.t >= resumedAt), "steps A started after waking").toEqual([]);
    if (!finished) expect(a.count("superseded"), "A's runs stopped").toBeGreaterThan(0);
    expect(errorsLogged(a)).toEqual([]);
    expect(errorsLogged(b)).toEqual([]);
    await Promise.all([a.shutdown(), b.shutdown()]);
  });
});
