/**
 * The SQL of PostgreSQL's batch writes (see writes.ts): each kind's multi-row statement over
 * `unnest`ed arrays, the one-row statements of lone writes, and the combined statements of the
 * mixes a busy executor commits.
 */
import { OPERATION_COLUMNS, WORKFLOW_COLUMNS } from "../sql.js";
import { claimedBySql, claimFreeSql } from "./queries.js";

const BIGINT_COLUMNS = new Set([
  "created_at", "updated_at", "started_at", "completed_at", "timeout_ms", "deadline_epoch_ms", "delay_until_epoch_ms",
]);
const INT_COLUMNS = new Set(["recovery_attempts", "priority", "function_id"]);
const sqlType = (column: string) =>
  BIGINT_COLUMNS.has(column) ? "bigint" : INT_COLUMNS.has(column) ? "int" : column === "was_forked_from" ? "boolean" : "text";
/**
 * A batch's rows as a FROM item (to alias) with columns `names` and `ord`, bound from `$first` on
 * by `columnsOf` (writes.ts): the row count, then two parameters per column — its values as an array, or,
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
export const COMPLETE_COLUMNS = ["workflow_id", "status", "output", "error", "completed_at", "executor_id"];

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
  /**
   * Outcomes (CTE `done`), after the step records of other workflows if `withRecords` (a
   * workflow's outcome follows its last record's commit), then perhaps a claim for the slots the
   * outcomes free: the mix a busy executor commits most, in one statement.
   */
  const outcomes = (withRecords: boolean, withClaim: boolean) => {
    const first = withRecords ? afterRecords : 3;
    const claim = withClaim ? claimParts(first + 1 + 2 * COMPLETE_COLUMNS.length) : undefined;
    return `WITH ${NOTIFIED}${withRecords ? `, ${records}` : ""}, ${doneAt(first)}${claim ? `, ${claim.ctes}` : ""}
      SELECT ${COUNT_NOTIFIED}${withRecords ? `, ${INSERTED}` : ""}, (SELECT json_agg(workflow_id) FROM done) AS done${claim ? `, ${claim.results}` : ""}`;
  };
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
        AND (w.status IN ('PENDING', 'CANCELLED', 'SUCCESS', 'ERROR') AND w.executor_id = $10::text OR w.status = 'ENQUEUED' AND w.executor_id IS NULL))
      ON CONFLICT DO NOTHING RETURNING 1`,
    completeOne: `WITH notified AS (SELECT pg_notify($1, $2))
      UPDATE ${ws} w SET status = $4, output = $5, error = $6, completed_at = $7, updated_at = $7, deduplication_id = NULL
      FROM notified WHERE ${owned("w", "$3::text", "$8::text")} RETURNING 1`,
    insertWorkflows: insertWorkflows("ON CONFLICT DO NOTHING RETURNING workflow_id, owner_token", INSERTED),
    insertWorkflowsOrFail: insertWorkflows("RETURNING 1", "(SELECT count(*) FROM ins) AS inserted"),
    workflowsById: `SELECT ${wfCols} FROM ${ws} WHERE workflow_id = ANY($1::text[])`,
    pendingOwners: `SELECT workflow_id, executor_id FROM ${ws} WHERE workflow_id = ANY($1::text[]) AND status = 'PENDING'`,
    recordOperations: `WITH ${NOTIFIED}, ${records} SELECT ${COUNT_NOTIFIED}, ${INSERTED}`,
    completeWorkflows: outcomes(false, false),
    completeAndClaim: outcomes(false, true),
    recordAndComplete: outcomes(true, false),
    recordCompleteAndClaim: outcomes(true, true),
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
    // FOR UPDATE without SKIP LOCKED: a concurrent run (a resume's, say) that has locked the
    // oldest message is waited for, then the oldest message still there is taken: skipping it
    // would take a later one first.
    recv: `WITH ${NOTIFIED},
      rec AS (SELECT ${opCols} FROM ${ops} WHERE workflow_id = $3::text AND function_id = $4::int),
      owned AS (SELECT 1 FROM ${ws} w WHERE ${owned("w", "$3::text", "$12::text")}),
      msg AS MATERIALIZED (
        SELECT seq, message, serialization FROM ${messages}
        WHERE destination_id = $5::text AND topic = $6::text AND NOT consumed AND NOT EXISTS (SELECT 1 FROM rec) AND EXISTS (SELECT 1 FROM owned)
        ORDER BY seq LIMIT 1 FOR UPDATE),
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
        ON CONFLICT (workflow_id, function_id, key) DO UPDATE SET value = excluded.value, serialization = excluded.serialization)
      SELECT ${COUNT_NOTIFIED}`,
    // A `once` write already on disk (`done`) or made earlier in this batch (`first`) is not
    // written again; the rest append after the stream's last offset, in the batch's order.
    // `+ 0` keeps the planner from reading the stream's offsets in order (its primary key) until
    // one has the function ID: the index by writer finds it at once, however long the stream.
    // No lock: two writers that pick the same offset collide on the primary key, and the loser
    // retries the batch (see isStreamConflict).
    writeStreams: `WITH ${NOTIFIED},
      i AS (
        SELECT i.*, CASE WHEN once THEN (
          SELECT min(s."offset" + 0) FROM ${streams} s WHERE s.workflow_id = i.workflow_id AND s.key = i.key AND s.function_id = i.function_id) END AS done
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
    // A claim in a batch of other kinds ($1, $2: the NOTIFY, sent by the batch's first statement).
    claimInBatch: `WITH ${NOTIFIED}, ${claimAlone.ctes} SELECT ${COUNT_NOTIFIED}, ${claimAlone.results}`,
    claimedBy: claimedBySql(schema),
  };
}

export type WriteSql = ReturnType<typeof writeSql>;
