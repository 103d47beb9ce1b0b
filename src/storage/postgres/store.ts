/**
 * The PostgreSQL backend: a pg pool, tables in their own schema (`duro`, or `?schema=` in the
 * URL), batches written with one multi-row statement per kind (writes.ts), and wake keys
 * carried to other processes by NOTIFY on a per-schema channel (connection.ts).
 */
import pg from "pg";
import { DatabaseError, WorkflowConflictError } from "../../errors.js";
import { loadMigrations, migrated, pendingMigrations } from "../migrations.js";
import type { StoreOptions } from "../open.js";
import { type ListDialect, listWorkflowsQuery, numbered, toOperationRow, toWorkflowRow, WORKFLOW_COLUMNS, workflowParams } from "../sql.js";
import {
  forkWakeKeys, partitionsFullHere, type CancelChildren, type ClaimRequest, type Claimed, type ForkRequest, type LoadedWorkflow, type ResumeOptions, type OperationRow, type RecoverRequest, type Store, type StoredValue, type WorkflowFilter, type WorkflowRow, type Write, type WriteResult,
} from "../store.js";
import { PgConnection, RECONNECT_SLACK_MS, refusedFor, transaction } from "./connection.js";
import { storeSql, type StoreSql } from "./queries.js";
import { claimedRows, claimTokenOf, newClaimToken, NOT_INLINED, operationsFrom, takenBefore } from "./claims.js";
import { maintain } from "./maintenance.js";
import { applyBatch, isStreamConflict, packKeys } from "./writes.js";
import { writeSql, type WriteSql } from "./write-sql.js";

/** Serializes migrations across processes and schemas ("duro" in ASCII). */
const MIGRATION_LOCK = 0x6475726f;

/**
 * The list query's dialect. ARRAY(subquery) is read first: PostgreSQL plans `IN (subquery)` as a
 * join, and with a limit may walk the created_at index instead, through every row.
 */
export const postgresLists = (codePointOrder: boolean): ListDialect => ({
  boolean: (b) => b, codePointOrder, idIn: (subquery) => `workflow_id = ANY(ARRAY(${subquery}))`,
});

export class PostgresStore implements Store {
  readonly dialect = "postgres";
  readonly reconnectSlackMs = RECONNECT_SLACK_MS;
  private readonly conn: PgConnection;
  private readonly writes: WriteSql;
  private readonly sql: StoreSql;
  private migrated = false;
  private sortsByCodePoint?: Promise<boolean>;

  constructor(
    /** postgres://user:password@host:port/database[?schema=name] */
    url: string,
    private readonly options: StoreOptions = {},
  ) {
    this.conn = new PgConnection(url, options);
    this.writes = writeSql(this.conn.schema);
    this.sql = storeSql(this.conn.schema);
  }

  async migrate({ create = true }: { create?: boolean } = {}): Promise<void> {
    if (this.migrated) return;
    (await this.conn.connect(this.options.connectTimeoutSeconds ?? 30)).release();
    await this.conn.checkSession();
    const { schema, schemaName, where } = this.conn;
    const all = loadMigrations(new URL("./migrations/", import.meta.url));
    let done: string | undefined;
    try {
      // Up to date: reads only, so a role without CREATE (or a read-only database) may use it,
      // and launches under a lock_timeout do not queue for the migration lock.
      const current = await this.conn.run(async (client) => {
        const tracked = (await client.query("SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'duro_migrations'", [schemaName])).rowCount;
        return tracked ? Number((await client.query(`SELECT COALESCE(MAX(version), 0) AS version FROM ${schema}.duro_migrations`)).rows[0].version) : null;
      });
      if (current !== null && !pendingMigrations(all, current, `${where} (schema ${schemaName})`, create).length) {
        this.migrated = true;
        return;
      }
      done = await this.conn.run((client) =>
        transaction(client, async () => {
          await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
          if (!create && !(await client.query("SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'duro_migrations'", [schemaName])).rowCount) {
            throw new DatabaseError(`There are no duro tables in schema ${schemaName} of PostgreSQL at ${where}: check the database URL; \`duro migrate\` creates them.`);
          }
          // Only when missing: CREATE SCHEMA checks the CREATE privilege even with IF NOT EXISTS.
          const { rowCount } = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schemaName]);
          if (!rowCount) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
          await client.query(`SET LOCAL search_path TO ${schema}`);
          await client.query(
            `CREATE TABLE IF NOT EXISTS ${schema}.duro_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
          );
          const { rows } = await client.query(`SELECT COALESCE(MAX(version), 0) AS version FROM ${schema}.duro_migrations`);
          const from = Number(rows[0].version);
          let to = from;
          for (const migration of pendingMigrations(all, from, `${where} (schema ${schemaName})`, create)) {
            await client.query(migration.sql);
            await client.query(`INSERT INTO ${schema}.duro_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
              migration.version, migration.name, Date.now(),
            ]);
            to = migration.version;
          }
          return migrated(from, to, `${where} (schema ${schemaName})`);
        }),
        undefined,
        Infinity, // a migration of a large table may take long
      );
    } catch (error) {
      const cause = error instanceof DatabaseError ? error.cause : error;
      if (error instanceof DatabaseError && !(cause instanceof pg.DatabaseError)) throw error;
      const reason = cause instanceof pg.DatabaseError ? refusedFor(cause) : (cause as Error).message;
      throw new DatabaseError(`Cannot migrate schema ${schemaName} of PostgreSQL at ${where}: ${reason}`, { cause });
    }
    if (done) this.options.info?.(done);
    this.migrated = true;
  }

  async write(batch: Write[], options: { allOrNothing?: boolean } = {}): Promise<WriteResult[]> {
    if (!batch.length) return [];
    const results = await this.apply(batch, options.allOrNothing);
    for (const result of results) if (result.kind === "claimQueued") await this.inline(result.claimed);
    return results;
  }

  /** Reads, row by row, the operations an aggregating read left out for their size. */
  private async inline(loaded: { workflow: WorkflowRow; operations: OperationRow[] }[]): Promise<void> {
    for (const r of loaded) if (r.operations === NOT_INLINED) r.operations = await this.listOperations(r.workflow.workflowId);
  }

  /** One batch, retried through connection loss (see applyBatch for the attempts after the first). */
  private async apply(batch: Write[], allOrNothing?: boolean): Promise<WriteResult[]> {
    return this.conn.run((client, again) => applyBatch(client, this.writes, this.conn.channel, batch, allOrNothing, again), isStreamConflict);
  }

  /** One named statement on a pooled client, retried through connection loss. */
  private async query(name: keyof StoreSql, values: unknown[]): Promise<Record<string, any>[]> {
    return this.conn.run(async (client) => (await client.query({ name: `duro_${name}`, text: this.sql[name], values })).rows);
  }

  async loadWorkflows(workflowIds: string[]): Promise<LoadedWorkflow[]> {
    if (!workflowIds.length) return [];
    const rows = await this.query("loadWorkflows", [workflowIds]);
    const loaded = rows.map((row) => ({ workflow: toWorkflowRow(row), operations: operationsFrom(row.operations) }));
    await this.inline(loaded);
    return loaded;
  }

  async listWorkflows(filter: WorkflowFilter): Promise<WorkflowRow[]> {
    const codePointOrder = filter.workflowIdPrefix?.length ? await this.codePointOrder() : false;
    const { sql, params } = listWorkflowsQuery(`${this.conn.schema}.workflow_status`, filter, postgresLists(codePointOrder));
    const text = numbered(sql);
    return this.conn.run(async (client) => (await client.query(text, params)).rows.map(toWorkflowRow));
  }

  /**
   * Whether the database sorts text by code point (libc's C, POSIX or C.UTF-8, or the builtin
   * provider), so that a prefix is a range of the primary key. Under a linguistic collation
   * (ICU, en_US…) punctuation and case weigh less, and the range can miss IDs with the prefix.
   */
  private codePointOrder(): Promise<boolean> {
    this.sortsByCodePoint ??= this.conn
      .run(async (client) => {
        const { rows } = await client.query(
          `SELECT datcollate, to_jsonb(d) ->> 'datlocprovider' AS provider FROM pg_database d WHERE datname = current_database()`,
        );
        const { datcollate, provider } = rows[0];
        return provider === "b" || ((provider === null || provider === "c") && /^(C|POSIX|C\.utf-?8)$/i.test(datcollate));
      })
      .catch((error) => {
        this.sortsByCodePoint = undefined;
        throw error;
      });
    return this.sortsByCodePoint;
  }

  async listOperations(workflowId: string, limit?: number, offset?: number): Promise<OperationRow[]> {
    return (await this.query("listOperations", [workflowId, limit ?? null, offset ?? 0])).map(toOperationRow);
  }

  async recoverPending({ executorId, appVersion, maxRecoveryAttempts, now, leaseMs, workflowNames }: RecoverRequest) {
    // Past 2^53 there is no limit worth sending (and Infinity is no bigint).
    const limit = Number.isSafeInteger(maxRecoveryAttempts + 1) ? maxRecoveryAttempts + 1 : null;
    const values = [now, executorId, appVersion, limit, this.conn.channel];
    // Each recovery marks the rows it takes: sent again after a lost reply, it finds them.
    const token = newClaimToken();
    const { before, row } = await this.conn.run(async (client, again) => {
      const before = again ? (await takenBefore(client, this.writes, token, executorId)).map((r) => r.workflow) : [];
      const name = leaseMs === undefined ? "recoverOwn" : "takeOver";
      const params: unknown[] = leaseMs === undefined ? [...values, token] : [...values, now - leaseMs, token, workflowNames ?? []];
      const { rows } = await client.query({ name: `duro_${name}`, text: this.sql[name], values: params });
      return { before, row: rows[0] };
    });
    const rows = [...before, ...((row.rows ?? []) as Record<string, unknown>[]).map(toWorkflowRow)];
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

  async streamClosedBefore(workflowId: string, key: string, offset: number): Promise<boolean> {
    const [row] = await this.query("streamClosedBefore", [workflowId, key, offset]);
    return row.closed;
  }

  async cancelWorkflows(workflowIds: string[], now: number, children: CancelChildren): Promise<string[]> {
    if (!workflowIds.length) return [];
    const [row] = await this.query("cancelWorkflows", [now, workflowIds, this.conn.channel, children]);
    return row.ids ?? [];
  }

  async resumeWorkflows(workflowIds: string[], { queueName, executorId, now, appVersion, otherVersionsQueue }: ResumeOptions) {
    const [row] = await this.query("resumeWorkflows", [workflowIds, queueName, executorId, now, this.conn.channel, appVersion, otherVersionsQueue]);
    return row.ok ? ((row.rows ?? []) as Record<string, unknown>[]).map(toWorkflowRow) : null;
  }

  async forkWorkflow(request: ForkRequest): Promise<WorkflowRow | null> {
    const { newWorkflowId: id, queueName, now, startStep } = request;
    return this.conn.run((client, again) =>
      transaction(client, async () => {
        const { rows } = await client.query({ name: "duro_workflow", text: this.sql.workflow, values: [request.workflowId] });
        if (!rows.length) return null;
        const source = toWorkflowRow(rows[0]);
        const held = async () => {
          const taken = await client.query({ name: "duro_workflow", text: this.sql.workflow, values: [id] });
          if (!taken.rows.length) return null;
          const holder = toWorkflowRow(taken.rows[0]);
          // Sent again after a lost reply: the fork the first commit made is this one.
          if (again && holder.forkedFrom === source.workflowId && holder.createdAt === now) return holder;
          throw new WorkflowConflictError(id, holder.name, source.name);
        };
        const holder = await held();
        if (holder) return holder;
        // Field for field as the SQLite store builds it.
        const row: WorkflowRow = {
          ...source, workflowId: id, status: queueName ? "ENQUEUED" : "PENDING", output: null, error: null,
          executorId: queueName ? null : request.executorId, appVersion: request.appVersion, createdAt: now, updatedAt: now,
          startedAt: queueName ? null : now, completedAt: null, recoveryAttempts: queueName ? 0 : 1, queueName, priority: 0,
          deduplicationId: null, partitionKey: request.partitionKey, timeoutMs: request.timeoutMs,
          deadlineEpochMs: request.timeoutMs !== null && !queueName ? now + request.timeoutMs : null, delayUntilEpochMs: null,
          parentWorkflowId: null, forkedFrom: source.workflowId, wasForkedFrom: false,
        };
        const params = workflowParams(row, null, (b) => b);
        const record = Object.fromEntries(WORKFLOW_COLUMNS.map((column, i) => [column, params[i]]));
        const payloads = packKeys(forkWakeKeys(row));
        const forked = await client.query({
          name: "duro_fork",
          text: this.sql.fork,
          values: [this.conn.channel, payloads, JSON.stringify(record), source.workflowId, id, now, startStep],
        });
        // A concurrent fork to the same ID committed between the check above and this insert.
        if (Number(forked.rows[0].inserted) === 0) {
          return (await held()) ?? Promise.reject(new WorkflowConflictError(id, "(deleted since)", source.name));
        }
        return row;
      }),
    );
  }

  async setWorkflowDelay(workflowId: string, delayUntilEpochMs: number, now: number): Promise<string | null> {
    const [row] = await this.query("setWorkflowDelay", [delayUntilEpochMs, now, workflowId, this.conn.channel]);
    return row.queue;
  }

  maintain(): Promise<string[]> {
    return maintain(this.conn);
  }

  async queuesWithWork(queueNames: string[], now: number): Promise<string[]> {
    const [row] = await this.query("queuesWithWork", [queueNames, now]);
    return row.names ?? [];
  }

  /**
   * Claims on one queue take turns on an advisory lock, so the concurrency and rate counts each
   * claim reads stay true until it commits; everything else runs alongside.
   */
  async claimQueued(request: ClaimRequest): Promise<Claimed> {
    const result = await this.claim(request);
    await this.inline(result.claimed);
    return result;
  }

  private async claim(request: ClaimRequest): Promise<Claimed> {
    const { queueName, executorId, appVersion, workflowNames, partitioned } = request;
    if (!partitioned && request.concurrency === undefined && !request.rateLimit) {
      // A queue without shared limits needs no lock: one autocommitted statement promotes due
      // DELAYED rows and claims with SKIP LOCKED, so executors never wait on each other. It is
      // claimed until empty or the batch is full (promoted rows are claimable from the next pass).
      const claimed: Claimed["claimed"] = [];
      for (;;) {
        const [result] = await this.apply([{ kind: "claimQueued", request: { ...request, max: request.max - claimed.length } }]);
        const { claimed: rows, nextDelayedAt, moreQueued } = result as Extract<WriteResult, { kind: "claimQueued" }>;
        claimed.push(...rows);
        if (!moreQueued || claimed.length >= request.max) return { claimed, nextDelayedAt, moreQueued: claimed.length >= request.max };
      }
    }
    return this.conn.run((client, again) =>
      transaction(client, async () => {
        const run = async (name: keyof StoreSql, values: unknown[]) =>
          (await client.query({ name: `duro_${name}`, text: this.sql[name], values })).rows[0];
        // Stamped and counted by one clock, read once the lock is held: the rate limit holds by the
        // time claims commit, whatever the executors' clocks say and however long the lock took.
        const locked = await run("lockQueue", [`${this.conn.schemaName}.${queueName}`, request.now, queueName, partitioned, request.concurrency ?? null, request.rateLimit ? null : request.max, partitionsFullHere(request)]);
        const now = Number(locked.now);
        let last: { next: string | null; queued: boolean } | undefined;
        let rateOpensInMs: number | undefined;
        // Sent again after a lost reply: what the first commit took is ours, and runs here.
        const claimed = again ? await takenBefore(client, this.writes, claimTokenOf(request), executorId) : [];
        const running = { ...request.perPartition?.running };
        for (const { workflow } of claimed) running[workflow.partitionKey ?? ""] = (running[workflow.partitionKey ?? ""] ?? 0) + 1;
        let partitions = (partitioned ? locked.partitions ?? [] : [null]) as (string | null)[];
        const rate = request.rateLimit;
        if (partitioned && !rate && workflowNames.length && claimed.length < request.max) {
          // The partitions of a key at once (see claimPartitions); the one of no key after.
          const rooms = partitions.filter((key) => key !== null).map((key) => {
            const perPartition = request.perPartition;
            return [key, perPartition ? perPartition.workerConcurrency - (running[key] ?? 0) : request.max] as const;
          }).filter(([, room]) => room > 0);
          if (rooms.length) {
            const result = await run("claimPartitions", [
              queueName, now, request.max - claimed.length, request.concurrency ?? null, rooms.map(([key]) => key), rooms.map(([, room]) => room),
              workflowNames, appVersion, executorId, claimTokenOf(request), request.liveSince,
            ]);
            claimed.push(...claimedRows(result.claimed));
          }
          partitions = partitions.filter((key) => key === null);
        }
        for (const partition of partitions) {
          const left = request.max - claimed.length;
          if (left <= 0 || workflowNames.length === 0) break;
          const perPartition = request.perPartition;
          const budget = perPartition ? Math.min(left, perPartition.workerConcurrency - (running[partition ?? ""] ?? 0)) : left;
          if (budget <= 0) continue;
          const result = await run(partition === null ? "claim" : "claimPartition", [
            queueName, now, budget, request.concurrency ?? null, rate?.limit ?? null, partitioned, partition,
            rate ? now - rate.periodMs : null, workflowNames, appVersion, executorId, claimTokenOf(request), request.liveSince,
          ]);
          claimed.push(...claimedRows(result.claimed));
          if (result.opens_in !== null) rateOpensInMs = Math.min(rateOpensInMs ?? Infinity, Number(result.opens_in));
          last = result;
        }
        // The claim's statement tells what is left in the queue, unless it was one of several (partitions) or none.
        const { next, queued } = !partitioned && last ? last : await run("nextDelayed", [queueName]);
        return { claimed, nextDelayedAt: next === null ? null : Number(next), moreQueued: queued, rateOpensInMs };
      }),
    );
  }

  async heartbeat(executorId: string, appVersion: string, clock: () => number): Promise<number> {
    return this.conn.run(async (client) => {
      const now = clock();
      await client.query({ name: "duro_heartbeat", text: this.sql.heartbeat, values: [executorId, now, appVersion] });
      return now;
    });
  }

  async leave(executorId: string, appVersion: string): Promise<void> {
    await this.conn.run((client) => client.query({ name: "duro_leave", text: this.sql.leave, values: [executorId, appVersion] }));
  }

  onExternalChange(listener: (keys: string[] | null) => void): void {
    this.conn.onNotify(listener);
  }

  onConnectionLost(listener: () => void): void {
    this.conn.onTrouble(listener);
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
