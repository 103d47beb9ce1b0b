import { it } from "vitest";
import { SqliteStore } from "../src/storage/sqlite/store.js";
it("x", async () => {
  const s = new SqliteStore(":memory:"); await s.migrate();
  const row: any = { workflowId: "A", status: "PENDING", name: "w", authenticatedUser: null, inputs: null, output: null, error: null, serialization: "default", executorId: null, appVersion: null, createdAt: 1, updatedAt: 1, startedAt: null, completedAt: null, recoveryAttempts: 0, queueName: null, priority: 0, deduplicationId: null, partitionKey: null, timeoutMs: null, deadlineEpochMs: null, delayUntilEpochMs: null, parentWorkflowId: null, forkedFrom: null, wasForkedFrom: false };
  await s.write([{ kind: "insertWorkflow", row, ownerToken: "t" }]);
  const v = { value: "x", serialization: "default" as const };
  const st = (s as any).statements;
  console.log(await s.write([ { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, value: v } ]));
  console.log(await s.write([ { kind: "writeStream", workflowId: "A", key: "s", functionId: 11, value: v }, { kind: "writeStream", workflowId: "A", key: "s", functionId: 11, value: v } ]));
  console.log(await s.write([ { kind: "writeStream", workflowId: "A", key: "s", functionId: 12, value: v }, { kind: "writeStream", workflowId: "A", key: "s", functionId: 10, value: v } ]));
  console.log(st.streamByFunction.get("A", "s", 10), st.streamByFunction.source);
  console.log((s as any).db.prepare(st.streamByFunction.source).get("A", "s", 10));
  console.log((s as any).db.prepare(`SELECT "offset" FROM streams WHERE workflow_id = ? AND key = ? AND function_id = ?`).get("A", "s", 10));
  console.log((s as any).db.prepare(`EXPLAIN QUERY PLAN SELECT "offset" FROM streams WHERE workflow_id = ? AND key = ? AND function_id = ?`).all("A", "s", 10));
});
