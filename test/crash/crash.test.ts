/**
 * Real crashes: a duro application runs in a child process (worker.mjs, on the built package),
 * gets SIGKILLed at a chosen point, and a new process with the same executorId recovers the
 * work on launch(). The side-effect log tells how often each step body really ran; the database
 * (read through a separate Duro) tells what was recorded. Only the kill timing is random.
 */
import { afterAll, describe, expect, it } from "vitest";
import { backends, freshDatabaseUrl, range, waitFor } from "../helpers.js";
import {
  checkFinished, checkStepRuns, expectedOutput, freshLogPath, killStats, observer, randomInt, readSideEffects,
  recordedSteps, runCounts, Worker, type WorkflowSpec,
} from "./harness.js";

const EXECUTOR = "crash-worker-1";

afterAll(() => {
  console.log(`crash.test.ts: ${killStats.kills} SIGKILLs sent`);
});

describe.each(backends)("%s", (backend) => {
  it("kill between steps: recovery finishes from step 3; steps 1–2 are not re-run, 3–4 run once", async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const w: WorkflowSpec = { id: "between-1", input: "order-7", steps: 4 };

    // The first process stops right after step 2 returned (its checkpoint is committed) and is killed there.
    const first = new Worker(url, EXECUTOR, log, { workflows: [w], stepMs: 20, pauseAfterStep: 2 });
    await first.waitForEvent((e) => e.ev === "step-returned" && e.step === 2, "step 2 recorded");
    expect((await first.kill()).killed).toBe(true);

    const obs = await observer(url);
    const [before] = await obs.listWorkflows({ workflowIds: [w.id] });
    expect(before.status).toBe("PENDING");
    expect((await obs.listWorkflowSteps(w.id)).map((s) => s.functionName)).toEqual(["step1", "step2"]);

    const second = new Worker(url, EXECUTOR, log, { workflows: [w], stepMs: 20 });
    await second.finish();
    expect(second.events.find((e) => e.ev === "result")?.output).toEqual(expectedOutput(w));

    const statuses = await checkFinished(obs, [w]);
    expect(statuses.get(w.id)!.recoveryAttempts).toBe(2);
    const sideEffects = readSideEffects(log);
    expect(runCounts(sideEffects, w.id)).toEqual({ 1: 1, 2: 1, 3: 1, 4: 1 });
    const ranIn = (step: number) => sideEffects.find((e) => e.kind === "start" && e.step === step)!.pid;
    expect([ranIn(1), ranIn(2), ranIn(3), ranIn(4)]).toEqual([first.pid, first.pid, second.pid, second.pid]);
  });

  it("kill inside a step: that step runs again, completed steps do not; each step is recorded once", async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const w: WorkflowSpec = { id: "inside-1", input: "order-8", steps: 4 };

    // Step 3's body signals that it started, then hangs until the kill.
    const first = new Worker(url, EXECUTOR, log, { workflows: [w], stepMs: 20, blockInStep: 3 });
    await first.waitForEvent((e) => e.ev === "step-start" && e.step === 3, "step 3 started");
    expect((await first.kill()).killed).toBe(true);

    const second = new Worker(url, EXECUTOR, log, { workflows: [w], stepMs: 20 });
    await second.finish();
    expect(second.events.find((e) => e.ev === "result")?.output).toEqual(expectedOutput(w));

    const obs = await observer(url);
    await checkFinished(obs, [w]);
    const sideEffects = readSideEffects(log);
    expect(runCounts(sideEffects, w.id)).toEqual({ 1: 1, 2: 1, 3: 2, 4: 1 });
    const step3 = sideEffects.filter((e) => e.step === 3);
    // The interrupted run started in the killed process and never ended; the re-run completed.
    expect(step3.map((e) => [e.kind, e.pid])).toEqual([["start", first.pid], ["start", second.pid], ["end", second.pid]]);
    checkStepRuns(sideEffects, [w], new Set([first.pid]));
  });

  it("kill during checkpoint writes: many concurrent workflows, killed while commits flow, all finish with each step recorded once", async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const workflows: WorkflowSpec[] = range(40).map((i) => ({ id: `ckpt-${i}`, input: `in-${i}`, steps: 12 }));
    const params = { workflows, stepMs: [0, 4] as [number, number] };
    const killed = new Set<number>();
    const obs = await observer(url);

    // Three crashes in a row, each after a random number of step bodies finished — mid-run, so
    // checkpoints are being group-committed — then a last process finishes everything.
    let inFlight = 0;
    for (let round = 0; round < 3; round++) {
      const worker = new Worker(url, EXECUTOR, log, params);
      await worker.waitForCount("step-done", randomInt(50, 110));
      const { killed: wasKilled } = await worker.kill();
      expect(wasKilled, "the worker was still running when killed").toBe(true);
      expect(worker.count("all-done")).toBe(0);
      killed.add(worker.pid);
      // Step bodies that had finished but whose step call had not returned: checkpoints in flight.
      const returned = new Set(worker.events.filter((e) => e.ev === "step-returned").map((e) => `${e.wf}/${e.step}`));
      inFlight += worker.events.filter((e) => e.ev === "step-done" && !returned.has(`${e.wf}/${e.step}`)).length;
      // Nothing is recorded twice or out of order, even by a process killed mid-commit.
      for (const w of workflows) {
        const recorded = await recordedSteps(obs, w.id);
        expect(recorded.map((s) => s.functionName)).toEqual(range(recorded.length).map((i) => `step${i}`));
        expect(recorded.map((s) => s.functionId)).toEqual(range(recorded.length));
      }
    }
    expect(inFlight, "checkpoints were in flight at the kills").toBeGreaterThan(0);
    let recordedBefore = 0;
    for (const w of workflows) recordedBefore += (await recordedSteps(obs, w.id)).length;
    expect(recordedBefore, "the kills left partial records to resume from").toBeGreaterThan(0);
    expect(recordedBefore, "the kills left work to recover").toBeLessThan(workflows.length * 12);

    const last = new Worker(url, EXECUTOR, log, params);
    await last.finish();
    expect(last.count("result")).toBe(workflows.length);
    for (const e of last.events.filter((e) => e.ev === "result")) {
      expect(e.output).toEqual(expectedOutput(workflows.find((w) => w.id === e.wf)!));
    }
    await checkFinished(obs, workflows);
    // A step body ran twice only if it was running (or its checkpoint was in flight) in a killed
    // process, at most once per workflow per kill.
    checkStepRuns(readSideEffects(log), workflows, killed);
  });

  it("kill during duro.sleep(2): the recovered workflow sleeps only what remains", async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const w: WorkflowSpec = { id: "sleeper-1", input: "nap", steps: 2, sleepAfterStep: 1, sleepSeconds: 2 };
    const obs = await observer(url);

    const first = new Worker(url, EXECUTOR, log, { workflows: [w] });
    await first.waitForEvent((e) => e.ev === "sleep-start", "sleep started");
    // The wake-up time is recorded as operation 2 ("duro.sleep"); wait until it is durable.
    let sleepOp: Awaited<ReturnType<typeof obs.listWorkflowSteps>>[number] | undefined;
    await waitFor(async () => (sleepOp = (await obs.listWorkflowSteps(w.id))[1]) !== undefined, 10_000, "the sleep to be recorded");
    const wakeAt = sleepOp!.output as number;
    const sleptFrom = sleepOp!.startedAtEpochMs!;
    expect(sleepOp!.functionName).toBe("duro.sleep");
    expect(wakeAt - sleptFrom).toBe(2000);

    // Kill one second into the two-second sleep.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, wakeAt - 1000 - Date.now())));
    const killedAt = Date.now();
    expect((await first.kill()).killed).toBe(true);
    expect(killedAt, "killed before the sleep ended").toBeLessThan(wakeAt);

    const second = new Worker(url, EXECUTOR, log, { workflows: [w] });
    const launched = await second.waitForEvent((e) => e.ev === "launched", "launched");
    await second.finish();
    await checkFinished(obs, [w]);

    const sideEffects = readSideEffects(log);
    expect(runCounts(sideEffects, w.id)).toEqual({ 1: 1, 2: 1 });
    const step2 = sideEffects.find((e) => e.kind === "start" && e.step === 2)!;
    expect(step2.pid).toBe(second.pid);
    // It woke at the recorded time (timers may round down by a millisecond), or at once if the
    // restart took longer than what remained …
    expect(step2.t).toBeGreaterThanOrEqual(wakeAt - 5);
    expect(step2.t - Math.max(wakeAt, launched.t), "woke late").toBeLessThan(900);
    // … so from the first start of the sleep to waking took ≈ 2 s, not 2 s + the time before the kill
    // (when the restart was quick enough to tell the two apart) …
    if (launched.t < wakeAt) expect(step2.t - sleptFrom).toBeLessThan(2900);
    // … and the recovered process did not sleep a fresh 2 s (at most ≈ 1 s remained at the kill).
    expect(step2.t - launched.t, "slept a fresh 2 s after recovery").toBeLessThan(1500);
  });

  it("durability of batched commits: every workflow reported started and every step reported returned survives a SIGKILL", async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const workflows: WorkflowSpec[] = range(300).map((i) => ({ id: `burst-${i}`, input: `b${i}`, steps: 2 }));
    const params = { workflows, stepMs: 0, startChunk: 10 };

    const first = new Worker(url, EXECUTOR, log, params);
    const killAfter = randomInt(50, 350);
    let reported = 0;
    await first.waitForEvent((e) => (e.ev === "started" || e.ev === "step-returned") && ++reported >= killAfter, `${killAfter} reports`);
    expect((await first.kill()).killed).toBe(true);
    expect(first.count("all-done")).toBe(0);

    const started = first.events.filter((e) => e.ev === "started").map((e) => e.wf!);
    const returned = first.events.filter((e) => e.ev === "step-returned").map((e) => ({ wf: e.wf!, step: e.step! }));
    expect(started.length + returned.length).toBeGreaterThan(0);

    // Before anything recovers: what the process was told is durable, is.
    const obs = await observer(url);
    const found = await obs.listWorkflows({ workflowIds: started, loadInput: false, loadOutput: false });
    expect(found.map((s) => s.workflowId).sort()).toEqual([...started].sort());
    const stepsOf = new Map<string, number[]>();
    for (const { wf } of returned) {
      if (!stepsOf.has(wf)) stepsOf.set(wf, (await obs.listWorkflowSteps(wf)).map((s) => s.functionId));
    }
    for (const { wf, step } of returned) expect(stepsOf.get(wf), `step ${step} of ${wf} was reported returned`).toContain(step);

    // Then a new process finishes the whole burst, starting the workflows that never were.
    const second = new Worker(url, EXECUTOR, log, params);
    await second.finish();
    await checkFinished(obs, workflows);
    checkStepRuns(readSideEffects(log), workflows, new Set([first.pid]));
  });
});
