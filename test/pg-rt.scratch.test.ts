// SCRATCH: round trips per batch. Delete when done.
import pg from "pg";
import { it } from "vitest";
import { PostgresStore } from "../src/storage/postgres/store.js";
import type { Write } from "../src/storage/store.js";
it("round trips", async () => {
  const schema = `rt${Date.now().toString(36)}`;
  const s = new PostgresStore(`postgres://postgres@127.0.0.1:5432/postgres?schema=${schema}`);
  await s.migrate();
  const seen: string[] = [];
  const orig = pg.Client.prototype.query;
  (pg.Client.prototype as any).query = function (this: any, q: any, ...rest: any[]) {
    seen.push(typeof q === "string" ? q.slice(0, 20) : q.name ?? q.text.slice(0, 20));
    return (orig as any).call(this, q, ...rest);
  };
  const row = (id: string): any => ({ workflowId: id, status: "PENDING", name: "w", authenticatedUser: null, inputs: null, output: null, error: null, serialization: "default", executorId: "e", appVersion: "v", createdAt: 1, updatedAt: 1, startedAt: null, completedAt: null, recoveryAttempts: 0, queueName: null, priority: 0, deduplicationId: null, partitionKey: null, timeoutMs: null, deadlineEpochMs: null, delayUntilEpochMs: null, parentWorkflowId: null, forkedFrom: null, wasForkedFrom: false });
  const op = (id: string, f: number): any => ({ workflowId: id, functionId: f, functionName: "f", output: "1", error: null, serialization: "default", childWorkflowId: null, startedAt: 1, completedAt: 2 });
  const v = { value: "1", serialization: "default" as const };
  const cases: [string, Write[]][] = [
    ["insert x100", Array.from({ length: 100 }, (_, i) => ({ kind: "insertWorkflow", row: row(`w${i}`), ownerToken: "t" }))],
    ["insert again x100 (conflicts)", Array.from({ length: 100 }, (_, i) => ({ kind: "insertWorkflow", row: row(`w${i}`), ownerToken: "t" }))],
    ["recordOperation x100", Array.from({ length: 100 }, (_, i) => ({ kind: "recordOperation", op: op(`w${i}`, 1) }))],
    ["completeWorkflow x100", Array.from({ length: 100 }, (_, i) => ({ kind: "completeWorkflow", workflowId: `w${i}`, status: "SUCCESS", output: null, error: null, completedAt: 5 }))],
    ["mixed op+stream+event+send+complete", [
      { kind: "recordOperation", op: op("w1", 2) }, { kind: "writeStream", workflowId: "w1", key: "k", functionId: 3, once: true, value: v },
      { kind: "setEvent", workflowId: "w1", key: "k", functionId: 4, value: v }, { kind: "send", messageId: "m", destinationId: "w2", topic: "t", message: v, createdAt: 1 },
      { kind: "completeWorkflow", workflowId: "w1", status: "SUCCESS", output: null, error: null, completedAt: 5 }]],
    ["recv x3", [0, 1, 2].map((i) => ({ kind: "recv", destinationId: "w2", topic: "t", op: op("w2", 10 + i) }))],
  ];
  for (const [label, batch] of cases) {
    seen.length = 0;
    const t = performance.now();
    await s.write(batch);
    console.log(label, (performance.now() - t).toFixed(1) + "ms", seen.length, seen.join(" | "));
  }
  (pg.Client.prototype as any).query = orig;
  await s.close();
  const admin = new pg.Client("postgres://postgres@127.0.0.1:5432/postgres"); await admin.connect();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`); await admin.end();
});
