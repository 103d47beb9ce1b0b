/** The embedded backend's prepared statements, made once per connection. */
import type Database from "better-sqlite3";
import { OPERATION_COLUMNS, WORKFLOW_COLUMNS } from "../sql.js";

export const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

/** What the store uses of a prepared statement. */
export interface Statement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export function prepare(db: Database.Database) {
  const st = (sql: string): Statement => db.prepare(sql);
  const workflowColumns = WORKFLOW_COLUMNS.filter((c) => c !== "owner_token").join(", ");
  return {
    queueWaiting: st(`SELECT EXISTS (SELECT 1 FROM workflow_status WHERE queue_name = ? AND status = 'ENQUEUED') AS waiting`),
    insertWorkflow: st(`INSERT INTO workflow_status (${WORKFLOW_COLUMNS.join(", ")}) VALUES (${placeholders(WORKFLOW_COLUMNS.length)}) ON CONFLICT DO NOTHING`),
    workflowOwner: st(`SELECT ${workflowColumns}, owner_token FROM workflow_status WHERE workflow_id = ?`),
    workflow: st(`SELECT ${workflowColumns} FROM workflow_status WHERE workflow_id = ?`),
    insertOperation: st(
      `INSERT INTO operation_outputs (${OPERATION_COLUMNS.join(", ")}) SELECT ${placeholders(OPERATION_COLUMNS.length)}
       WHERE EXISTS (SELECT 1 FROM workflow_status WHERE workflow_id = ? AND status = 'PENDING' AND executor_id = ?) ON CONFLICT DO NOTHING`,
    ),
    insertOperationAfterCancel: st(
      `INSERT INTO operation_outputs (${OPERATION_COLUMNS.join(", ")}) SELECT ${placeholders(OPERATION_COLUMNS.length)}
       WHERE EXISTS (SELECT 1 FROM workflow_status WHERE workflow_id = ?
         AND (status IN ('PENDING', 'CANCELLED', 'SUCCESS', 'ERROR') AND executor_id = ? OR status = 'ENQUEUED' AND executor_id IS NULL)) ON CONFLICT DO NOTHING`,
    ),
    owned: st(`SELECT 1 FROM workflow_status WHERE workflow_id = ? AND status = 'PENDING' AND executor_id = ?`),
    operation: st(`SELECT * FROM operation_outputs WHERE workflow_id = ? AND function_id = ?`),
    operations: st(`SELECT * FROM operation_outputs WHERE workflow_id = ? ORDER BY function_id LIMIT ? OFFSET ?`),
    exists: st(`SELECT 1 FROM workflow_status WHERE workflow_id = ?`),
    insertMessage: st(
      `INSERT INTO notifications (message_id, destination_id, topic, message, serialization, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    oldestMessage: st(
      `SELECT seq, message, serialization FROM notifications WHERE destination_id = ? AND topic = ? AND consumed = 0 ORDER BY seq LIMIT 1`,
    ),
    consumeMessage: st(`UPDATE notifications SET consumed = 1 WHERE seq = ?`),
    upsertEvent: st(
      `INSERT INTO workflow_events (workflow_id, key, value, serialization) VALUES (?, ?, ?, ?)
       ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, serialization = excluded.serialization`,
    ),
    insertEventHistory: st(
      `INSERT INTO workflow_events_history (workflow_id, function_id, key, value, serialization) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (workflow_id, function_id, key) DO UPDATE SET value = excluded.value, serialization = excluded.serialization`,
    ),
    event: st(`SELECT value, serialization FROM workflow_events WHERE workflow_id = ? AND key = ?`),
    events: st(`SELECT key, value, serialization FROM workflow_events WHERE workflow_id = ?`),
    streamByFunction: st(`SELECT "offset" FROM streams WHERE workflow_id = ? AND key = ? AND function_id = ?`),
    appendStream: st(
      `INSERT INTO streams (workflow_id, key, "offset", function_id, value, serialization)
       SELECT ?, ?, COALESCE(MAX("offset") + 1, 0), ?, ?, ? FROM streams WHERE workflow_id = ? AND key = ? RETURNING "offset"`,
    ),
    readStream: st(`SELECT value, serialization FROM streams WHERE workflow_id = ? AND key = ? AND "offset" >= ? ORDER BY "offset"`),
    queuesWithWork: st(`SELECT q.value AS name FROM json_each(?) AS q
      WHERE EXISTS (SELECT 1 FROM workflow_status WHERE status = 'ENQUEUED' AND queue_name = q.value)
        OR EXISTS (SELECT 1 FROM workflow_status WHERE status = 'DELAYED' AND queue_name = q.value AND delay_until_epoch_ms <= ?)`),
    streamClosedBefore: st(`SELECT EXISTS (SELECT 1 FROM streams WHERE workflow_id = ? AND key = ? AND "offset" < ? AND value IS NULL) AS closed`),
    complete: st(
      `UPDATE workflow_status SET status = ?, output = ?, error = ?, completed_at = ?, updated_at = ?, deduplication_id = NULL
       WHERE workflow_id = ? AND status = 'PENDING' AND executor_id = ?`,
    ),
    countAttempt: st(
      `UPDATE workflow_status SET recovery_attempts = recovery_attempts + 1, updated_at = ?
       WHERE status = 'PENDING' AND executor_id = ? AND (app_version = ? OR app_version IS NULL) RETURNING ${workflowColumns}`,
    ),
    forgetExecutors: st(
      `DELETE FROM executors WHERE heartbeat_at < ? AND executor_id <> ?
         AND NOT EXISTS (SELECT 1 FROM workflow_status w WHERE w.executor_id = executors.executor_id AND w.status = 'PENDING')`,
    ),
    takeOver: st(
      `UPDATE workflow_status SET executor_id = ?, recovery_attempts = recovery_attempts + 1, updated_at = ?
       WHERE status = 'PENDING' AND (app_version = ? OR app_version IS NULL) AND executor_id IS NOT NULL AND executor_id <> ?
         AND name IN (SELECT value FROM json_each(?))
         AND executor_id NOT IN (SELECT executor_id FROM executors WHERE heartbeat_at >= ?)
       RETURNING ${workflowColumns}`,
    ),
    heartbeat: st(
      `INSERT INTO executors (executor_id, heartbeat_at, app_version) VALUES (?, ?, ?)
       ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = MAX(heartbeat_at, excluded.heartbeat_at), app_version = excluded.app_version`,
    ),
    logWake: st(`INSERT INTO wake_log (keys) VALUES (?)`),
    wakesSince: st(`SELECT seq, keys FROM wake_log WHERE seq > ? ORDER BY seq`),
    lastWake: st(`SELECT COALESCE(MAX(seq), 0) AS seq FROM wake_log`),
    pruneWakes: st(`DELETE FROM wake_log WHERE seq <= ?`),
    leave: st(`UPDATE executors SET app_version = NULL WHERE executor_id = ? AND app_version = ?`),
    versionSeen: st(`INSERT INTO app_versions (app_version, first_seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING`),
    setDelay: st(`UPDATE workflow_status SET delay_until_epoch_ms = ?, updated_at = ? WHERE workflow_id = ? AND status = 'DELAYED' RETURNING queue_name`),
    promoteDelayed: st(
      `UPDATE workflow_status SET status = 'ENQUEUED', updated_at = ? WHERE queue_name = ? AND status = 'DELAYED' AND delay_until_epoch_ms <= ?`,
    ),
    nextDelayed: st(
      `SELECT (SELECT MIN(delay_until_epoch_ms) FROM workflow_status WHERE status = 'DELAYED' AND queue_name = ?) AS next,
              EXISTS (SELECT 1 FROM workflow_status WHERE status = 'ENQUEUED' AND queue_name = ?) AS queued`,
    ),
    // The partitions to claim from: up to @max with work and room (under a concurrency limit, and
    // not among those @full here), in key order from the partitions' index, which the scan leaves
    // once it has them; then the partition of no key.
    partitions: st(
      `SELECT k.partition_key FROM (
         SELECT DISTINCT partition_key FROM workflow_status
         WHERE queue_name = @queue AND status = 'ENQUEUED' AND partition_key IS NOT NULL ORDER BY partition_key) k
       WHERE k.partition_key NOT IN (SELECT value FROM json_each(@full)) AND (@concurrency IS NULL OR (
         SELECT COUNT(*) FROM workflow_status r WHERE r.queue_name = @queue AND r.partition_key = k.partition_key AND r.status = 'PENDING') < @concurrency)
       LIMIT @max`,
    ),
    keylessPartition: st(`SELECT EXISTS (SELECT 1 FROM workflow_status WHERE queue_name = ? AND status = 'ENQUEUED' AND partition_key IS NULL) AS queued`),
    // What a claim's limits count: the running workflows (queue[, partition]), the starts a rate
    // limit counts (queue, [partition,] since) and the oldest of them.
    running: st(`SELECT COUNT(*) AS n FROM workflow_status WHERE queue_name = ? AND status = 'PENDING'`),
    // A partition of a key is counted with `=`, which its index (schema version 7) serves, and IS does not.
    runningInPartition: st(`SELECT COUNT(*) AS n FROM workflow_status WHERE queue_name = ? AND status = 'PENDING' AND partition_key IS ?`),
    runningInKey: st(`SELECT COUNT(*) AS n FROM workflow_status WHERE queue_name = ? AND status = 'PENDING' AND partition_key = ?`),
    rateWindow: st(`SELECT COUNT(*) AS n, MIN(started_at) AS first FROM workflow_status WHERE queue_name = ? AND started_at > ? AND status <> 'ENQUEUED'`),
    rateWindowOfPartition: st(
      `SELECT COUNT(*) AS n, MIN(started_at) AS first FROM workflow_status WHERE queue_name = ? AND partition_key IS ? AND started_at > ? AND status <> 'ENQUEUED'`,
    ),
    claim: st(
      `UPDATE workflow_status SET status = 'PENDING', executor_id = ?, started_at = ?, updated_at = ?, recovery_attempts = recovery_attempts + 1,
         app_version = COALESCE(app_version, ?),
         deadline_epoch_ms = CASE WHEN timeout_ms IS NOT NULL AND deadline_epoch_ms IS NULL THEN ? + timeout_ms ELSE deadline_epoch_ms END
       WHERE workflow_id = ? AND status = 'ENQUEUED' RETURNING ${workflowColumns}`,
    ),
    markForked: st(`UPDATE workflow_status SET was_forked_from = 1, updated_at = ? WHERE workflow_id = ?`),
    copyOperations: st(
      `INSERT INTO operation_outputs (${OPERATION_COLUMNS.join(", ")})
       SELECT ?, ${OPERATION_COLUMNS.slice(1).join(", ")} FROM operation_outputs WHERE workflow_id = ? AND function_id < ?`,
    ),
    copyEventHistory: st(
      `INSERT INTO workflow_events_history (workflow_id, function_id, key, value, serialization)
       SELECT ?, function_id, key, value, serialization FROM workflow_events_history WHERE workflow_id = ? AND function_id < ?`,
    ),
    rebuildEvents: st(
      `INSERT INTO workflow_events (workflow_id, key, value, serialization)
       SELECT workflow_id, key, value, serialization FROM workflow_events_history h
       WHERE workflow_id = ? AND function_id = (SELECT MAX(function_id) FROM workflow_events_history WHERE workflow_id = h.workflow_id AND key = h.key)`,
    ),
    copyStreams: st(
      `INSERT INTO streams (workflow_id, key, "offset", function_id, value, serialization)
       SELECT ?, key, "offset", function_id, value, serialization FROM streams WHERE workflow_id = ? AND function_id < ?`,
    ),
    deadLetter: st(
      `UPDATE workflow_status SET status = 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', queue_name = NULL, deduplication_id = NULL, started_at = NULL,
       completed_at = ?, updated_at = ? WHERE workflow_id = ? AND status = 'PENDING'`,
    ),
    cancel: st(
      `WITH RECURSIVE tree (id) AS (
         SELECT w.workflow_id FROM workflow_status w WHERE w.workflow_id IN (SELECT value FROM json_each(@ids)) AND (@children <> 'timed' OR w.deadline_epoch_ms <= @now)
         UNION SELECT w.workflow_id FROM workflow_status w JOIN tree ON w.parent_workflow_id = tree.id
           WHERE @children = 'all' OR (@children = 'timed' AND (w.timeout_ms IS NOT NULL OR w.deadline_epoch_ms IS NOT NULL))
       )
       UPDATE workflow_status SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL, started_at = NULL, updated_at = @now, completed_at = @now
       WHERE workflow_id IN (SELECT id FROM tree) AND status IN ('ENQUEUED', 'DELAYED', 'PENDING', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
       RETURNING workflow_id`,
    ),
  };
}
