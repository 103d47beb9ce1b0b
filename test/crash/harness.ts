/**
 * Crash-test harness: spawns `worker.mjs` (a duro application using the built package) as a
 * child process, follows its JSON-lines progress on stdout so the test can SIGKILL it at a
 * precise point, and reads back the side-effect log its step bodies append to.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, expect } from "vitest";
import { Duro, WorkflowNotFoundError, type StepInfo, type WorkflowStatus } from "../../src/index.js";
import { quietLogger, range } from "../helpers.js";
import { Child, requireBuild, type ChildEvent } from "../processes.js";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
requireBuild("the crash tests");

export interface WorkerEvent extends ChildEvent {
  wf?: string;
  step?: number;
  output?: unknown;
}

export interface WorkflowSpec {
  id: string;
  input: string;
  steps: number;
  sleepAfterStep?: number;
  sleepSeconds?: number;
}

export interface WorkerParams {
  workflows: WorkflowSpec[];
  stepMs?: number | [number, number];
  pauseAfterStep?: number;
  blockInStep?: number;
  /** Start the workflows in chunks of this size, one chunk after the other (default: all at once). */
  startChunk?: number;
}

/** Counts the SIGKILLs sent by this test file (reported in the suite's summary). */
export const killStats = { kills: 0 };

const tempDirs: string[] = [];
const observers: Duro[] = [];
afterEach(async () => {
  // A failed test may leave an observer open: close it so tests stay independent (a child
  // left running is killed by ../processes.ts).
  await Promise.all(observers.splice(0).map((d) => d.shutdown()));
});
afterAll(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh, empty side-effect log path for one test. */
export function freshLogPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "duro-crash-"));
  tempDirs.push(dir);
  return join(dir, "side-effects.jsonl");
}

/** One running worker.mjs: `node worker.mjs <url> <executorId> <logPath> <params JSON>`. */
export class Worker extends Child<WorkerEvent> {
  constructor(url: string, executorId: string, logPath: string, params: WorkerParams) {
    super(WORKER, [url, executorId, logPath, JSON.stringify(params)], "worker", { stdin: false });
  }

  /** Every SIGKILL that lands is counted, also those of the clean-up after a test. */
  override async sigkill(): Promise<boolean> {
    const killed = await super.sigkill();
    if (killed) killStats.kills++;
    return killed;
  }

  /** SIGKILLs the process (if still running) and waits until it is gone. */
  async kill(): Promise<{ killed: boolean }> {
    return { killed: await this.sigkill() };
  }

  /** Waits for a normal end (every workflow finished) and checks it exited 0. */
  async finish(timeoutMs = 45_000): Promise<void> {
    await this.waitForEvent((e) => e.ev === "all-done", "all-done", timeoutMs);
    const exit = await this.exited;
    if (exit.code !== 0) throw new Error(`worker ${this.pid} exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
  }
}

// ——— the side-effect log ———

export interface SideEffect {
  kind: "start" | "end";
  wf: string;
  step: number;
  attempt: number;
  pid: number;
  t: number;
}

export function readSideEffects(logPath: string): SideEffect[] {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as SideEffect);
}

/** The runs (start lines) of each step body, by workflow then step, in log order. */
export function runsByStep(log: SideEffect[]): Map<string, Map<number, SideEffect[]>> {
  const byWf = new Map<string, Map<number, SideEffect[]>>();
  for (const e of log) {
    if (e.kind !== "start") continue;
    let bySteps = byWf.get(e.wf);
    if (!bySteps) byWf.set(e.wf, (bySteps = new Map()));
    const runs = bySteps.get(e.step) ?? [];
    runs.push(e);
    bySteps.set(e.step, runs);
  }
  return byWf;
}

/**
 * The at-least-once contract under crashes, from the side-effect log. For every workflow:
 * each step body ran at least once; a step body ran again only when a process that was running
 * it got killed before its checkpoint was written — so every run but the last is in a killed
 * process, no process ran the same step twice, and (steps being sequential) a killed process
 * leaves at most one re-run step per workflow: the last step it had started for that workflow.
 * Returns the number of re-runs, so a test can show that crashes did hit step bodies.
 */
export function checkStepRuns(log: SideEffect[], workflows: WorkflowSpec[], killedPids: Set<number>): { reruns: number } {
  const byWf = runsByStep(log);
  let reruns = 0;
  for (const w of workflows) {
    const bySteps = byWf.get(w.id) ?? new Map<number, SideEffect[]>();
    expect([...bySteps.keys()].sort((a, b) => a - b), `steps that ran for ${w.id}`).toEqual(range(w.steps));
    const lastStartedInPid = new Map<number, number>();
    const supersededInPid = new Map<number, number[]>();
    for (const [step, runs] of bySteps) {
      for (const run of runs) lastStartedInPid.set(run.pid, Math.max(lastStartedInPid.get(run.pid) ?? 0, step));
      expect(new Set(runs.map((r) => r.pid)).size, `${w.id} step ${step} ran twice in one process: ${JSON.stringify(runs)}`).toBe(runs.length);
      for (const run of runs.slice(0, -1)) {
        expect(killedPids.has(run.pid), `${w.id} step ${step} ran again although process ${run.pid} that ran it was never killed`).toBe(true);
        supersededInPid.set(run.pid, [...(supersededInPid.get(run.pid) ?? []), step]);
        reruns++;
      }
    }
    for (const [pid, stepsRerun] of supersededInPid) {
      expect(stepsRerun, `${w.id}: process ${pid} was killed with more than one step of it unrecorded`).toHaveLength(1);
      expect(stepsRerun[0], `${w.id}: step ${stepsRerun[0]} re-ran but process ${pid} had already moved on to a later step`).toBe(lastStartedInPid.get(pid));
    }
  }
  return { reruns };
}

/** How many times each step body of one workflow started: { step: count }. */
export function runCounts(log: SideEffect[], wf: string): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const e of log) if (e.kind === "start" && e.wf === wf) counts[e.step] = (counts[e.step] ?? 0) + 1;
  return counts;
}

// ——— reading the database back ———

/** A Duro on the test's database that only reads (its executor owns no workflows). */
export async function observer(url: string): Promise<Duro> {
  const duro = new Duro({ databaseUrl: url, executorId: "crash-test-observer", appVersion: "crash-test-v1", logger: quietLogger });
  observers.push(duro);
  await duro.launch();
  return duro;
}

/** The recorded steps of a workflow; none if it was never started. */
export async function recordedSteps(duro: Duro, workflowId: string): Promise<StepInfo[]> {
  try {
    return await duro.listWorkflowSteps(workflowId);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return [];
    throw error;
  }
}

export function expectedOutput(w: WorkflowSpec): string[] {
  return range(w.steps).map((i) => `${w.input}:s${i}`);
}

/**
 * Every workflow is SUCCESS with the right output, and its record holds each step exactly once:
 * function IDs dense from 1, in order, with the step's name and output.
 */
export async function checkFinished(duro: Duro, workflows: WorkflowSpec[]): Promise<Map<string, WorkflowStatus>> {
  const statuses = await duro.listWorkflows({ workflowIds: workflows.map((w) => w.id) });
  const byId = new Map(statuses.map((s) => [s.workflowId, s]));
  for (const w of workflows) {
    const status = byId.get(w.id);
    expect(status?.status, `status of ${w.id}`).toBe("SUCCESS");
    expect(status?.output, `output of ${w.id}`).toEqual(expectedOutput(w));
    checkRecordedSteps(w, await duro.listWorkflowSteps(w.id));
  }
  return byId;
}

export function checkRecordedSteps(w: WorkflowSpec, recorded: StepInfo[]): void {
  const expected: { functionId: number; functionName: string; output?: unknown }[] = [];
  for (let i = 1; i <= w.steps; i++) {
    expected.push({ functionId: expected.length + 1, functionName: `step${i}`, output: `${w.input}:s${i}` });
    if (w.sleepAfterStep === i) expected.push({ functionId: expected.length + 1, functionName: "duro.sleep" });
  }
  expect(
    recorded.map((s) => s.functionId),
    `function IDs recorded for ${w.id} (each step once, dense)`,
  ).toEqual(expected.map((e) => e.functionId));
  expect(recorded.map((s) => s.functionName), `step names recorded for ${w.id}`).toEqual(expected.map((e) => e.functionName));
  for (const [i, e] of expected.entries()) {
    if (e.output !== undefined) expect(recorded[i].output, `${w.id} step ${e.functionId} output`).toEqual(e.output);
    expect(recorded[i].error, `${w.id} step ${e.functionId} error`).toBeNull();
  }
}

/** A random integer in [min, max]. */
export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}
