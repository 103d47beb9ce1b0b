/**
 * The published types (dist/*.d.ts, built by `pretest`) compile in a strict application that has
 * no Node typings and no DOM (lib es2022 alone, no @types/node, no skipLibCheck; with exactOptionalPropertyTypes): a program
 * using the main API (and the reference page's spellings of it) type-checks against them alone.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";

it("an application without @types/node type-checks against duro's published types under strict", () => {
  const dir = mkdtempSync(join(tmpdir(), "duro-types-"));
  try {
    const entry = resolve("dist/index.js");
    writeFileSync(
      join(dir, "app.ts"),
      `import { Duro, DuroClient, WorkflowQueue, InvalidArgumentError, type WorkflowHandle } from ${JSON.stringify(entry)};
const duro = new Duro({ databaseUrl: "sqlite::memory:" });
const charge = duro.registerStep("charge", async (amount: number) => amount * 2, { retriesAllowed: true });
const order = duro.registerWorkflow("order", async (id: string, amount: number) => ({ id, total: await charge(amount) }));
new WorkflowQueue(duro, "orders", { concurrency: 5, rateLimit: { limit: 10, periodSeconds: 1 } });
export async function main(): Promise<number> {
  const h: WorkflowHandle<{ id: string; total: number }> = await duro.startWorkflow(order.with({ queueName: "orders" }), "o1", 5);
  const client = new DuroClient({ databaseUrl: "sqlite::memory:" });
  await client.enqueue({ workflowName: "order", queueName: "orders" }, "o2", 3);
  let sum = 0;
  for await (const value of duro.readStream<number>("o1", "progress")) sum += value;
  return (await h.getResult()).total + sum + InvalidArgumentError.name.length;
}
// The reference page's spellings: positional existingWorkflow, waitFirst's polling option, serializationType.
export async function reference(other: WorkflowHandle<string>): Promise<string> {
  const later = await duro.retrieveWorkflow<number>("later", false);
  const first = await duro.waitFirst([later, other], { pollingIntervalSec: 0.5 });
  await duro.send(first.workflowId, 1, "t", { idempotencyKey: "k", serializationType: "portable" });
  await duro.setEvent("e", 2, { serializationType: "portable" });
  await duro.writeStream("s", 3, { serialization: "default" });
  const result: number | string = await first.getResult();
  return String(result);
}
// Python's None is null: every option, and every options object, may be given as null.
export async function nulls(): Promise<void> {
  const other = new Duro(null);
  const quiet = new Duro({ logger: null, executorId: null, maxRecoveryAttempts: null });
  const bound = order.with(null).with({ queueName: null, priority: null, timeoutSeconds: null });
  await quiet.startWorkflow(bound, "o3", 1);
  await other.retrieveWorkflow("x", null);
  await other.retrieveWorkflow("x", { existingWorkflow: null });
  await duro.setEvent("e", 1, null);
  await duro.writeStream("s", 1, { serialization: null });
  await duro.listWorkflows(null);
  await duro.listQueuedWorkflows({ queueName: null, limit: null });
  await duro.listWorkflowSteps("x", { limit: null, offset: null });
  await duro.forkWorkflow("x", 1, null);
  await duro.send("x", 1, null, { idempotencyKey: null });
  await duro.recv("t", null);
  await duro.getEvent("x", "e", { timeoutSeconds: null });
  await duro.setWorkflowDelay("x", { delaySeconds: 1, delayUntilEpochMs: null });
  await duro.wait([Promise.resolve(1)], { returnWhen: null, timeoutSeconds: null });
  const client = new DuroClient(null);
  await client.listWorkflows(null);
  await client.forkWorkflow("x", 1, { newWorkflowId: null });
}
// Under exactOptionalPropertyTypes an option may still be given as undefined (as from
// process.env), and lists may be readonly.
export async function maybes(url: string | undefined, n: number | undefined, ids: readonly string[]): Promise<void> {
  const other = new Duro({ databaseUrl: url, executorId: url, appVersion: url, logger: undefined });
  await other.startWorkflow(order.with({ queueName: url, priority: n, timeoutSeconds: n }), "o4", 1);
  await other.listWorkflows({ name: url, workflowIds: ids, status: ["SUCCESS", "ERROR"] as const, limit: n });
  await other.cancelWorkflows(ids, { cancelChildren: undefined });
  await other.resumeWorkflows(ids, { queueName: url });
  const batch: readonly [string, number][] = [["o5", 1]];
  await other.enqueueMany(order.with({ queueName: "orders" }), batch);
  await other.wait([Promise.resolve(1)] as const, { timeoutSeconds: n });
  const client = new DuroClient({ databaseUrl: url, poolSize: n });
  await client.enqueueMany({ workflowName: "order", queueName: "orders", priority: n }, batch);
  new WorkflowQueue(other, "maybe", { concurrency: n, rateLimit: undefined });
  other.registerStep("maybe", async () => 1, { retriesAllowed: undefined, maxAttempts: n });
}
`,
    );
    const compilerOptions = {
      noEmit: true, strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
      target: "es2022", lib: ["es2022"], module: "nodenext", moduleResolution: "nodenext", types: [],
    };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["app.ts"] }));
    /** tsc's report: empty when the program type-checks. */
    const check = (): string => {
      try {
        execFileSync(process.execPath, [resolve("node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" });
        return "";
      } catch (error) {
        return String((error as { stdout?: string }).stdout);
      }
    };
    expect(check()).toBe("");
    // The check has teeth: a type error in the program is reported.
    writeFileSync(join(dir, "app.ts"), `import { Duro } from ${JSON.stringify(entry)};\nexport const n: number = new Duro().workflowId;\n`);
    expect(check()).toMatch(/app\.ts.*error TS2322/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
