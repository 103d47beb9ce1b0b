/**
 * Batch writes for PostgreSQL (their SQL is in write-sql.ts). Round trips are the cost, so each
 * kind present in a batch is one multi-row statement over `unnest`ed arrays (recv: one per
 * write, since each takes a message the previous one may have taken). Rows a statement refused
 * are read back only when there are any.
 *
 * Every main statement also carries the batch's NOTIFY (`$1` channel, `$2` payloads): the first
 * one sent gets the payloads, the rest an empty array. So a batch of one kind is a single
 * autocommitted statement, and so is the mix a busy executor commits most (steps' records and
 * outcomes, perhaps with a claim riding along); any other mixed batch is BEGIN, one statement
 * per kind, COMMIT.
 *
 * A batch of one write (a lone workflow's step, start or outcome) takes a one-row statement
 * instead: no arrays to unnest, and a plan PostgreSQL can cache, which halves its cost.
 */
import type pg from "pg";
import { isClaimed, OPERATION_COLUMNS, operationParams, toOperationRow, toWorkflowRow, WORKFLOW_COLUMNS, workflowParams } from "../sql.js";
import { escapeWakeKey, refusalOf, wakeKeysOf, WRITE_ORDER, type Claimed, type ClaimRequest, type OperationRow, type StoredValue, type WorkflowRow, type Write, type WriteResult } from "../store.js";
import { claimedRows, claimTokenOf, takenBefore } from "./claims.js";
import { transaction } from "./connection.js";
import { COMPLETE_COLUMNS, type WriteSql } from "./write-sql.js";

type Kind = Write["kind"];
type Item<K extends Kind> = { i: number; w: Extract<Write, { kind: K }> };

/** pg_notify refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7000;

/** Rows of parameters to the parameters of `rowsOf` (write-sql.ts). The first column is always sent whole: it gives the row count. */
function columnsOf(rows: unknown[][], width: number): unknown[] {
  const params: unknown[] = [rows.length];
  for (let c = 0; c < width; c++) {
    const first = rows[0][c];
    if (c > 0 && rows.every((r) => r[c] === first)) params.push(null, first);
    else params.push(rows.map((r) => r[c]), null);
  }
  return params;
}
const keyOf = (...parts: unknown[]) => parts.join("\u0000");

/**
 * A batch enqueue that must go in whole is first tried as a plain INSERT: a row refused by a
 * unique index (its ID, or its queue's deduplication ID) fails the statement and so undoes it.
 * Without ON CONFLICT each row skips the speculative insertion, a tenth of the statement's cost.
 */
const isRefusal = (error: unknown) =>
  (error as { code?: string })?.code === "23505" && (error as { table?: string }).table === "workflow_status";

/** A claim request as the parameters of claimFreeSql: queue, now, max, names, version, executor, token, liveSince. */
const claimParams = (r: ClaimRequest, max: number) => [r.queueName, r.now, max, r.workflowNames, r.appVersion, r.executorId, claimTokenOf(r), r.liveSince];

/** The result of a claim statement's `promoted`, `next_delayed` and `claimed` columns, after the rows `before` it. */
function claimedOf(row: Record<string, any>, max: number, before: Claimed["claimed"]): WriteResult {
  const claimed = [...before, ...claimedRows(row.claimed)];
  // Work may be left when the claim took all it could, or promoted DELAYED rows (claimable by the next claim).
  const moreQueued = claimed.length >= max || Number(row.promoted) > 0;
  return { kind: "claimQueued", claimed, nextDelayedAt: row.next_delayed === null ? null : Number(row.next_delayed), moreQueued };
}

/** Two writers took the same stream offset; the batch can simply run again. */
export const isStreamConflict = (error: unknown) =>
  (error as { code?: string; constraint?: string })?.code === "23505" && (error as { constraint?: string }).constraint === "streams_pkey";

/** The batch's wake keys, deduplicated and packed into NOTIFY payloads joined by "\n". */
export const packPayloads = (batch: Write[]): string[] => packKeys(batch.flatMap(wakeKeysOf));

/** Wake keys, deduplicated and packed into NOTIFY payloads joined by "\n". */
export function packKeys(keys: string[]): string[] {
  const payloads: string[] = [];
  let current = "";
  let bytes = 0;
  for (const key of new Set(keys.map(escapeWakeKey))) {
    const size = Buffer.byteLength(key);
    // A key too long to send goes as an empty payload, which listeners read as "re-check everything".
    if (size > MAX_PAYLOAD_BYTES) {
      payloads.push("");
      continue;
    }
    if (current && bytes + 1 + size <= MAX_PAYLOAD_BYTES) {
      current += `\n${key}`;
      bytes += 1 + size;
    } else {
      if (current) payloads.push(current);
      current = key;
      bytes = size;
    }
  }
  if (current) payloads.push(current);
  return [...new Set(payloads)];
}

/**
 * Applies one batch on `client`; results come back in the batch's order. With `allOrNothing`, an
 * insert refused (see refusalOf) rolls the batch back and throws that refusal.
 * `again`: the batch was sent before and its fate is unknown (see claimedBefore).
 */
export async function applyBatch(
  client: pg.PoolClient, sql: WriteSql, channel: string, batch: Write[], allOrNothing = false, again = false,
): Promise<WriteResult[]> {
  const results: WriteResult[] = new Array(batch.length);
  let orFail = false;
  const groups = new Map<Kind, Item<Kind>[]>();
  batch.forEach((w, i) => {
    const group = groups.get(w.kind);
    if (group) group.push({ i, w });
    else groups.set(w.kind, [{ i, w }]);
  });
  const of = <K extends Kind>(kind: K) => groups.get(kind) as Item<K>[] | undefined;

  let payloads = packPayloads(batch);
  const main = async (name: keyof WriteSql, values: unknown[]) => {
    const { rows } = await client.query({ name: `duro_${name}`, text: sql[name], values: [channel, payloads, ...values] });
    payloads = [];
    return rows[0] as Record<string, any>;
  };
  const read = async (name: keyof WriteSql, values: unknown[]) =>
    (await client.query({ name: `duro_${name}`, text: sql[name], values })).rows as Record<string, any>[];
  // A lone write whose wake keys fit one NOTIFY payload takes its kind's one-row statement.
  const lone = batch.length === 1 && payloads.length <= 1;
  const one = async (name: "insertOne" | "insertClaimOne" | "recordOne" | "completeOne", values: unknown[]) =>
    read(name, name === "recordOne" ? values : [channel, payloads[0] ?? "", ...values]);

  // Outcomes, with other workflows' records and one claim riding along: a single statement, which
  // claims the slots the outcomes free. Records written after a cancel take their own statement.
  const riding = (kind: Kind) =>
    kind === "completeWorkflow" || (kind === "recordOperation" && !of(kind)!.some(({ w }) => w.afterCancel)) || (kind === "claimQueued" && of(kind)!.length === 1);
  const combined = !lone && groups.has("completeWorkflow") && [...groups.keys()].every(riding);
  let outcomesDone: Set<string> | undefined;
  // UPDATE … FROM applies an arbitrary one of several rows for a target: only the first completion of each workflow is sent.
  const firstCompletions = new Map<string, Item<"completeWorkflow">>();
  for (const item of of("completeWorkflow") ?? []) if (!firstCompletions.has(item.w.workflowId)) firstCompletions.set(item.w.workflowId, item);
  const completionParams = (w: Extract<Write, { kind: "completeWorkflow" }>) => [w.workflowId, w.status, w.output, w.error, w.completedAt, w.executorId];
  /** The combined statement, with the records' parameters if there are any. */
  const outcomes = async (recordParams?: unknown[][]) => {
    const claim = of("claimQueued")?.[0];
    const before = claim && again ? await takenBefore(client, sql, claimTokenOf(claim.w.request), claim.w.request.executorId) : [];
    const name = recordParams ? (claim ? "recordCompleteAndClaim" : "recordAndComplete") : claim ? "completeAndClaim" : "completeWorkflows";
    const completions = [...firstCompletions.values()].map(({ w }) => completionParams(w));
    const back = await main(name, [
      ...(recordParams ? columnsOf(recordParams, OPERATION_COLUMNS.length + 1) : []), ...columnsOf(completions, COMPLETE_COLUMNS.length),
      ...(claim ? claimParams(claim.w.request, claim.w.request.max - before.length) : []),
    ]);
    if (claim) results[claim.i] = claimedOf(back, claim.w.request.max, before);
    outcomesDone = new Set(back.done ?? []);
    return back;
  };
  const apply: { [K in Kind]: (items: Item<K>[]) => Promise<void> } = {
    claimQueued,
    async insertWorkflow(items) {
      const params = (row: WorkflowRow, w: Write & { kind: "insertWorkflow" }) => workflowParams(row, w.ownerToken, (b) => b);
      let ours = new Set<string>();
      if (lone) {
        // Only a lone insert takes its claimed form: the batch statement always queues.
        const { i, w } = items[0];
        const back = w.claimed ? await one("insertClaimOne", [...params(w.row, w), ...params(w.claimed, w)]) : await one("insertOne", params(w.row, w));
        if (back.length) {
          results[i] = { kind: "insertWorkflow", inserted: true, claimed: back[0].status === "PENDING" };
          return;
        }
      } else {
        const back = await main(orFail ? "insertWorkflowsOrFail" : "insertWorkflows", columnsOf(items.map(({ w }) => params(w.row, w)), WORKFLOW_COLUMNS.length));
        if (back.inserted === items.length) {
          for (const { i } of items) results[i] = { kind: "insertWorkflow", inserted: true, claimed: false };
          return;
        }
        ours = new Set((back.rows ?? []).map((r: any) => keyOf(r.workflow_id, r.owner_token)));
      }
      const refused = items.filter(({ i, w }) => {
        if (!ours.has(keyOf(w.row.workflowId, w.ownerToken))) return true;
        results[i] = { kind: "insertWorkflow", inserted: true, claimed: false };
        return false;
      });
      if (!refused.length) return;
      const holders = new Map(
        (await read("workflowsById", [refused.map(({ w }) => w.row.workflowId)])).map((r) => [r.workflow_id as string, r]),
      );
      for (const { i, w } of refused) {
        const existing = holders.get(w.row.workflowId);
        // Our own token: a retried batch whose first commit went through.
        results[i] = existing?.owner_token === w.ownerToken
          ? { kind: "insertWorkflow", inserted: true, claimed: isClaimed(w, existing) }
          : { kind: "insertWorkflow", inserted: false, existing: existing ? toWorkflowRow(existing) : null };
      }
      if (!allOrNothing) return;
      for (const { i, w } of items) {
        const refusal = refusalOf(w.row, results[i]);
        if (refusal) throw refusal;
      }
    },

    async recordOperation(all) {
      // Rare (a cancel came while the operation ran): one statement each.
      for (const { i, w } of all.filter(({ w }) => w.afterCancel)) {
        const back = await read("recordAfterCancel", [...operationParams(w.op), w.executorId]);
        results[i] = back.length ? { kind: "recordOperation", recorded: true } : { kind: "recordOperation", recorded: false, existing: null };
      }
      const items = all.filter(({ w }) => !w.afterCancel);
      if (!items.length) return;
      const params = items.map(({ w }) => [...operationParams(w.op), w.executorId]);
      const back = lone && items.length === 1
        ? { inserted: (await one("recordOne", params[0])).length }
        : combined ? await outcomes(params) : await main("recordOperations", columnsOf(params, OPERATION_COLUMNS.length + 1));
      if (back.inserted === items.length) {
        for (const { i } of items) results[i] = { kind: "recordOperation", recorded: true };
        return;
      }
      const recorded = new Set(((back.rows ?? []) as any[]).map((r) => keyOf(r.workflow_id, r.function_id)));
      // delete(): of several writes to one operation only the first recorded it.
      const refused = items.filter(({ i, w }) => {
        if (!recorded.delete(keyOf(w.op.workflowId, w.op.functionId))) return true;
        results[i] = { kind: "recordOperation", recorded: true };
        return false;
      });
      if (!refused.length) return;
      const existing = await readOperations(refused.map(({ w }) => w.op));
      // Fenced off (not PENDING here) whoever recorded the operation: a run left here after a takeover stops, not adopts.
      const owners = new Map((await read("pendingOwners", [refused.map(({ w }) => w.op.workflowId)])).map((r) => [r.workflow_id, r.executor_id]));
      for (const { i, w } of refused) {
        const owned = owners.get(w.op.workflowId) === w.executorId;
        results[i] = { kind: "recordOperation", recorded: false, existing: owned ? existing(w.op.workflowId, w.op.functionId) ?? null : null };
      }
    },

    async send(items) {
      const row = await main("sends", [
        items.map(({ w }) => w.messageId), items.map(({ w }) => w.destinationId), items.map(({ w }) => w.topic),
        items.map(({ w }) => w.message.value), items.map(({ w }) => w.message.serialization), items.map(({ w }) => w.createdAt),
      ]);
      const delivered = new Set<string>(row.delivered ?? []);
      const missing = new Set<string>(row.missing ?? []);
      for (const { i, w } of items) {
        results[i] = missing.has(w.destinationId)
          ? { kind: "send", delivered: false, destinationExists: false }
          : { kind: "send", delivered: delivered.delete(w.messageId), destinationExists: true };
      }
    },

    async recv(items) {
      for (const { i, w } of items) {
        const { op } = w;
        const row = await main("recv", [
          op.workflowId, op.functionId, w.destinationId, w.topic, op.functionName, op.error, op.childWorkflowId, op.startedAt, op.completedAt,
          w.executorId, ...(w.deadline ? [w.deadline.functionId, w.deadline.functionName, w.deadline.output, w.deadline.serialization, w.deadline.startedAt] : [null, null, null, null, null]),
        ]);
        if (row.existing) results[i] = { kind: "recv", message: null, existing: toOperationRow(row.existing), fenced: false };
        else if (!row.owned) results[i] = { kind: "recv", message: null, existing: null, fenced: true };
        else if (!row.message) results[i] = { kind: "recv", message: null, existing: null, fenced: false };
        else if (row.inserted) {
          const message = { value: row.message.message, serialization: row.message.serialization } as StoredValue;
          results[i] = { kind: "recv", message, existing: null, fenced: false };
        } else {
          // A concurrent run recorded this operation between our snapshot and our insert.
          results[i] = { kind: "recv", message: null, existing: (await readOperations([op]))(op.workflowId, op.functionId) ?? null, fenced: false };
        }
      }
    },

    async setEvent(items) {
      // One upsert per event, and per event and operation in its history (a step that sets a key
      // twice, or runs again, leaves its last value): ON CONFLICT DO UPDATE cannot touch a row twice.
      const latest = [...new Map(items.map(({ w }) => [keyOf(w.workflowId, w.key), w])).values()];
      const history = [...new Map(items.map(({ w }) => [keyOf(w.workflowId, w.functionId, w.key), w])).values()];
      await main("setEvents", [
        latest.map((w) => w.workflowId), latest.map((w) => w.key), latest.map((w) => w.value.value), latest.map((w) => w.value.serialization),
        history.map((w) => w.workflowId), history.map((w) => w.functionId), history.map((w) => w.key),
        history.map((w) => w.value.value), history.map((w) => w.value.serialization),
      ]);
      for (const { i } of items) results[i] = { kind: "setEvent" };
    },

    async writeStream(items) {
      const row = await main("writeStreams", [
        items.map(({ w }) => w.workflowId), items.map(({ w }) => w.key), items.map(({ w }) => w.functionId), items.map(({ w }) => w.once),
        items.map(({ w }) => w.value?.value ?? null), items.map(({ w }) => w.value?.serialization ?? null),
      ]);
      // Ordinals count from 1.
      for (const [ord, offset] of row.offsets as [number, number][]) results[items[ord - 1].i] = { kind: "writeStream", offset };
    },

    async completeWorkflow(items) {
      if (!outcomesDone && lone) {
        const { w } = items[0];
        const back = await one("completeOne", completionParams(w));
        outcomesDone = new Set(back.length ? [w.workflowId] : []);
      } else if (!outcomesDone) await outcomes();
      for (const item of items) {
        results[item.i] = { kind: "completeWorkflow", completed: firstCompletions.get(item.w.workflowId) === item && outcomesDone!.has(item.w.workflowId) };
      }
    },
  };

  async function claimQueued(items: Item<"claimQueued">[]) {
    for (const { i, w } of items) {
      if (results[i]) continue;
      const before = again ? await takenBefore(client, sql, claimTokenOf(w.request), w.request.executorId) : [];
      results[i] = claimedOf(await main("claimInBatch", claimParams(w.request, w.request.max - before.length)), w.request.max, before);
    }
  }

  async function readOperations(keys: { workflowId: string; functionId: number }[]) {
    const rows = await read("operationsByKey", [keys.map((k) => k.workflowId), keys.map((k) => k.functionId)]);
    const byKey = new Map(rows.map((r) => [keyOf(r.workflow_id, r.function_id), toOperationRow(r)]));
    // No row: the write was fenced off (the workflow is no longer PENDING on the writing executor).
    return (workflowId: string, functionId: number): OperationRow | undefined => byKey.get(keyOf(workflowId, functionId));
  }

  const kinds = WRITE_ORDER.filter((kind) => groups.has(kind));
  const run = async () => {
    for (const kind of kinds) await (apply[kind] as (items: Item<Kind>[]) => Promise<void>)(of(kind)!);
  };
  // One statement commits on its own; reading back refused rows afterwards sees what it would
  // have seen inside a transaction (read committed).
  const oneStatement = combined || (kinds.length === 1 && !(kinds[0] === "recv" && of("recv")!.length > 1));
  if (oneStatement && !(allOrNothing && batch.length > 1)) await run();
  else if (oneStatement && kinds[0] === "insertWorkflow") {
    // A batch enqueue, all or nothing, in one statement that fails if any row is refused; only
    // then does it run again in a transaction, which finds out which rows and why.
    orFail = true;
    try {
      await run();
    } catch (error) {
      if (!isRefusal(error)) throw error;
      orFail = false;
      await transaction(client, run);
    }
  } else await transaction(client, run);
  return results;
}
