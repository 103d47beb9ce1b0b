/**
 * The PostgreSQL backend: a pg pool, tables in their own schema (`duro`, or `?schema=` in the
 * URL), batches written with one multi-row statement per kind (writes.ts), and wake keys
 * carried to other processes by NOTIFY on a per-schema channel (connection.ts).
 */
import { DatabaseError } from "../../errors.js";
import { loadMigrations, pendingMigrations } from "../migrations.js";
import type { StoreOptions } from "../open.js";
import { listWorkflowsQuery, numbered, OPERATION_COLUMNS, toOperationRow, toWorkflowRow, WORKFLOW_COLUMNS } from "../sql.js";
import type { OperationRow, RecoverRequest, Store, StoredValue, WorkflowFilter, WorkflowRow, Write, WriteResult } from "../store.js";
import { PgConnection, transaction } from "./connection.js";
import { applyBatch, isStreamConflict, writeSql, type WriteSql } from "./writes.js";

/** Serializes migrations across processes and schemas ("duro" in ASCII). */
const MIGRATION_LOCK = 0x6475726f;

function readSql(schema: string) {
  const ws = `${schema}.workflow_status`;
  const ops = `${schema}.operation_outputs`;
  const events = `${schema}.workflow_events`;
  const wfCols = WORKFLOW_COLUMNS.filter((c) => c !== "owner_token").join(", ");
  const opCols = OPERATION_COLUMNS.join(", ");
  // Cancelling or dead-lettering in another process must wake its waiters here, as it would
  // through SQLite's data_version; the keys are what completeWorkflow announces.
  const notifyStatus = (changed: string, channel: string) => `notified AS (
    SELECT pg_notify(${channel}, k) FROM (
      SELECT 'status:' || workflow_id AS k FROM ${changed} UNION ALL SELECT 'queue' WHERE EXISTS (SELECT 1 FROM ${changed})) keys)`;
  return {
    loadWorkflow: `SELECT ${wfCols}, (
        SELECT COALESCE(json_agg(o ORDER BY o.function_id), '[]'::json)
        FROM (SELECT ${opCols} FROM ${ops} op WHERE op.workflow_id = w.workflow_id) o) AS operations
      FROM ${ws} w WHERE w.workflow_id = $1`,
    listOperations: `SELECT ${opCols} FROM ${ops} WHERE workflow_id = $1 ORDER BY function_id LIMIT $2 OFFSET $3`,
    // One UPDATE counts the attempt and dead-letters in the same stroke: `recovery_attempts` on
    // the right-hand side is the value before the increment.
    recoverPending: `WITH counted AS (
        UPDATE ${ws} SET recovery_attempts = recovery_attempts + 1, updated_at = $1,
          status = CASE WHEN recovery_attempts + 1 > $4::bigint THEN 'MAX_RECOVERY_ATTEMPTS_EXCEEDED' ELSE status END,
          queue_name = CASE WHEN recovery_attempts + 1 > $4::bigint THEN NULL ELSE queue_name END,
          deduplication_id = CASE WHEN recovery_attempts + 1 > $4::bigint THEN NULL ELSE deduplication_id END,
          completed_at = CASE WHEN recovery_attempts + 1 > $4::bigint THEN $1 ELSE completed_at END
        WHERE status = 'PENDING' AND executor_id = $2 AND app_version = $3
        RETURNING ${wfCols}),
      dead AS (SELECT workflow_id FROM counted WHERE status <> 'PENDING'),
      ${notifyStatus("dead", "$5")}
      SELECT (SELECT count(*) FROM notified) AS notified, (SELECT json_agg(counted) FROM counted) AS rows`,
    cancelWorkflows: `WITH cancelled AS (
        UPDATE ${ws} SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL, updated_at = $1
        WHERE workflow_id = ANY($2::text[]) AND status IN ('ENQUEUED', 'DELAYED', 'PENDING')
        RETURNING workflow_id),
      ${notifyStatus("cancelled", "$3")}
      SELECT (SELECT count(*) FROM notified) AS notified, (SELECT json_agg(workflow_id) FROM cancelled) AS ids`,
    getEvent: `SELECT value, serialization FROM ${events} WHERE workflow_id = $1 AND key = $2`,
    getAllEvents: `SELECT key, value, serialization FROM ${events} WHERE workflow_id = $1 ORDER BY key COLLATE "C"`,
    readStream: `SELECT value, serialization FROM ${schema}.streams WHERE workflow_id = $1 AND key = $2 AND "offset" >= $3 ORDER BY "offset"`,
  };
}

export class PostgresStore implements Store {
  readonly dialect = "postgres";
  private readonly conn: PgConnection;
  private readonly writes: WriteSql;
  private readonly reads: ReturnType<typeof readSql>;
  private migrated = false;

  constructor(
    /** postgres://user:password@host:port/database[?schema=name] */
    url: string,
    private readonly options: StoreOptions = {},
  ) {
    this.conn = new PgConnection(url, options);
    this.writes = writeSql(this.conn.schema);
    this.reads = readSql(this.conn.schema);
  }

  async migrate(): Promise<void> {
    if (this.migrated) return;
    (await this.conn.connect(this.options.connectTimeoutSeconds ?? 30)).release();
    const { schema, schemaName, where } = this.conn;
    const all = loadMigrations(new URL("./migrations/", import.meta.url));
    try {
      await this.conn.run((client) =>
        transaction(client, async () => {
          await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
          // Only when missing: CREATE SCHEMA checks the CREATE privilege even with IF NOT EXISTS.
          const { rowCount } = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schemaName]);
          if (!rowCount) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
          await client.query(`SET LOCAL search_path TO ${schema}`);
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${schema}.duro_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
          );
          const { rows } = await client.query(`SELECT COALESCE(MAX(version), 0) AS version FROM ${schema}.duro_migrations`);
          for (const migration of pendingMigrations(all, rows[0].version, `${where} (schema ${schemaName})`)) {
            await client.query(migration.sql);
            await client.query(`INSERT INTO ${schema}.duro_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
              migration.version, migration.name, Date.now(),
            ]);
          }
        }),
      );
    } catch (error) {
      if (error instanceof DatabaseError) throw error;
      throw new DatabaseError(`Cannot migrate schema ${schemaName} of PostgreSQL at ${where}: ${(error as Error).message}`, { cause: error });
    }
    this.migrated = true;
  }

  async write(batch: Write[]): Promise<WriteResult[]> {
    if (!batch.length) return [];
    return this.conn.run((client) => applyBatch(client, this.writes, this.conn.channel, batch), isStreamConflict);
  }

  private async query(name: keyof ReturnType<typeof readSql>, values: unknown[]): Promise<Record<string, any>[]> {
    return this.conn.run(async (client) => (await client.query({ name: `duro_${name}`, text: this.reads[name], values })).rows);
  }

  async loadWorkflow(workflowId: string): Promise<{ workflow: WorkflowRow; operations: OperationRow[] } | null> {
    const [row] = await this.query("loadWorkflow", [workflowId]);
    if (!row) return null;
    return { workflow: toWorkflowRow(row), operations: (row.operations as Record<string, unknown>[]).map(toOperationRow) };
  }

  async listWorkflows(filter: WorkflowFilter): Promise<WorkflowRow[]> {
    const { sql, params } = listWorkflowsQuery(`${this.conn.schema}.workflow_status`, filter, (b) => b);
    const text = numbered(sql);
    return this.conn.run(async (client) => (await client.query(text, params)).rows.map(toWorkflowRow));
  }

  async listOperations(workflowId: string, limit?: number, offset?: number): Promise<OperationRow[]> {
    return (await this.query("listOperations", [workflowId, limit ?? null, offset ?? 0])).map(toOperationRow);
  }

  async recoverPending({ executorId, appVersion, maxRecoveryAttempts, now }: RecoverRequest) {
    // Past 2^53 there is no limit worth sending (and Infinity is no bigint).
    const limit = Number.isSafeInteger(maxRecoveryAttempts + 1) ? maxRecoveryAttempts + 1 : null;
    const [row] = await this.query("recoverPending", [now, executorId, appVersion, limit, this.conn.channel]);
    const rows = ((row.rows ?? []) as Record<string, unknown>[]).map(toWorkflowRow);
    rows.sort((a, b) => a.createdAt - b.createdAt || (a.workflowId < b.workflowId ? -1 : 1));
    return {
      recovered: rows.filter((r) => r.status === "PENDING"),
      deadLettered: rows.filter((r) => r.status !== "PENDING").map((r) => r.workflowId),
    };
  }

  async getEvent(workflowId: string, key: string): Promise<StoredValue | null> {
    const [row] = await this.query("getEvent", [workflowId, key]);
    return row ? { value: row.value, serialization: row.serialization } : null;
  }

  async getAllEvents(workflowId: string): Promise<Map<string, StoredValue>> {
    const rows = await this.query("getAllEvents", [workflowId]);
    return new Map(rows.map(({ key, value, serialization }) => [key, { value, serialization }]));
  }

  async readStream(workflowId: string, key: string, offset: number) {
    const rows = await this.query("readStream", [workflowId, key, offset]);
    const end = rows.findIndex((r) => r.value === null);
    const values = (end === -1 ? rows : rows.slice(0, end)).map((r) => ({ value: r.value, serialization: r.serialization }) as StoredValue);
    return { values, closed: end !== -1 };
  }

  async cancelWorkflows(workflowIds: string[], now: number): Promise<string[]> {
    if (!workflowIds.length) return [];
    const [row] = await this.query("cancelWorkflows", [now, workflowIds, this.conn.channel]);
    const changed = new Set<string>(row.ids ?? []);
    return workflowIds.filter((id) => changed.delete(id));
  }

  onExternalChange(listener: (keys: string[] | null) => void): void {
    this.conn.onNotify(listener);
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
