/**
 * Batch writes for PostgreSQL. Round trips are the cost, so each kind present in a batch is one
 * multi-row statement over `unnest`ed arrays (recv: one per write, since each takes a message the
 * previous one may have taken). Rows a statement refused are read back only when there are any.
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
import { DuplicateWorkflowError } from "../../errors.js";
import { isClaimed, OPERATION_COLUMNS, operationParams, toOperationRow, toWorkflowRow, WORKFLOW_COLUMNS, workflowParams } from "../sql.js";
import { wakeKeysOf, WRITE_ORDER, type Claimed, type ClaimRequest, type OperationRow, type StoredValue, type WorkflowRow, type Write, type WriteResult } from "../store.js";
import { claimedRows, claimTokenOf, takenBefore } from "./claims.js";
import { transaction } from "./connection.js";
import { claimedBySql, claimFreeSql } from "./queries.js";

type Kind = Write["kind"];
type Item<K extends Kind> = { i: number; w: Extract<Write, { kind: K }> };

/** pg_notify refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7000;

const BIGINT_COLUMNS = new Set([
  "created_at", "updated_at", "started_at", "completed_at", "timeout_ms", "deadline_epoch_ms", "delay_until_epoch_ms",
]);
const INT_COLUMNS = new Set(["recovery_attempts", "priority", "function_id"]);
const sqlType = (column: string) =>
  BIGINT_COLUMNS.has(column) ? "bigint" : INT_COLUMNS.has(column) ? "int" : column === "was_forked_from" ? "boolean" : "text";
/**
 * A batch's rows as a FROM item (to alias) with columns `names` and `ord`, bound from `$first` on
 * by `columnsOf`: the row count, then two parameters per column — its values as an array, or,
 * when every row has the same value, null and that value. A batch so sends and parses only the
 * columns that vary (of a 1,000-workflow enqueue's 26, about five), and PostgreSQL unnests only
 * those: a null array adds nothing to `unnest`, whose rows the first column (always an array)
 * sets, and the value stands in for it. Repeating the value into an array instead (`array_fill`)
 * made a 1,000-row enqueue's statement take 14–16 ms instead of 12–13.
 */
const rowsOf = (columns: readonly string[], names: readonly string[], first: number) => {
  const vary = columns.map((c, n) => `$${first + 1 + 2 * n}::${sqlType(c)}[]`).join(", ");
  const pick = columns.map((c, n) => `COALESCE(u.c${n}, $${first + 2 + 2 * n}::${sqlType(c)}) AS ${names[n]}`).join(", ");
  // The filter holds for every row; it gives `$first` the type a statement that does not use it otherwise needs.
  return `(SELECT ${pick}, u.ord FROM unnest(${vary}) WITH ORDINALITY AS u(${columns.map((_, n) => `c${n}`).join(", ")}, ord) WHERE u.ord <= $${first}::int)`;
};
/** Rows of parameters to the parameters of `rowsOf`. The first column is always sent whole: it gives the row count. */
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
const COMPLETE_COLUMNS = ["workflow_id", "status", "output", "error", "completed_at", "executor_id"];

const NOTIFIED = `notified AS (SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p)`;
/** `$first::type, …` over the given columns. */
const casts = (columns: readonly string[], first: number) => columns.map((c, n) => `$${first + n}::${sqlType(c)}`).join(", ");
/**
 * Fencing: `w` is the workflow `id`, still PENDING on executor `owner`. `IS NOT DISTINCT FROM`
 * (the same as `=` here: the row's status is never null, nor is `owner`) neither serves an index
 * nor implies a partial index's predicate, so the only way to the row is the primary key. With
 * `=`, a cached generic plan can pick the index of PENDING rows and read all of them each time.
 */
const owned = (w: string, id: string, owner: string) =>
  `${w}.workflow_id = ${id} AND ${w}.status IS NOT DISTINCT FROM 'PENDING' AND ${w}.executor_id IS NOT DISTINCT FROM ${owner}`;
// A scalar subquery of a FROM-less SELECT always runs, so the NOTIFY is sent whatever the write did.
const COUNT_NOTIFIED = `(SELECT count(*) FROM notified) AS notified`;
// What CTE `ins` inserted, of the `$3` rows `unnest` gave: the rows themselves only when some are missing.
const INSERTED = `(SELECT count(*) FROM ins) AS inserted, CASE WHEN (SELECT count(*) FROM ins) < $3 THEN (SELECT json_agg(ins) FROM ins) END AS rows`;

/**
 * A batch enqueue that must go in whole is first tried as a plain INSERT: a row refused by a
 * unique index (its ID, or its queue's deduplication ID) fails the statement and so undoes it.
 * Without ON CONFLICT each row skips the speculative insertion, a tenth of the statement's cost.
 */
const isRefusal = (error: unknown) =>
  (error as { code?: string })?.code === "23505" && (error as { table?: string }).table === "workflow_status";

export function writeSql(schema: string) {
  const ws = `${schema}.workflow_status`;
  const ops = `${schema}.operation_outputs`;
  const messages = `${schema}.notifications`;
  const streams = `${schema}.streams`;
  const wfCols = WORKFLOW_COLUMNS.join(", ");
  const opCols = OPERATION_COLUMNS.join(", ");
  const insertWorkflows = (tail: string, results: string) => `WITH ${NOTIFIED},
      ins AS (
        INSERT INTO ${ws} (${wfCols})
        SELECT ${wfCols} FROM ${rowsOf(WORKFLOW_COLUMNS, WORKFLOW_COLUMNS, 3)} AS i ORDER BY ord
        ${tail})
      SELECT ${COUNT_NOTIFIED}, ${results}`;
  // The outcomes of the rows from `$first`, each only while its workflow is PENDING on the writing executor.
  const doneAt = (first: number) => `done AS (
        UPDATE ${ws} w SET status = i.status, output = i.output, error = i.error, completed_at = i.completed_at,
          updated_at = i.completed_at, deduplication_id = NULL
        FROM ${rowsOf(COMPLETE_COLUMNS, [...COMPLETE_COLUMNS.slice(0, -1), "owner"], first)} AS i
        WHERE ${owned("w", "i.workflow_id", "i.owner")}
        RETURNING w.workflow_id)`;
  const done = doneAt(3);
  const REC_COLUMNS = [...OPERATION_COLUMNS, "executor_id"];
  // Records from `$3`: CTE `ins` inserts them (those of a workflow still PENDING on the writer) from `rec`.
  const records = `rec AS (SELECT * FROM ${rowsOf(REC_COLUMNS, [...OPERATION_COLUMNS, "owner"], 3)} AS i),
      ins AS (
        INSERT INTO ${ops} (${opCols})
        SELECT ${opCols} FROM rec i
        WHERE EXISTS (SELECT 1 FROM ${ws} w WHERE ${owned("w", "i.workflow_id", "i.owner")})
        ORDER BY ord
        ON CONFLICT DO NOTHING RETURNING workflow_id, function_id)`;
  const afterRecords = 4 + 2 * REC_COLUMNS.length;
  /** A claim whose parameters start at `$first`: queue, now, max, names, version, executor, token, liveSince. */
  const claimParts = (first: number) => {
    const [queue, now, max, names, version, executor, token, liveSince] = Array.from({ length: 8 }, (_, n) => `$${first + n}`);
    return claimFreeSql(schema, { queue, now, max, names, version, executor, token, liveSince });
  };
  const claimAlone = claimParts(3);
  const claimAfterCompletions = claimParts(4 + 2 * COMPLETE_COLUMNS.length);
  const claimAfterRecords = claimParts(afterRecords + 1 + 2 * COMPLETE_COLUMNS.length);
  return {
    // One-row statements ($2: the batch's one NOTIFY payload).
    insertOne: `WITH notified AS (SELECT pg_notify($1, $2))
      INSERT INTO ${ws} (${wfCols}) SELECT ${casts(WORKFLOW_COLUMNS, 3)} FROM notified ON CONFLICT DO NOTHING RETURNING 1`,
    // The queued row ($3…) if another workflow of its queue is ENQUEUED, else its claimed form ($29…).
    insertClaimOne: `WITH notified AS (SELECT pg_notify($1, $2)),
      queue AS (SELECT EXISTS (
        SELECT 1 FROM ${ws} WHERE queue_name = $${3 + WORKFLOW_COLUMNS.indexOf("queue_name")}::text AND status = 'ENQUEUED') AS waiting FROM notified)
      INSERT INTO ${ws} (${wfCols})
      SELECT ${casts(WORKFLOW_COLUMNS, 3)} FROM queue WHERE waiting
      UNION ALL SELECT ${casts(WORKFLOW_COLUMNS, 3 + WORKFLOW_COLUMNS.length)} FROM queue WHERE NOT waiting
      ON CONFLICT DO NOTHING RETURNING status`,
    recordOne: `INSERT INTO ${ops} (${opCols}) SELECT ${casts(OPERATION_COLUMNS, 1)}
      WHERE EXISTS (SELECT 1 FROM ${ws} w WHERE ${owned("w", "$1::text", "$10::text")}) ON CONFLICT DO NOTHING RETURNING 1`,
    recordAfterCancel: `INSERT INTO ${ops} (${opCols}) SELECT ${casts(OPERATION_COLUMNS, 1)}
      WHERE EXISTS (SELECT 1 FROM ${ws} w WHERE w.workflow_id = $1::text
        AND (w.status IN ('PENDING', 'CANCELLED') AND w.executor_id = $10::text OR w.status = 'ENQUEUED' AND w.executor_id IS NULL))
      ON CONFLICT DO NOTHING RETURNING 1`,
    completeOne: `WITH notified AS (SELECT pg_notify($1, $2))
      UPDATE ${ws} w SET status = $4, output = $5, error = $6, completed_at = $7, updated_at = $7, deduplication_id = NULL
      FROM notified WHERE ${owned("w", "$3::text", "$8::text")} RETURNING 1`,
    insertWorkflows: insertWorkflows("ON CONFLICT DO NOTHING RETURNING workflow_id, owner_token", INSERTED),
    insertWorkflowsOrFail: insertWorkflows("RETURNING 1", "(SELECT count(*) FROM ins) AS inserted"),
    workflowsById: `SELECT ${wfCols} FROM ${ws} WHERE workflow_id = ANY($1::text[])`,
    pendingOwners: `SELECT workflow_id, executor_id FROM ${ws} WHERE workflow_id = ANY($1::text[]) AND status = 'PENDING'`,
    recordOperations: `WITH ${NOTIFIED}, ${records} SELECT ${COUNT_NOTIFIED}, ${INSERTED}`,
    // Records and outcomes (of other workflows: a workflow's outcome follows its last record's
    // commit), then perhaps a claim for the slots the outcomes free, in one statement.
    recordAndComplete: `WITH ${NOTIFIED}, ${records}, ${doneAt(afterRecords)}
      SELECT ${COUNT_NOTIFIED}, ${INSERTED}, (SELECT json_agg(workflow_id) FROM done) AS done`,
    recordCompleteAndClaim: `WITH ${NOTIFIED}, ${records}, ${doneAt(afterRecords)}, ${claimAfterRecords.ctes}
      SELECT ${COUNT_NOTIFIED}, ${INSERTED}, (SELECT json_agg(workflow_id) FROM done) AS done, ${claimAfterRecords.results}`,
    operationsByKey: `SELECT ${opCols} FROM ${ops} WHERE (workflow_id, function_id) IN (SELECT * FROM unnest($1::text[], $2::int[]))`,
    sends: `WITH ${NOTIFIED},
      i AS (
        SELECT i.*, EXISTS (SELECT 1 FROM ${ws} w WHERE w.workflow_id = i.destination_id) AS known
        FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
          WITH ORDINALITY AS i(message_id, destination_id, topic, message, serialization, created_at, ord)),
      ins AS (
        INSERT INTO ${messages} (message_id, destination_id, topic, message, serialization, created_at)
        SELECT message_id, destination_id, topic, message, serialization, created_at FROM i WHERE known ORDER BY ord
        ON CONFLICT (message_id) DO NOTHING RETURNING message_id)
      SELECT ${COUNT_NOTIFIED}, (SELECT json_agg(message_id) FROM ins) AS delivered,
        (SELECT json_agg(destination_id) FROM i WHERE NOT known) AS missing`,
    // The message is consumed only if our record of it went in: when a concurrent run of the
    // same workflow recorded this operation first, the message stays for whoever asks next.
    recv: `WITH ${NOTIFIED},
      rec AS (SELECT ${opCols} FROM ${ops} WHERE workflow_id = $3::text AND function_id = $4::int),
      owned AS (SELECT 1 FROM ${ws} w WHERE ${owned("w", "$3::text", "$12::text")}),
      msg AS MATERIALIZED (
        SELECT seq, message, serialization FROM ${messages}
        WHERE destination_id = $5::text AND topic = $6::text AND NOT consumed AND NOT EXISTS (SELECT 1 FROM rec) AND EXISTS (SELECT 1 FROM owned)
        ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED),
      ins AS (
        INSERT INTO ${ops} (${opCols})
        SELECT $3::text, $4::int, $7::text, msg.message, $8::text, msg.serialization, $9::text, $10::bigint, $11::bigint FROM msg
        ON CONFLICT DO NOTHING RETURNING 1),
      deadline AS (
        INSERT INTO ${ops} (${opCols})
        SELECT $3::text, $13::int, $14::text, $15::text, NULL, $16::text, NULL, $17::bigint, $17::bigint
        WHERE $13::int IS NOT NULL AND EXISTS (SELECT 1 FROM owned) AND NOT EXISTS (SELECT 1 FROM rec)
        ON CONFLICT DO NOTHING),
      taken AS (UPDATE ${messages} SET consumed = TRUE WHERE seq = (SELECT seq FROM msg) AND EXISTS (SELECT 1 FROM ins))
      SELECT ${COUNT_NOTIFIED}, (SELECT row_to_json(rec) FROM rec) AS existing, (SELECT row_to_json(msg) FROM msg) AS message,
        EXISTS (SELECT 1 FROM ins) AS inserted, EXISTS (SELECT 1 FROM owned) AS owned`,
    setEvents: `WITH ${NOTIFIED},
      latest AS (
        INSERT INTO ${schema}.workflow_events (workflow_id, key, value, serialization)
        SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
        ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, serialization = excluded.serialization),
      history AS (
        INSERT INTO ${schema}.workflow_events_history (workflow_id, function_id, key, value, serialization)
        SELECT workflow_id, function_id, key, value, serialization
        FROM unnest($7::text[], $8::int[], $9::text[], $10::text[], $11::text[]) WITH ORDINALITY AS i(workflow_id, function_id, key, value, serialization, ord)
        ORDER BY ord
        ON CONFLICT DO NOTHING)
      SELECT ${COUNT_NOTIFIED}`,
    // A `once` write already on disk (`done`) or made earlier in this batch (`first`) is not
    // written again; the rest append after the stream's last offset, in the batch's order.
    // No lock: two writers that pick the same offset collide on the primary key, and the loser
    // retries the batch (see isStreamConflict).
    writeStreams: `WITH ${NOTIFIED},
      i AS (
        SELECT i.*, CASE WHEN once THEN (
          SELECT min(s."offset") FROM ${streams} s WHERE s.workflow_id = i.workflow_id AND s.key = i.key AND s.function_id = i.function_id) END AS done
        FROM unnest($3::text[], $4::text[], $5::int[], $6::boolean[], $7::text[], $8::text[])
          WITH ORDINALITY AS i(workflow_id, key, function_id, once, value, serialization, ord)),
      pending AS (SELECT *, min(ord) OVER (PARTITION BY workflow_id, key, function_id) AS first FROM i WHERE done IS NULL),
      appended AS (
        SELECT p.*, COALESCE((SELECT max(s."offset") FROM ${streams} s WHERE s.workflow_id = p.workflow_id AND s.key = p.key), -1)
          + row_number() OVER (PARTITION BY workflow_id, key ORDER BY ord) AS "offset"
        FROM pending p WHERE NOT once OR ord = first),
      ins AS (
        INSERT INTO ${streams} (workflow_id, key, "offset", function_id, value, serialization)
        SELECT workflow_id, key, "offset", function_id, value, serialization FROM appended)
      SELECT ${COUNT_NOTIFIED}, (SELECT json_agg(json_build_array(ord, "offset")) FROM (
        SELECT ord, done AS "offset" FROM i WHERE done IS NOT NULL
        UNION ALL SELECT ord, "offset" FROM appended
        UNION ALL SELECT p.ord, a."offset" FROM pending p JOIN appended a ON a.ord = p.first WHERE p.once AND p.ord <> p.first) r) AS offsets`,
    completeWorkflows: `WITH ${NOTIFIED}, ${done} SELECT ${COUNT_NOTIFIED}, (SELECT json_agg(workflow_id) FROM done) AS rows`,
    // Completions, then a claim for the slots they free ($16…), in one statement (see applyBatch).
    completeAndClaim: `WITH ${NOTIFIED}, ${done}, ${claimAfterCompletions.ctes}
      SELECT ${COUNT_NOTIFIED}, (SELECT json_agg(workflow_id) FROM done) AS rows, ${claimAfterCompletions.results}`,
    // A claim in a batch of other kinds ($1, $2: the NOTIFY, sent by the batch's first statement).
    claimInBatch: `WITH ${NOTIFIED}, ${claimAlone.ctes} SELECT ${COUNT_NOTIFIED}, ${claimAlone.results}`,
    claimedBy: claimedBySql(schema),
  };
}

export type WriteSql = ReturnType<typeof writeSql>;

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
  for (const key of new Set(keys)) {
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
 * insert refused by deduplication rolls the batch back and throws DuplicateWorkflowError.
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

  // Completions and one claim: a single statement claims the slots the completions free.
  const joint = groups.size === 2 && groups.has("completeWorkflow") && groups.get("claimQueued")?.length === 1;
  // Records and completions (and perhaps one claim): a single statement too.
  const combined = !lone && groups.has("recordOperation") && groups.has("completeWorkflow") && !of("recordOperation")!.some(({ w }) => w.afterCancel) &&
    (groups.size === 2 || (groups.size === 3 && groups.get("claimQueued")?.length === 1));
  let combinedDone: Set<string> | undefined;
  // UPDATE … FROM applies an arbitrary one of several rows for a target: only the first completion of each workflow is sent.
  const firstCompletions = (items: Item<"completeWorkflow">[]) => {
    const first = new Map<string, Item<"completeWorkflow">>();
    for (const item of items) if (!first.has(item.w.workflowId)) first.set(item.w.workflowId, item);
    return first;
  };
  const completionRows = (sent: Item<"completeWorkflow">[]) =>
    columnsOf(sent.map(({ w }) => [w.workflowId, w.status, w.output, w.error, w.completedAt, w.executorId]), COMPLETE_COLUMNS.length);
  const recordAndComplete = async (recordParams: unknown[][]) => {
    const claim = of("claimQueued")?.[0];
    const before = claim && again ? await takenBefore(client, sql, claimTokenOf(claim.w.request), claim.w.request.executorId) : [];
    const back = await main(claim ? "recordCompleteAndClaim" : "recordAndComplete", [
      ...columnsOf(recordParams, OPERATION_COLUMNS.length + 1), ...completionRows([...firstCompletions(of("completeWorkflow")!).values()]),
      ...(claim ? claimParams(claim.w.request, claim.w.request.max - before.length) : []),
    ]);
    if (claim) results[claim.i] = claimedOf(back, claim.w.request.max, before);
    combinedDone = new Set(back.done ?? []);
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
        const result = results[i];
        if (result.kind === "insertWorkflow" && !result.inserted && result.existing === null) {
          throw new DuplicateWorkflowError(w.row.queueName ?? "", w.row.deduplicationId ?? "");
        }
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
        : combined ? await recordAndComplete(params) : await main("recordOperations", columnsOf(params, OPERATION_COLUMNS.length + 1));
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
      // One upsert per event (the last write wins); ON CONFLICT DO UPDATE cannot touch a row twice.
      const latest = [...new Map(items.map(({ w }) => [keyOf(w.workflowId, w.key), w])).values()];
      await main("setEvents", [
        latest.map((w) => w.workflowId), latest.map((w) => w.key), latest.map((w) => w.value.value), latest.map((w) => w.value.serialization),
        items.map(({ w }) => w.workflowId), items.map(({ w }) => w.functionId), items.map(({ w }) => w.key),
        items.map(({ w }) => w.value.value), items.map(({ w }) => w.value.serialization),
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
      const first = firstCompletions(items);
      const sent = [...first.values()].map(({ w }) => w);
      const rows = () => completionRows([...first.values()]);
      let done: Set<string>;
      if (combinedDone) done = combinedDone;
      else if (lone) {
        const [w] = sent;
        done = new Set((await one("completeOne", [w.workflowId, w.status, w.output, w.error, w.completedAt, w.executorId])).length ? [w.workflowId] : []);
      } else if (joint) {
        const [{ i, w }] = of("claimQueued")!;
        const before = again ? await takenBefore(client, sql, claimTokenOf(w.request), w.request.executorId) : [];
        const back = await main("completeAndClaim", [
          ...rows(), ...claimParams(w.request, w.request.max - before.length),
        ]);
        results[i] = claimedOf(back, w.request.max, before);
        done = new Set(back.rows ?? []);
      } else done = new Set((await main("completeWorkflows", rows())).rows ?? []);
      for (const item of items) {
        results[item.i] = { kind: "completeWorkflow", completed: first.get(item.w.workflowId) === item && done.has(item.w.workflowId) };
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
  const oneStatement = joint || combined || (kinds.length === 1 && !(kinds[0] === "recv" && of("recv")!.length > 1));
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
