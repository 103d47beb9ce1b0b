/**
 * Random kills under load: 50 workflows of 30 steps run in a child process that is SIGKILLed
 * again and again at random moments — during start-up and recovery, mid-step, mid-commit — and
 * restarted each time with the same executorId, until a last process is left to finish. Then
 * every workflow must be SUCCESS with the right output, every step recorded exactly once, and
 * a step body may have run more than once only where a kill hit it.
 */
import { describe, expect, it } from "vitest";
import { backends, freshDatabaseUrl, range } from "../helpers.js";
import { checkFinished, checkStepRuns, freshLogPath, observer, randomInt, readSideEffects, recordedSteps, Worker, type WorkflowSpec } from "./harness.js";

const EXECUTOR = "crash-worker-1";
const KILLS = 26;
const STEPS = 30;

describe.each(backends)("%s", (backend) => {
  it(`random kills under load: ${KILLS} SIGKILLs while 50 workflows run, then everything finishes exactly once`, { timeout: 120_000 }, async () => {
    const url = freshDatabaseUrl(backend);
    const log = freshLogPath();
    const workflows: WorkflowSpec[] = range(50).map((i) => ({ id: `load-${i}`, input: `w${i}`, steps: STEPS }));
    const params = { workflows, stepMs: [5, 40] as [number, number] };
    const killed = new Set<number>();
    const plan: string[] = [];
    const began = Date.now();

    while (killed.size < KILLS) {
      const worker = new Worker(url, EXECUTOR, log, params);
      // Where to strike: during start-up (opening the database, migration, recovery), mid-step,
      // with checkpoints in flight, or just after commits. Each kill point is bounded by progress,
      // not time, so the work cannot run out before the kills do.
      const how = randomInt(0, 3);
      if (how === 0) {
        const ms = randomInt(0, 300);
        plan.push(`${ms} ms after spawn or at launch`);
        await Promise.race([
          new Promise((resolve) => setTimeout(resolve, ms)),
          worker.waitForEvent((e) => e.ev === "launched", "launched").catch(() => undefined),
        ]);
      } else {
        const n = randomInt(1, 60);
        const ev = ["step-start", "step-done", "step-returned"][how - 1];
        plan.push(`after ${n} × ${ev}`);
        let seen = 0;
        // Only fresh step-returned events count: replayed steps return at once after a restart.
        await worker.waitForEvent((e) => e.ev === ev && (ev !== "step-returned" || e.fresh === true) && ++seen >= n, `${n} × ${ev}`, 30_000).catch((error) => {
          if (!worker.exit) throw error; // it exited on its own: checked below
        });
      }
      const { killed: wasKilled } = await worker.kill();
      if (!wasKilled) {
        // Everything finished before this kill point; that is only fine if it exited cleanly.
        expect(worker.exit, worker.stderr).toEqual({ code: 0, signal: null });
        break;
      }
      killed.add(worker.pid);
    }
    const killing = Date.now() - began;
    const obs = await observer(url);
    let recordedBefore = 0;
    for (const w of workflows) recordedBefore += (await recordedSteps(obs, w.id)).length;

    const last = new Worker(url, EXECUTOR, log, params);
    await last.finish(60_000);
    const at = (ev: string) => last.events.find((e) => e.ev === ev)!.t;
    const lastRun = `final process (launch() ${at("launched") - at("spawned")} ms, then finished the rest in ${at("all-done") - at("launched")} ms)`;

    const statuses = await checkFinished(obs, workflows);
    const { reruns } = checkStepRuns(readSideEffects(log), workflows, killed);
    const maxAttempts = Math.max(...[...statuses.values()].map((s) => s.recoveryAttempts));
    console.log(
      `[${backend}] ${killed.size} SIGKILLs in ${killing} ms (${plan.join("; ")}); ${reruns} step re-runs; ` +
        `max recoveryAttempts ${maxAttempts}; ${recordedBefore} of ${50 * STEPS} steps recorded before the ${lastRun}`,
    );
    expect(killed.size, `kills before the work ran out (plan: ${plan.join("; ")})`).toBe(KILLS);
    // The kills did not all land before the first commit: recovery had partial records to resume from.
    expect(recordedBefore).toBeGreaterThan(0);
  });
});
