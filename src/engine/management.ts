/** Management calls shared by Duro and DuroClient, and their conversions to and from the store. */
import { InvalidArgumentError, WorkflowNotFoundError } from "../errors.js";
import { deserialize, deserializeError, deserializeInputs } from "../serialization.js";
import { forkWakeKeys, type OperationRow, type WorkflowFilter, type WorkflowRow, type WorkflowStatusString } from "../storage/store.js";
import type { ForkOptions, ListWorkflowsFilter, StepInfo, WorkflowStatus } from "../types.js";
import { INTERNAL_QUEUE, type Engine } from "./engine.js";
import { uuidv7 } from "./ids.js";
import { checkKey, checkOptions, checkText, KEYS, optionalBoolean, shown } from "./checks.js";
import { queueOf, validateStart } from "./start.js";
import { secondsAfter, storedMs } from "./timers.js";

const STATUSES: WorkflowStatusString[] = ["ENQUEUED", "DELAYED", "PENDING", "SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"];

const many = (name: string, value: string | readonly string[] | undefined): string[] | undefined => {
  if (value === undefined) return undefined;
  const list: string[] = typeof value === "string" ? [value] : Array.isArray(value) ? [...value] : [value as never];
  if (!list.every((v) => typeof v === "string")) throw new InvalidArgumentError(`${name} must be a string or an array of strings.`);
  for (const v of list) checkText(name, v);
  return list;
};

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?$/;

function time(name: string, value: string | Date | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime();
  return rfc3339(name, value);
}

/** The epoch milliseconds of an RFC 3339 timestamp, or InvalidArgumentError naming `name`. */
export function rfc3339(name: string, value: unknown): number {
  const text = typeof value === "string" ? value : "";
  const match = RFC3339.exec(text);
  const ms = match ? Date.parse(text) : NaN;
  // Date.parse rolls impossible dates over (Feb 30 → Mar 1): compare the calendar date it read.
  const [y, m, d, hh = "0", mm = "0", ss = "0"] = match?.slice(1) ?? [];
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  const calendar = match && new Date(new Date(0).setUTCFullYear(Number(y), Number(m) - 1, Number(d)));
  const valid =
    calendar && !Number.isNaN(ms) && calendar.getUTCFullYear() === Number(y) && calendar.getUTCMonth() === Number(m) - 1 &&
    calendar.getUTCDate() === Number(d) && Number(hh) < 24 && Number(mm) < 60 && Number(ss) < 60;
  if (!valid) throw new InvalidArgumentError(`${name} must be an RFC 3339 timestamp such as "2026-01-31T12:00:00Z", got ${JSON.stringify(value)}.`);
  return ms;
}

function count(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer (at most 2^53 - 1), got ${shown(value)}.`);
  return value;
}

/** Below both databases' limits on a statement's parameters (SQLite 32,766; PostgreSQL 65,535), prefixes taking up to four each. */
const MAX_FILTER_VALUES = 5000;

export function toStoreFilter(given: ListWorkflowsFilter | null | undefined): WorkflowFilter {
  const filter = checkOptions("listWorkflows", given, KEYS.filter);
  for (const key of ["sortDesc", "loadInput", "loadOutput", "queuesOnly", "wasForkedFrom", "hasParent"] as const) optionalBoolean(key, filter[key]);
  const status = many("status", filter.status) as WorkflowStatusString[] | undefined;
  for (const s of status ?? []) if (!STATUSES.includes(s)) throw new InvalidArgumentError(`Unknown status "${s}"; expected one of ${STATUSES.join(", ")}.`);
  if (filter.workflowIds !== undefined && !Array.isArray(filter.workflowIds)) throw new InvalidArgumentError("workflowIds must be an array of strings.");
  const values = Object.values(filter).reduce((n: number, v) => n + (Array.isArray(v) ? v.length : 0), 0);
  if (values > MAX_FILTER_VALUES) {
    throw new InvalidArgumentError(`A listing's filters take at most ${MAX_FILTER_VALUES} values in all (each is a statement parameter), got ${values}: list in parts.`);
  }
  return {
    workflowIds: many("workflowIds", filter.workflowIds),
    status: status ?? (filter.queuesOnly ? ["ENQUEUED", "DELAYED", "PENDING"] : undefined),
    startTime: time("startTime", filter.startTime),
    endTime: time("endTime", filter.endTime),
    name: many("name", filter.name),
    appVersion: many("appVersion", filter.appVersion),
    forkedFrom: many("forkedFrom", filter.forkedFrom),
    parentWorkflowId: many("parentWorkflowId", filter.parentWorkflowId),
    user: many("user", filter.user),
    queueName: many("queueName", filter.queueName),
    executorId: many("executorId", filter.executorId),
    workflowIdPrefix: many("workflowIdPrefix", filter.workflowIdPrefix),
    limit: count("limit", filter.limit),
    offset: count("offset", filter.offset),
    sortDesc: filter.sortDesc ?? false,
    loadInput: filter.loadInput ?? true,
    loadOutput: filter.loadOutput ?? true,
    queuesOnly: filter.queuesOnly ?? false,
    wasForkedFrom: filter.wasForkedFrom,
    hasParent: filter.hasParent,
  };
}

export function toStepInfo(op: OperationRow): StepInfo {
  const format = op.serialization ?? "default";
  return {
    functionId: op.functionId,
    functionName: op.functionName,
    output: op.output === null ? null : deserialize(op.output, format),
    error: op.error === null ? null : deserializeError(op.error, format),
    childWorkflowId: op.childWorkflowId,
    startedAtEpochMs: op.startedAt,
    completedAtEpochMs: op.completedAt,
  };
}

export function checkIds(workflowIds: readonly string[]): string[] {
  if (!Array.isArray(workflowIds) || !workflowIds.every((id) => typeof id === "string" && id !== "")) {
    throw new InvalidArgumentError("Expected an array of workflow IDs (non-empty strings).");
  }
  for (const id of workflowIds) checkKey("workflowId", id);
  return [...workflowIds];
}

/** Cancels workflows, with their descendants only when asked (`cancelChildren`). */
export function cancel(engine: Engine, workflowIds: readonly string[], given?: { cancelChildren?: boolean | null | undefined } | null): Promise<void> {
  const options = checkOptions("cancelWorkflow", given, ["cancelChildren"]);
  if (!["undefined", "boolean"].includes(typeof options.cancelChildren)) throw new InvalidArgumentError("cancelChildren must be true or false.");
  return engine.cancel(checkIds(workflowIds), options.cancelChildren ? "all" : "none");
}

export async function listWorkflows(engine: Engine, filter: ListWorkflowsFilter | null | undefined): Promise<WorkflowStatus[]> {
  return (await engine.store.listWorkflows(toStoreFilter(filter))).map(toStatus);
}

export async function listWorkflowSteps(engine: Engine, workflowId: string, options: { limit?: number | null | undefined; offset?: number | null | undefined } | null | undefined): Promise<StepInfo[]> {
  checkKey("workflowId", workflowId);
  const { limit, offset } = checkOptions("listWorkflowSteps", options, ["limit", "offset"]);
  count("limit", limit);
  count("offset", offset);
  // An unknown workflow has no steps, as in the reference library: a listing, not a lookup.
  return (await engine.store.listOperations(workflowId, limit, offset)).map(toStepInfo);
}

export async function setWorkflowDelay(engine: Engine, workflowId: string, options: { delaySeconds?: number | null | undefined; delayUntilEpochMs?: number | null | undefined } | null): Promise<void> {
  checkKey("workflowId", workflowId);
  const { delaySeconds, delayUntilEpochMs } = checkOptions("setWorkflowDelay", options, ["delaySeconds", "delayUntilEpochMs"]);
  if ((delaySeconds === undefined) === (delayUntilEpochMs === undefined)) {
    throw new InvalidArgumentError("setWorkflowDelay() takes exactly one of delaySeconds or delayUntilEpochMs.");
  }
  const until = delaySeconds !== undefined ? secondsAfter(Date.now(), delaySeconds) : storedMs(delayUntilEpochMs!);
  const value = delaySeconds ?? delayUntilEpochMs;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(`The delay must be a non-negative number, got ${shown(value)}.`);
  }
  await setDelay(engine, workflowId, until);
}

/** Restarts workflows from their last completed step, here or (with a queue) through it. */
export async function resume(engine: Engine, workflowIds: string[], options: { queueName?: string | null | undefined } | null | undefined): Promise<void> {
  let queueName = checkOptions("resumeWorkflow", options, ["queueName"]).queueName ?? null;
  // A resumed workflow keeps its partition key (none, on a partitioned queue, is a partition of its own).
  if (queueName !== null) queueOf(engine, queueName);
  if (engine.client) queueName ??= INTERNAL_QUEUE;
  // Until they run here, no look for orphans takes them for some (see Recovery.adoptOrphans).
  await engine.recovery.takingHere(workflowIds, async () => {
    const rows = await engine.store.resumeWorkflows(workflowIds, {
      queueName, executorId: engine.executorId, appVersion: engine.appVersion, otherVersionsQueue: INTERNAL_QUEUE, now: Date.now(),
    });
    if (rows === null) {
      // Which one is unknown, looked up in parts that keep within the databases' parameter limits.
      for (let i = 0; i < workflowIds.length; i += MAX_FILTER_VALUES) {
        const part = workflowIds.slice(i, i + MAX_FILTER_VALUES);
        const found = new Set((await engine.store.listWorkflows({ workflowIds: part, loadInput: false, loadOutput: false })).map((r) => r.workflowId));
        const unknown = part.find((id) => !found.has(id));
        if (unknown !== undefined) throw new WorkflowNotFoundError(unknown);
      }
      throw new WorkflowNotFoundError(workflowIds[0]);
    }
    engine.announce(["queue", ...rows.map((r) => `status:${r.workflowId}`)]);
    for (const row of rows) {
      if (row.status === "PENDING") await engine.recovery.resumeHere(row.workflowId);
      // Queued now (asked, or of another app version): a run here stops at its next step, keeping
      // the outcome of one under way, as after a cancel.
      else engine.stopRun(row.workflowId, "cancelled");
    }
  });
}

/**
 * Starts a copy of a workflow that reuses the outputs of operations before `startStep`: 1 or less
 * copies nothing (everything runs again), past the last recorded operation copies everything.
 */
export async function fork(engine: Engine, workflowId: string, startStep: number, given?: ForkOptions | null): Promise<string> {
  checkKey("workflowId", workflowId);
  const options = checkOptions("forkWorkflow", given, KEYS.fork);
  if (!Number.isSafeInteger(startStep)) throw new InvalidArgumentError(`startStep must be an integer, got ${shown(startStep)}.`);
  if (options.newWorkflowId !== undefined && options.workflowId !== undefined && options.newWorkflowId !== options.workflowId) {
    throw new InvalidArgumentError("forkWorkflow got both newWorkflowId and workflowId, and they differ: give one.");
  }
  const { newWorkflowId = options.workflowId ?? uuidv7(), appVersion, partitionKey, timeoutSeconds } = options;
  if (appVersion != null) checkKey("appVersion", appVersion);
  if (partitionKey !== undefined && options.queueName === undefined) throw new InvalidArgumentError("A fork's partitionKey needs a queueName too.");
  // Runs here at once unless queued, asked of a client, or for another version than this executor's:
  // then an executor of that version takes it from the internal queue.
  const elsewhere = engine.client || (appVersion !== undefined && appVersion !== engine.appVersion);
  const queueName = options.queueName ?? (elsewhere ? INTERNAL_QUEUE : undefined);
  validateStart(engine, { workflowId: newWorkflowId, queueName, partitionKey, timeoutSeconds });
  await engine.recovery.takingHere([newWorkflowId], async () => {
    const row = await engine.store.forkWorkflow({
      workflowId, newWorkflowId, startStep: Math.min(Math.max(startStep, 1), 2 ** 31 - 1), appVersion: appVersion ?? (engine.client ? null : engine.appVersion),
      queueName: queueName ?? null, partitionKey: partitionKey ?? null, executorId: engine.executorId,
      timeoutMs: timeoutSeconds !== undefined ? storedMs(timeoutSeconds * 1000) : null, now: Date.now(),
    });
    if (!row) throw new WorkflowNotFoundError(workflowId);
    engine.announce(["queue", ...forkWakeKeys(row)]);
    if (!queueName) await engine.recovery.resumeHere(newWorkflowId);
  });
  return newWorkflowId;
}

export async function setDelay(engine: Engine, workflowId: string, delayUntilEpochMs: number): Promise<void> {
  const queue = await engine.store.setWorkflowDelay(workflowId, delayUntilEpochMs, Date.now());
  if (queue === null && (await engine.getStatus(workflowId)) === null) throw new WorkflowNotFoundError(workflowId);
  // The same keys as a delayed enqueue's: its queue looks (and promotes) at the new time.
  if (queue !== null) engine.announce([`due:${delayUntilEpochMs}:${queue}`, `status:${workflowId}`]);
}

export function toStatus(row: WorkflowRow): WorkflowStatus {
  const status: WorkflowStatus = {
    workflowId: row.workflowId, status: row.status, workflowName: row.name, queueName: row.queueName, executorId: row.executorId,
    appVersion: row.appVersion, authenticatedUser: row.authenticatedUser, recoveryAttempts: row.recoveryAttempts, createdAt: row.createdAt,
    updatedAt: row.updatedAt, startedAtEpochMs: row.startedAt, completedAtEpochMs: row.completedAt, timeoutMs: row.timeoutMs,
    deadlineEpochMs: row.deadlineEpochMs, delayUntilEpochMs: row.delayUntilEpochMs, priority: row.priority, deduplicationId: row.deduplicationId,
    partitionKey: row.partitionKey, parentWorkflowId: row.parentWorkflowId, forkedFrom: row.forkedFrom, wasForkedFrom: row.wasForkedFrom,
  };
  if (row.inputs !== null) status.input = deserializeInputs(row.inputs, row.serialization);
  if (row.output !== null) status.output = deserialize(row.output, row.serialization);
  if (row.error !== null) status.error = deserializeError(row.error, row.serialization);
  return status;
}
