/**
 * SQL for the PostgreSQL store's reads and management operations (batch writes are in
 * writes.ts). `schema` is the quoted schema name; every value is a bound parameter.
 *
 * Operations that change a workflow's status outside a batch NOTIFY what they changed, so other
 * processes hear of a cancel or a dead-letter as they would through SQLite's data_version.
 */
import { OPERATION_COLUMNS, WORKFLOW_COLUMNS } from "../sql.js";
import { EXECUTOR_RETENTION_MS } from "../store.js";

/** First key of the per-queue advisory lock ("dq" in ASCII), apart from the migration lock's single key. */
const QUEUE_LOCK_CLASS = 0x6471;
const WF_COLUMNS = WORKFLOW_COLUMNS.filter((c) => c !== "owner_token");
const wfCols = WF_COLUMNS.join(", ");
const opCols = OPERATION_COLUMNS.join(", ");
/** `text` as escapeWakeKey (store.ts) escapes it: backslashes doubled, newlines as "\n". */
const escaped = (text: string) => `replace(replace(${text}, E'\\\\', E'\\\\\\\\'), E'\\n', E'\\\\n')`;
/** Wake keys of the workflows in CTE `changed`, plus "queue" when any changed (each left a queue, or joined one). */
const notifyChanged = (changed: string, channel: string) => `notified AS (
    SELECT pg_notify(${channel}, k) FROM (
      SELECT 'status:' || ${escaped("workflow_id")} FROM ${changed}
      UNION ALL SELECT 'queue' WHERE EXISTS (SELECT 1 FROM ${changed})) keys (k))`;

/** A resumed row runs on the resuming executor: no queue was given and the row is of its app version (or of none). */
const resumedHere = "($2::text IS NULL AND (app_version IS NULL OR app_version = $6::text))";

/**
 * Queued rows an executor of `version` may claim: its version's, and those of no version when
 * `version` is the newest that an executor alive since `liveSince` runs (as the reference
 * library: "NULL means the latest version runs it"), or when no live executor says.
 */
export const claimableBy = (schema: string, version: string, liveSince: string) => `(app_version = ${version}::text OR (app_version IS NULL
    AND ${version}::text = COALESCE((
      SELECT v.app_version FROM ${schema}.app_versions v JOIN ${schema}.executors e ON e.app_version = v.app_version
      WHERE e.heartbeat_at >= ${liveSince}::bigint ORDER BY v.first_seen_at DESC, v.app_version DESC LIMIT 1), ${version}::text)))`;

/**
 * Past this many bytes of outputs and errors, a workflow's operations are left out of a read that
 * aggregates them (as null; the store reads them row by row): the JSON value a statement returns
 * becomes one string in node, which cannot hold more than ~512 MiB, and a claim aggregates many.
 */
export const INLINE_OPERATIONS_BYTES = 1 << 20;

/**
 * Every operation of `workflow` as a JSON array, by function ID, or null when they are too large to
 * inline: sized first, so that the array is not built at all then (the server's own limit is 1 GB).
 * Most claimed workflows have none yet: one probe of the index says so, where the sizing and the
 * array took two scans and two aggregates (0.27 instead of 0.58 ms for 100 workflows).
 */
const operationsOf = (schema: string, workflow: string) => `CASE
    WHEN NOT EXISTS (SELECT 1 FROM ${schema}.operation_outputs e WHERE e.workflow_id = ${workflow}) THEN '[]'::json ELSE (
    SELECT CASE WHEN size.bytes > ${INLINE_OPERATIONS_BYTES} THEN NULL ELSE (
      SELECT COALESCE(json_agg(o ORDER BY o.function_id), '[]'::json)
      FROM (SELECT ${opCols} FROM ${schema}.operation_outputs op WHERE op.workflow_id = ${workflow}) o) END
    FROM (SELECT COALESCE(sum(octet_length(output)), 0) + COALESCE(sum(octet_length(error)), 0) AS bytes
      FROM ${schema}.operation_outputs WHERE workflow_id = ${workflow}) size) END`;

/**
 * A claim from a queue without shared limits, as CTEs and result columns to put in a statement,
 * its parameters named by `p`: due DELAYED rows are promoted (claimable from the next claim:
 * a statement does not see its own changes), then up to `max` ENQUEUED rows this executor can
 * run are taken in queue order, skipping rows another claim holds, and marked with `token`.
 */
export function claimFreeSql(
  schema: string, p: { queue: string; now: string; max: string; names: string; version: string; executor: string; token: string; liveSince: string },
) {
  const ws = `${schema}.workflow_status`;
  return {
    // Stamped when the statement runs, as a claim of a queue with shared limits is: `now` was
    // read when the claim was made, and a statement sent again after a lost connection keeps it.
    ctes: `stamp AS (SELECT GREATEST(${p.now}::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS at),
      promoted AS (
        UPDATE ${ws} SET status = 'ENQUEUED', updated_at = (SELECT at FROM stamp)
        WHERE queue_name = ${p.queue} AND status = 'DELAYED' AND delay_until_epoch_ms <= (SELECT at FROM stamp) RETURNING 1),
      picked AS (
        SELECT workflow_id FROM ${ws}
        WHERE queue_name = ${p.queue} AND status = 'ENQUEUED' AND name = ANY(${p.names}::text[]) AND ${claimableBy(schema, p.version, p.liveSince)}
        ORDER BY priority, seq LIMIT ${p.max} FOR UPDATE SKIP LOCKED),
      claimed AS (
        UPDATE ${ws} w SET status = 'PENDING', executor_id = ${p.executor}, started_at = stamp.at, updated_at = stamp.at, claim_token = ${p.token},
          recovery_attempts = w.recovery_attempts + 1, app_version = COALESCE(w.app_version, ${p.version}::text),
          deadline_epoch_ms = CASE WHEN w.timeout_ms IS NOT NULL AND w.deadline_epoch_ms IS NULL THEN stamp.at + w.timeout_ms ELSE w.deadline_epoch_ms END
        FROM picked, stamp WHERE w.workflow_id = picked.workflow_id
        RETURNING ${WF_COLUMNS.map((c) => `w.${c}`).join(", ")}, w.seq)`,
    results: `(SELECT count(*) FROM promoted) AS promoted,
        (SELECT min(delay_until_epoch_ms) FROM ${ws} WHERE status = 'DELAYED' AND queue_name = ${p.queue}) AS next_delayed,
        (SELECT json_agg(json_build_object('workflow', row_to_json(c), 'operations', ${operationsOf(schema, "c.workflow_id")}) ORDER BY priority, seq) FROM claimed c) AS claimed`,
  };
}

/**
 * The rows a claim, takeover or recovery marked with token `$1` that are still PENDING on
 * executor `$2`: after a lost reply, what its first commit took. Read from the index of PENDING
 * rows by executor, so it reads this executor's running work and nothing else.
 */
export const claimedBySql = (schema: string) => `
  SELECT json_agg(json_build_object('workflow', row_to_json(c), 'operations', ${operationsOf(schema, "c.workflow_id")}) ORDER BY c.seq) AS claimed
  FROM (SELECT ${WF_COLUMNS.join(", ")}, seq FROM ${schema}.workflow_status
    WHERE status = 'PENDING' AND executor_id = $2 AND claim_token = $1) c`;

export function storeSql(schema: string) {
  const ws = `${schema}.workflow_status`;
  const ops = `${schema}.operation_outputs`;
  const events = `${schema}.workflow_events`;
  const history = `${schema}.workflow_events_history`;
  const streams = `${schema}.streams`;
  // `w.recovery_attempts` is the value before this update counts the attempt.
  const dead = `w.recovery_attempts + 1 > $4::bigint`;
  const countAttempt = `recovery_attempts = w.recovery_attempts + 1, updated_at = $1,
    status = CASE WHEN ${dead} THEN 'MAX_RECOVERY_ATTEMPTS_EXCEEDED' ELSE w.status END,
    queue_name = CASE WHEN ${dead} THEN NULL ELSE w.queue_name END,
    deduplication_id = CASE WHEN ${dead} THEN NULL ELSE w.deduplication_id END,
    started_at = CASE WHEN ${dead} THEN NULL ELSE w.started_at END,
    completed_at = CASE WHEN ${dead} THEN $1 ELSE w.completed_at END`;
  const recovered = `RETURNING ${WF_COLUMNS.map((c) => `w.${c}`).join(", ")}),
    dead AS (SELECT workflow_id FROM counted WHERE status <> 'PENDING'),
    ${notifyChanged("dead", "$5")}
    SELECT (SELECT count(*) FROM notified) AS notified, (SELECT json_agg(counted) FROM counted) AS rows`;
  // The rows `picked` names, still ENQUEUED, claimed for `executor` with `token` (and of no
  // version, for `version`), and the claim's result: each with its operations, in queue order.
  const takeRows = (executor: string, token: string, version: string) => `claimed AS (
        UPDATE ${ws} w SET status = 'PENDING', executor_id = ${executor}, started_at = stamp.at, updated_at = stamp.at, claim_token = ${token},
          recovery_attempts = w.recovery_attempts + 1, app_version = COALESCE(w.app_version, ${version}::text),
          deadline_epoch_ms = CASE WHEN w.timeout_ms IS NOT NULL AND w.deadline_epoch_ms IS NULL THEN stamp.at + w.timeout_ms ELSE w.deadline_epoch_ms END
        FROM picked, stamp WHERE w.workflow_id = picked.workflow_id AND w.status = 'ENQUEUED'
        RETURNING ${WF_COLUMNS.map((c) => `w.${c}`).join(", ")}, w.seq)
      SELECT json_agg(json_build_object('workflow', row_to_json(c), 'operations', ${operationsOf(schema, "c.workflow_id")})
        ORDER BY priority, seq) AS claimed`;
  // Stamped when the statement runs ($2, read once the turn was held, is earlier): after every
  // completion whose slot it counts as free, so no claim's start precedes the outcome it replaced.
  const claimIn = (inScope: string, whatIsLeft: string) => `WITH stamp AS (SELECT GREATEST($2::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS at),
      budget AS (
        SELECT LEAST($3::int,
          CASE WHEN $4::int IS NULL THEN $3 ELSE $4 - (SELECT count(*) FROM ${ws} WHERE ${inScope} AND status = 'PENDING') END,
          CASE WHEN $5::int IS NULL THEN $3 ELSE $5 - (
            SELECT count(*) FROM ${ws} WHERE ${inScope} AND started_at > $8::bigint AND status <> 'ENQUEUED') END) AS n),
      picked AS (
        SELECT workflow_id FROM ${ws}
        WHERE ${inScope} AND status = 'ENQUEUED' AND name = ANY($9::text[]) AND ${claimableBy(schema, "$10", "$13")}
        ORDER BY priority, seq LIMIT GREATEST((SELECT n FROM budget), 0)),
      ${takeRows("$11", "$12", "$10")},
        ${whatIsLeft},
        -- The rate window's oldest start, this claim's included, leaves it this long after $2 (= $8 + the period).
        CASE WHEN $5::int IS NOT NULL THEN LEAST(
          (SELECT min(started_at) FROM ${ws} WHERE ${inScope} AND started_at > $8::bigint AND status <> 'ENQUEUED'),
          (SELECT min(started_at) FROM claimed)) - $8::bigint END AS opens_in
      FROM claimed c`;
  // A queue's claim, or (partitioned) a partition's: one of a key is served by the indexes of
  // partitions (schema version 8), which no test IS NOT DISTINCT FROM could use. What is left in
  // the queue is told by a queue's claim, and asked once after a partitioned queue's (nextDelayed).
  const claim = claimIn(
    `queue_name = $1 AND (NOT $6::boolean OR partition_key IS NOT DISTINCT FROM $7::text)`,
    `(SELECT min(delay_until_epoch_ms) FROM ${ws} WHERE status = 'DELAYED' AND queue_name = $1) AS next,
        EXISTS (SELECT 1 FROM ${ws} WHERE status = 'ENQUEUED' AND queue_name = $1 AND workflow_id NOT IN (SELECT workflow_id FROM claimed)) AS queued`,
  );
  const claimPartition = claimIn(`queue_name = $1 AND $6::boolean AND partition_key = $7::text`, "NULL AS next, NULL AS queued");
  // Without a rate limit, one statement claims from many partitions ($5, each with room for $6
  // here): each partition's first rows up to its room and (under a concurrency limit, $4) its
  // share, then the first $3 of them all in queue order.
  const claimPartitions = `WITH stamp AS (SELECT GREATEST($2::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS at),
      picked AS (
        SELECT x.workflow_id FROM unnest($5::text[], $6::int[]) AS p(key, room)
        CROSS JOIN LATERAL (
          SELECT w.workflow_id, w.priority, w.seq FROM ${ws} w
          WHERE w.queue_name = $1 AND w.partition_key = p.key AND w.status = 'ENQUEUED' AND w.name = ANY($7::text[])
            AND ${claimableBy(schema, "$8", "$11")}
          ORDER BY w.priority, w.seq
          LIMIT GREATEST(LEAST(p.room, CASE WHEN $4::int IS NULL THEN p.room ELSE $4 - (
            SELECT count(*) FROM ${ws} r WHERE r.queue_name = $1 AND r.partition_key = p.key AND r.status = 'PENDING') END), 0)) x
        ORDER BY x.priority, x.seq LIMIT $3),
      ${takeRows("$9", "$10", "$8")}
      FROM claimed c`;

  return {
    nextDelayed: `SELECT (SELECT min(delay_until_epoch_ms) FROM ${ws} WHERE status = 'DELAYED' AND queue_name = $1) AS next,
      EXISTS (SELECT 1 FROM ${ws} WHERE status = 'ENQUEUED' AND queue_name = $1) AS queued`,
    queuesWithWork: `SELECT array_agg(q) AS names FROM unnest($1::text[]) AS q
      WHERE EXISTS (SELECT 1 FROM ${ws} WHERE status = 'ENQUEUED' AND queue_name = q)
        OR EXISTS (SELECT 1 FROM ${ws} WHERE status = 'DELAYED' AND queue_name = q AND delay_until_epoch_ms <= $2)`,
    loadWorkflows: `SELECT ${wfCols}, ${operationsOf(schema, "w.workflow_id")} AS operations FROM ${ws} w WHERE w.workflow_id = ANY($1::text[])`,
    listOperations: `SELECT ${opCols} FROM ${ops} WHERE workflow_id = $1 ORDER BY function_id LIMIT $2 OFFSET $3`,
    getEvent: `SELECT value, serialization FROM ${events} WHERE workflow_id = $1 AND key = $2`,
    getAllEvents: `SELECT key, value, serialization FROM ${events} WHERE workflow_id = $1 ORDER BY key COLLATE "C"`,
    readStream: `SELECT value, serialization FROM ${streams} WHERE workflow_id = $1 AND key = $2 AND "offset" >= $3 ORDER BY "offset"`,
    streamClosedBefore: `SELECT EXISTS (SELECT 1 FROM ${streams} WHERE workflow_id = $1 AND key = $2 AND "offset" < $3 AND value IS NULL) AS closed`,
    // A PENDING row of no app version (older releases left resumed client enqueues so) is anyone's.
    // One UPDATE counts the attempt and dead-letters in the same stroke. Rows marked with this
    // recovery's token ($6) were counted by an attempt whose reply was lost (see claimedBySql).
    recoverOwn: `WITH forgotten AS (
        DELETE FROM ${schema}.executors e WHERE e.heartbeat_at < $1::bigint - ${EXECUTOR_RETENTION_MS} AND e.executor_id <> $2
          AND NOT EXISTS (SELECT 1 FROM ${ws} x WHERE x.executor_id = e.executor_id AND x.status = 'PENDING')),
      counted AS (
        UPDATE ${ws} w SET claim_token = $6, ${countAttempt}
        WHERE w.status = 'PENDING' AND w.executor_id = $2 AND (w.app_version = $3 OR w.app_version IS NULL) AND w.claim_token IS DISTINCT FROM $6
        ${recovered}`,
    // The row must still belong to the executor it was found under when the UPDATE reaches it,
    // so two executors taking over at once never both adopt a workflow. The rows of the silent
    // executors that have PENDING work (found from that work, not by reading every executor that
    // ever ran) are locked, in one order so two takeovers cannot deadlock: a beat of one of them
    // waits for this commit, and the check of its runs that follows its beat sees what this took;
    // a beat that committed first leaves it out, since FOR UPDATE reads the row's latest version.
    takeOver: `WITH silent AS (
        SELECT e.executor_id FROM ${schema}.executors e
        WHERE e.executor_id IN (SELECT executor_id FROM ${ws} WHERE status = 'PENDING' AND executor_id <> $2) AND e.heartbeat_at < $6
        ORDER BY e.executor_id FOR UPDATE OF e),
      counted AS (
        UPDATE ${ws} w SET executor_id = $2, claim_token = $7, ${countAttempt}
        FROM (
          SELECT p.workflow_id, p.executor_id AS previous FROM ${ws} p
          WHERE p.status = 'PENDING' AND (p.app_version = $3 OR p.app_version IS NULL) AND p.executor_id IS NOT NULL AND p.executor_id <> $2
            AND p.name = ANY($8::text[])
            AND (p.executor_id IN (SELECT executor_id FROM silent)
              OR NOT EXISTS (SELECT 1 FROM ${schema}.executors x WHERE x.executor_id = p.executor_id))) stale
        WHERE w.workflow_id = stale.workflow_id AND w.executor_id = stale.previous AND w.status = 'PENDING'
        ${recovered}`,
    cancelWorkflows: `WITH RECURSIVE tree (id) AS (
        SELECT w.workflow_id FROM ${ws} w WHERE w.workflow_id = ANY($2::text[]) AND ($4::text <> 'timed' OR w.deadline_epoch_ms <= $1)
        UNION SELECT w.workflow_id FROM ${ws} w JOIN tree ON w.parent_workflow_id = tree.id
          WHERE $4::text = 'all' OR ($4::text = 'timed' AND (w.timeout_ms IS NOT NULL OR w.deadline_epoch_ms IS NOT NULL))),
      cancelled AS (
        UPDATE ${ws} SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL, started_at = NULL, updated_at = $1, completed_at = $1
        WHERE workflow_id IN (SELECT id FROM tree) AND status IN ('ENQUEUED', 'DELAYED', 'PENDING', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
        RETURNING workflow_id),
      ${notifyChanged("cancelled", "$3")}
      SELECT (SELECT count(*) FROM notified) AS notified, (SELECT json_agg(workflow_id) FROM cancelled) AS ids`,
    // All or nothing: when an ID is missing, `complete` is false and the UPDATE touches no row.
    resumeWorkflows: `WITH ids AS (SELECT DISTINCT id FROM unnest($1::text[]) AS id),
      complete AS (SELECT (SELECT count(*) FROM ${ws} WHERE workflow_id IN (SELECT id FROM ids)) = (SELECT count(*) FROM ids) AS ok),
      resumed AS (
        UPDATE ${ws} SET status = CASE WHEN ${resumedHere} THEN 'PENDING' ELSE 'ENQUEUED' END,
          queue_name = CASE WHEN ${resumedHere} THEN NULL ELSE COALESCE($2::text, $7::text) END,
          executor_id = CASE WHEN ${resumedHere} THEN $3::text END, started_at = CASE WHEN ${resumedHere} THEN $4::bigint END,
          recovery_attempts = CASE WHEN ${resumedHere} THEN 1 ELSE 0 END,
          app_version = CASE WHEN ${resumedHere} THEN COALESCE(app_version, $6::text) ELSE app_version END,
          deadline_epoch_ms = CASE WHEN ${resumedHere} THEN $4::bigint + timeout_ms END,
          deduplication_id = NULL, completed_at = NULL, output = NULL, error = NULL, updated_at = $4
        WHERE workflow_id IN (SELECT id FROM ids) AND status NOT IN ('SUCCESS', 'ERROR') AND (SELECT ok FROM complete)
        RETURNING ${wfCols}),
      ${notifyChanged("resumed", "$5")}
      SELECT (SELECT ok FROM complete) AS ok, (SELECT count(*) FROM notified) AS notified, (SELECT json_agg(resumed) FROM resumed) AS rows`,
    workflow: `SELECT ${wfCols} FROM ${ws} WHERE workflow_id = $1`,
    // The fork's events are rebuilt from the original's history (a sibling CTE cannot see the
    // history rows this statement copies): per key, the value set last before startStep. Every
    // part waits on the insert, so a concurrent fork to the same ID that won copies nothing here.
    fork: `WITH inserted AS (
        INSERT INTO ${ws} (${WORKFLOW_COLUMNS.join(", ")})
        SELECT ${WORKFLOW_COLUMNS.join(", ")} FROM json_populate_record(NULL::${ws}, $3::json) ON CONFLICT DO NOTHING
        RETURNING workflow_id),
      notified AS (SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p WHERE EXISTS (SELECT 1 FROM inserted)),
      marked AS (UPDATE ${ws} SET was_forked_from = TRUE, updated_at = $6 WHERE workflow_id = $4 AND EXISTS (SELECT 1 FROM inserted)),
      copied AS (
        INSERT INTO ${ops} (${opCols})
        SELECT $5::text, ${OPERATION_COLUMNS.slice(1).join(", ")} FROM ${ops}
        WHERE workflow_id = $4 AND function_id < $7 AND EXISTS (SELECT 1 FROM inserted)),
      history AS (
        INSERT INTO ${history} (workflow_id, function_id, key, value, serialization)
        SELECT $5::text, function_id, key, value, serialization FROM ${history}
        WHERE workflow_id = $4 AND function_id < $7 AND EXISTS (SELECT 1 FROM inserted)),
      latest AS (
        INSERT INTO ${events} (workflow_id, key, value, serialization)
        SELECT DISTINCT ON (key) $5::text, key, value, serialization FROM ${history}
        WHERE workflow_id = $4 AND function_id < $7 AND EXISTS (SELECT 1 FROM inserted) ORDER BY key, function_id DESC),
      streamed AS (
        INSERT INTO ${streams} (workflow_id, key, "offset", function_id, value, serialization)
        SELECT $5::text, key, "offset", function_id, value, serialization FROM ${streams}
        WHERE workflow_id = $4 AND function_id < $7 AND EXISTS (SELECT 1 FROM inserted))
      SELECT (SELECT count(*) FROM notified) AS notified, (SELECT count(*) FROM inserted) AS inserted`,
    setWorkflowDelay: `WITH changed AS (
        UPDATE ${ws} SET delay_until_epoch_ms = $1, updated_at = $2 WHERE workflow_id = $3 AND status = 'DELAYED' RETURNING queue_name),
      notified AS (SELECT pg_notify($4, 'due:' || $1::bigint || ':' || ${escaped("queue_name")}) FROM changed)
      SELECT (SELECT count(*) FROM notified) AS notified, (SELECT queue_name FROM changed) AS queue`,
    heartbeat: `WITH seen AS (INSERT INTO ${schema}.app_versions (app_version, first_seen_at) VALUES ($3, $2) ON CONFLICT DO NOTHING)
      INSERT INTO ${schema}.executors (executor_id, heartbeat_at, app_version) VALUES ($1, $2, $3)
      ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = GREATEST(${schema}.executors.heartbeat_at, excluded.heartbeat_at),
        app_version = excluded.app_version`,
    leave: `UPDATE ${schema}.executors SET app_version = NULL WHERE executor_id = $1 AND app_version = $2`,
    // Claims on one queue take turns (see claimQueued), so the counts the claim reads stay true
    // until commit. This statement takes the turn (the claim that follows, with a snapshot of its
    // own, sees every claim before it), reads the database's clock once it holds it (OFFSET 0
    // keeps the lock first) to stamp the claim with, and promotes due DELAYED rows.
    lockQueue: `WITH locked AS (
        SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now
        FROM (SELECT pg_advisory_xact_lock(${QUEUE_LOCK_CLASS}, hashtext($1)) OFFSET 0) l),
      promoted AS (
        UPDATE ${ws} SET status = 'ENQUEUED', updated_at = $2
        WHERE queue_name = $3 AND status = 'DELAYED' AND delay_until_epoch_ms <= $2 RETURNING partition_key),
      -- The partitions to claim from: up to $6 (all, under a rate limit, which may leave any
      -- partition without room) with work and room (under a concurrency limit, $5,
      -- and not among those $7 full here), in key order from the partitions' index, which the scan
      -- leaves once it has them (one at its limit is passed over without a statement of its own);
      -- then those promoted just now, and the partition of no key.
      capacity AS (
        SELECT k.partition_key FROM (
          SELECT DISTINCT partition_key FROM ${ws}
          WHERE queue_name = $3 AND status = 'ENQUEUED' AND partition_key IS NOT NULL ORDER BY partition_key) k
        WHERE $4::boolean AND k.partition_key <> ALL($7::text[]) AND ($5::int IS NULL OR (
          SELECT count(*) FROM ${ws} r WHERE r.queue_name = $3 AND r.partition_key = k.partition_key AND r.status = 'PENDING') < $5)
        LIMIT $6)
      SELECT (SELECT now FROM locked) AS now, CASE WHEN $4::boolean THEN (
        SELECT json_agg(DISTINCT partition_key) FROM (
          SELECT partition_key FROM capacity
          UNION ALL SELECT partition_key FROM promoted
          UNION ALL (SELECT NULL FROM ${ws} WHERE queue_name = $3 AND status = 'ENQUEUED' AND partition_key IS NULL ORDER BY priority, seq LIMIT 1)) p)
        END AS partitions`,
    claim,
    claimPartition,
    claimPartitions,
  };
}

export type StoreSql = ReturnType<typeof storeSql>;
