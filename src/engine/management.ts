/** Conversions between the public management API and the store: filters in, step records out. */
import { InvalidArgumentError } from "../errors.js";
import { deserialize, deserializeError } from "../serialization.js";
import type { OperationRow, WorkflowFilter, WorkflowStatusString } from "../storage/store.js";
import type { ListWorkflowsFilter, StepInfo } from "../types.js";

const STATUSES: WorkflowStatusString[] = ["ENQUEUED", "DELAYED", "PENDING", "SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"];

const many = (name: string, value: string | string[] | undefined): string[] | undefined => {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === "string")) throw new InvalidArgumentError(`${name} must be a string or an array of strings.`);
  return list;
};

function time(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`${name} must be an RFC 3339 timestamp such as "2026-01-31T12:00:00Z", got ${JSON.stringify(value)}.`);
  return ms;
}

function count(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${value}.`);
  return value;
}

export function toStoreFilter(filter: ListWorkflowsFilter): WorkflowFilter {
  const status = many("status", filter.status) as WorkflowStatusString[] | undefined;
  for (const s of status ?? []) if (!STATUSES.includes(s)) throw new InvalidArgumentError(`Unknown status "${s}"; expected one of ${STATUSES.join(", ")}.`);
  if (filter.workflowIds !== undefined && !Array.isArray(filter.workflowIds)) throw new InvalidArgumentError("workflowIds must be an array of strings.");
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
