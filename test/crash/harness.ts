/**
 * Crash-test harness: spawns `worker.mjs` (a duro application using the built package) as a
 * child process, follows its JSON-lines progress on stdout so the test can SIGKILL it at a
 * precise point, and reads back the side-effect log its step bodies append to.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, expect } from "vitest";
import { Duro, WorkflowNotFoundError, type StepInfo, type WorkflowStatus } from "../../src/index.js";
import { quietLogger } from "../helpers.js";

const WORKER = fileURLToPath(new URL("./worker.mjs", import.meta.url));
const DIST = fileURLToPath(new URL("../../dist/index.js", import.meta.url));
if (!existsSync(DIST)) throw new Error("dist/ is missing: the crash tests run the built package; run `npm run build` first (npm test does).");

export interface WorkerEvent {
  ev: string;
  pid: number;
  t: number;
  wf?: string;
  step?: number;
  output?: unknown;
  [key: string]: unknown;
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
const liveWorkers = new Set<Worker>();
const observers: Duro[] = [];
afterEach(async () => {
  // A failed test may leave a child running or an observer open: end them so tests stay independent.
  await Promise.all([...liveWorkers].map((w) => w.kill()));
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

interface Pending {
  predicate: (e: WorkerEvent) => boolean;
  resolve: (e: WorkerEvent) => void;
  reject: (error: Error) => void;
}

/** One running child process. */
export class Worker {
  readonly events: WorkerEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  stderr = "";
  private readonly child: ChildProcess;
  private pending: Pending[] = [];

  constructor(url: string, executorId: string, logPath: string, params: WorkerParams) {
    this.child = spawn(process.execPath, [WORKER, url, executorId, logPath, JSON.stringify(params)], { stdio: ["ignore", "pipe", "pipe"] });
    liveWorkers.add(this);
    let buffered = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) this.onEvent(JSON.parse(line) as WorkerEvent);
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      // "close" comes after the child's stdout is drained, so every event it printed has been seen.
      this.child.on("close", (code, signal) => {
        this.exit = { code, signal };
        liveWorkers.delete(this);
        const error = new Error(`worker ${this.pid} exited (code ${code}, signal ${signal}) before the awaited event.\nstderr:\n${this.stderr}`);
        for (const p of this.pending.splice(0)) p.reject(error);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onEvent(e: WorkerEvent): void {
    this.events.push(e);
    this.pending = this.pending.filter((p) => {
      if (!p.predicate(e)) return true;
      p.resolve(e);
      return false;
    });
  }

  /** Resolves with the first event (already seen or future) matching `predicate`. */
  waitForEvent(predicate: (e: WorkerEvent) => boolean, what: string, timeoutMs = 30_000): Promise<WorkerEvent> {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`worker ${this.pid} already exited before ${what}.\nstderr:\n${this.stderr}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what} from worker ${this.pid}.\nstderr:\n${this.stderr}`)), timeoutMs);
      this.pending.push({
        predicate,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Resolves once `count` events named `ev` have arrived. */
  waitForCount(ev: string, count: number, timeoutMs = 30_000): Promise<WorkerEvent> {
    let n = 0;
    return this.waitForEvent((e) => e.ev === ev && ++n >= count, `${count} × "${ev}"`, timeoutMs);
  }

  /** SIGKILLs the process (if still running) and waits until it is gone. */
  async kill(): Promise<{ killed: boolean }> {
    if (this.exit) return { killed: false };
    this.child.kill("SIGKILL");
    const exit = await this.exited;
    const killed = exit.signal === "SIGKILL";
    if (killed) killStats.kills++;
    return { killed };
  }

  /** Waits for a normal end (every workflow finished) and checks it exited 0. */
  async finish(timeoutMs = 45_000): Promise<void> {
    await this.waitForEvent((e) => e.ev === "all-done", "all-done", timeoutMs);
    const exit = await this.exited;
    if (exit.code !== 0) throw new Error(`worker ${this.pid} exited with ${JSON.stringify(exit)}.\nstderr:\n${this.stderr}`);
  }

  count(ev: string): number {
    return this.events.filter((e) => e.ev === ev).length;
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

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** A random integer in [min, max]. */
export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}
