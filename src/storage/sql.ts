/**
 * SQL shared by both backends: column lists, row mapping and the workflow-list query.
 * Placeholders are written `?` and renumbered to `$n` for PostgreSQL by `numbered()`.
 */
import type { SerializationFormat } from "../serialization.js";
import type { OperationRow, WorkflowFilter, WorkflowRow, WorkflowStatusString, Write } from "./store.js";

/** Columns of workflow_status in the order `workflowParams()` binds them. */
export const WORKFLOW_COLUMNS = [
  "workflow_id", "status", "name", "authenticated_user", "inputs", "output", "error", "serialization",
  "executor_id", "app_version", "created_at", "updated_at", "started_at", "completed_at", "recovery_attempts",
  "queue_name", "priority", "deduplication_id", "partition_key", "timeout_ms", "deadline_epoch_ms",
  "delay_until_epoch_ms", "parent_workflow_id", "forked_from", "was_forked_from", "owner_token",
] as const;

export function workflowParams(row: WorkflowRow, ownerToken: string | null, booleans: (b: boolean) => unknown): unknown[] {
  return [
    row.workflowId, row.status, row.name, row.authenticatedUser, row.inputs, row.output, row.error, row.serialization,
    row.executorId, row.appVersion, row.createdAt, row.updatedAt, row.startedAt, row.completedAt, row.recoveryAttempts,
    row.queueName, row.priority, row.deduplicationId, row.partitionKey, row.timeoutMs, row.deadlineEpochMs,
    row.delayUntilEpochMs, row.parentWorkflowId, row.forkedFrom, booleans(row.wasForkedFrom), ownerToken,
  ];
}

/**
 * Whether our own insert, read back after a commit whose fate was unknown, went in as the
 * `claimed` form: PENDING on the writer's executor since the claimed start time.
 */
export function isClaimed(write: Extract<Write, { kind: "insertWorkflow" }>, stored: Record<string, any>): boolean {
  const { claimed } = write;
  return claimed !== undefined && stored.status === "PENDING" && stored.executor_id === claimed.executorId && Number(stored.started_at) === claimed.startedAt;
}

export const OPERATION_COLUMNS = [
  "workflow_id", "function_id", "function_name", "output", "error", "serialization", "child_workflow_id", "started_at", "completed_at",
] as const;

export function operationParams(op: OperationRow): unknown[] {
  return [op.workflowId, op.functionId, op.functionName, op.output, op.error, op.serialization, op.childWorkflowId, op.startedAt, op.completedAt];
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function toWorkflowRow(r: Record<string, any>): WorkflowRow {
  return {
    workflowId: r.workflow_id,
    status: r.status as WorkflowStatusString,
    name: r.name,
    authenticatedUser: r.authenticated_user ?? null,
    inputs: r.inputs ?? null,
    output: r.output ?? null,
    error: r.error ?? null,
    serialization: r.serialization as SerializationFormat,
    executorId: r.executor_id ?? null,
    appVersion: r.app_version ?? null,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    startedAt: num(r.started_at),
    completedAt: num(r.completed_at),
    recoveryAttempts: Number(r.recovery_attempts),
    queueName: r.queue_name ?? null,
    priority: Number(r.priority),
    deduplicationId: r.deduplication_id ?? null,
    partitionKey: r.partition_key ?? null,
    timeoutMs: num(r.timeout_ms),
    deadlineEpochMs: num(r.deadline_epoch_ms),
    delayUntilEpochMs: num(r.delay_until_epoch_ms),
    parentWorkflowId: r.parent_workflow_id ?? null,
    forkedFrom: r.forked_from ?? null,
    wasForkedFrom: Boolean(r.was_forked_from),
  };
}

export function toOperationRow(r: Record<string, any>): OperationRow {
  return {
    workflowId: r.workflow_id,
    functionId: Number(r.function_id),
    functionName: r.function_name,
    output: r.output ?? null,
    error: r.error ?? null,
    serialization: (r.serialization ?? null) as SerializationFormat | null,
    childWorkflowId: r.child_workflow_id ?? null,
    startedAt: num(r.started_at),
    completedAt: num(r.completed_at),
  };
}

/** The statuses of waiting and running workflows, which partial indexes cover. */
const LIVE: readonly string[] = ["ENQUEUED", "PENDING", "DELAYED"];

/** What the list query needs to know of its database. */
export interface ListDialect {
  /** A boolean as a parameter. */
  boolean(b: boolean): unknown;
  /** The database sorts IDs by code point, so that a prefix is a range of the primary key. */
  codePointOrder: boolean;
  /** `workflow_id` among the IDs a subquery returns, in a form whose plan reads the subquery first. */
  idIn(subquery: string): string;
}

/** The list query for a filter. `table` is the (possibly schema-qualified) workflow_status table. */
export function listWorkflowsQuery(table: string, filter: WorkflowFilter, dialect: ListDialect): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const oneOf = (column: string, values: unknown[] | undefined) => {
    if (values === undefined) return;
    if (values.length === 0) {
      where.push("1 = 0");
      return;
    }
    where.push(`${column} IN (${values.map(() => "?").join(", ")})`);
    params.push(...values);
  };
  oneOf("workflow_id", filter.workflowIds);
  // Waiting and running rows are few and the newest, and each of their statuses has a partial
  // index: read by status, below.
  const live = filter.status?.length && filter.status.every((s) => LIVE.includes(s)) ? [...new Set(filter.status)] : undefined;
  if (!live) oneOf("status", filter.status);
  oneOf("name", filter.name);
  oneOf("app_version", filter.appVersion);
  oneOf("forked_from", filter.forkedFrom);
  oneOf("parent_workflow_id", filter.parentWorkflowId);
  oneOf("authenticated_user", filter.user);
  oneOf("queue_name", filter.queueName);
  oneOf("executor_id", filter.executorId);
  if (filter.startTime !== undefined) {
    where.push("created_at >= ?");
    params.push(filter.startTime);
  }
  if (filter.endTime !== undefined) {
    where.push("created_at <= ?");
    params.push(filter.endTime);
  }
  if (filter.workflowIdPrefix !== undefined) where.push(byPrefix(filter.workflowIdPrefix, dialect, table, params));
  // Without a status filter, toStoreFilter asks for the waiting and running ones.
  if (filter.queuesOnly) where.push("queue_name IS NOT NULL");
  if (filter.wasForkedFrom !== undefined) {
    where.push("was_forked_from = ?");
    params.push(dialect.boolean(filter.wasForkedFrom));
  }
  if (filter.hasParent !== undefined) where.push(filter.hasParent ? "parent_workflow_id IS NOT NULL" : "parent_workflow_id IS NULL");
  const columns = WORKFLOW_COLUMNS.filter((c) => c !== "owner_token")
    .map((c) => {
      if (c === "inputs" && filter.loadInput === false) return "NULL AS inputs";
      if ((c === "output" || c === "error") && filter.loadOutput === false) return `NULL AS ${c}`;
      return c;
    })
    .join(", ");
  const order = filter.sortDesc ? "DESC" : "ASC";
  const select = (terms: string[]) => `SELECT ${columns} FROM ${table}${terms.length ? ` WHERE ${terms.join(" AND ")}` : ""}`;
  let sql: string;
  if (live) {
    // One status at a time, each a constant: both databases then read its partial index (SQLite
    // reads none for a status among others, nor for a parameter). Sorted by an expression, so that
    // with a limit, oldest first, PostgreSQL does not walk the created_at index instead, past every
    // finished row (1 s with a million). The other terms apply outside, once (their parameters
    // too): both databases push them down into each part.
    const parts = live.map((s) => select([`status = '${s}'`])).join(" UNION ALL ");
    sql = `SELECT * FROM (${parts}) AS live${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at + 0 ${order}, workflow_id ${order}`;
  } else sql = `${select(where)} ORDER BY created_at ${order}, workflow_id ${order}`;
  if (filter.limit !== undefined || filter.offset !== undefined) {
    sql += " LIMIT ?"; // SQLite needs a LIMIT before an OFFSET
    params.push(filter.limit ?? Number.MAX_SAFE_INTEGER);
  }
  if (filter.offset !== undefined) {
    sql += " OFFSET ?";
    params.push(filter.offset);
  }
  return { sql, params };
}

/** Past this many prefixes, their ranges are read as a table (SQLite plans ORs in quadratic time). */
const FEW_PREFIXES = 32;

/** The term for IDs with one of the prefixes; its parameters pushed onto `params`. */
function byPrefix(given: string[], dialect: ListDialect, table: string, params: unknown[]): string {
  const prefixes = fewest(given);
  if (!prefixes.length) return "1 = 0";
  if (!dialect.codePointOrder) {
    // No range: each ID's first characters, looked up among the prefixes of that length.
    const byLength = new Map<number, string[]>();
    for (const prefix of prefixes) {
      const length = [...prefix].length;
      byLength.set(length, byLength.get(length) ?? []);
      byLength.get(length)!.push(prefix);
    }
    return anyOf([...byLength].map(([length, group]) => {
      params.push(...group);
      return `substr(workflow_id, 1, ${length}) IN (${group.map(() => "?").join(", ")})`;
    }));
  }
  // The prefix itself is checked in every case (not LIKE: `%` and `_` stay literal).
  const starts = "substr(workflow_id, 1, length(CAST(? AS TEXT))) = CAST(? AS TEXT)";
  const terms: string[] = [];
  const ranges = prefixes.map((prefix) => [prefix, after(prefix)] as const);
  const bounded = ranges.filter((range): range is readonly [string, string] => range[1] !== null);
  if (bounded.length > FEW_PREFIXES) {
    terms.push(dialect.idIn(`SELECT w.workflow_id FROM (VALUES ${bounded.map(() => "(?, ?)").join(", ")}) AS p JOIN ${table} AS w
      ON w.workflow_id >= p.column1 AND w.workflow_id < p.column2 AND substr(w.workflow_id, 1, length(p.column1)) = p.column1`));
    params.push(...bounded.flat());
  } else {
    for (const [prefix, above] of bounded) {
      terms.push(`(workflow_id >= ? AND workflow_id < ? AND ${starts})`);
      params.push(prefix, above, prefix, prefix);
    }
  }
  // Only U+10FFFF: every ID from it on starts with it.
  for (const [prefix] of ranges.filter(([, above]) => above === null)) {
    terms.push(`(workflow_id >= ? AND ${starts})`);
    params.push(prefix, prefix, prefix);
  }
  return anyOf(terms);
}

/**
 * The prefixes without duplicates, nor any that a shorter one covers: their ranges do not overlap,
 * so that an ID joins one at most. (Sorted, a prefix's extensions follow it.)
 */
function fewest(prefixes: string[]): string[] {
  const kept: string[] = [];
  for (const prefix of [...new Set(prefixes)].sort()) {
    const last = kept[kept.length - 1];
    // Half a surrogate pair is no code point prefix of a string that goes on with the other half.
    if (last !== undefined && prefix.startsWith(last) && !/[\uD800-\uDBFF]$/.test(last)) continue;
    kept.push(prefix);
  }
  return kept;
}

/** Terms joined by OR: on SQLite a few (past 32 prefixes, one table of ranges), far below its depth limit of 1,000; PostgreSQL takes a chain of any length. */
const anyOf = (terms: string[]) => `(${terms.join(" OR ")})`;

/**
 * The first string after every string that starts with `prefix`, in code point order: its last
 * character not U+10FFFF, one up (past the surrogates), and what followed it dropped; null if none.
 */
function after(prefix: string): string | null {
  const chars = [...prefix];
  while (chars.length && chars[chars.length - 1] === "\u{10FFFF}") chars.pop();
  if (!chars.length) return null;
  const next = chars.pop()!.codePointAt(0)! + 1;
  return chars.join("") + String.fromCodePoint(next === 0xd800 ? 0xe000 : next);
}

/** `?` placeholders to PostgreSQL's `$1, $2, …` (none of our SQL has `?` inside a string literal). */
export function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}
