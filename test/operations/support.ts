/**
 * Helpers for the operations suite only (the general ones are in ../helpers.ts).
 *
 * - `blockedQueue(duro, name)`: a queue of concurrency 1 held by a "blocker" workflow until
 *   `release()`; whatever is enqueued behind it stays ENQUEUED meanwhile.
 * - `snapshot(duro)`: every workflow row (status, timestamps, fork flags) and its steps, to
 *   show that a refused call changed nothing.
 * - `cli(args, env)`: runs the built `duro` binary (dist/cli/main.js) as a child process.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { WorkflowQueue, type Duro, type WorkflowHandle } from "../../src/index.js";
import { gate } from "../helpers.js";

/** A queue whose single slot is taken by a blocker workflow until `release()`. */
export function blockedQueue(duro: Duro, name: string) {
  const queue = new WorkflowQueue(duro, name, { concurrency: 1, pollingIntervalSeconds: 0.2 });
  const hold = gate();
  const started = gate();
  const blocker = duro.registerWorkflow(`${name}-blocker`, async () => {
    started.open();
    await duro.runStep(() => hold.promise, { name: "hold" });
    return "released";
  });
  let handle: WorkflowHandle<string> | undefined;
  return {
    queue,
    /** After launch: enqueues the blocker and waits until it holds the slot. */
    async block() {
      handle = await duro.startWorkflow(blocker.with({ queueName: name, workflowId: `${name}-blocker` }));
      await started.promise;
    },
    async release() {
      hold.open();
      if (handle) await handle.getResult();
    },
  };
}

export async function snapshot(duro: Duro) {
  const rows = await duro.listWorkflows({ loadInput: false });
  const steps: Record<string, unknown> = {};
  for (const row of rows) steps[row.workflowId] = (await duro.listWorkflowSteps(row.workflowId)).map((s) => [s.functionId, s.functionName, s.output]);
  return { rows, steps };
}

export const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/main.js …args` and resolves with its exit code and output (never rejects). */
export function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete childEnv[key];
  if (!("DURO_DATABASE_URL" in env)) delete childEnv.DURO_DATABASE_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: childEnv, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? ((error as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
