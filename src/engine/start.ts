/**
 * Starting workflows: the row of a new workflow (arguments serialized first, so bad input writes
 * nothing), the checks on start options, and the start itself — one commit that inserts the row
 * and, for a child, records the parent's operation.
 */
import { randomUUID } from "node:crypto";
import { DuplicateWorkflowError, InvalidArgumentError, WorkflowConflictError } from "../errors.js";
import { serialize, serializeError, serializeInputs, type SerializationFormat } from "../serialization.js";
import { refusalOf, wakeKeysOf, type OperationRow, type WorkflowRow, type Write, type WriteResult } from "../storage/store.js";
import type { StartOptions } from "../types.js";
import { currentRun } from "./context.js";
import { uuidv7 } from "./ids.js";
import { checkFormat, checkKey, checkOptions, checkPositive, checkSeconds, checkText, KEYS, shown, type Given } from "./checks.js";
import type { Engine } from "./engine.js";
import { errorOf, failedHere, keptBefore, operation, record, recordedBefore, replayed } from "./checkpoint.js";
import { secondsAfter, storedMs } from "./timers.js";

/**
 * Starts `name` with `args` (or returns the existing workflow with that ID); with a queue it
 * is enqueued instead. Inside a workflow this is the operation that starts a child: its ID
 * defaults to `<parent>-<N>`. A client engine may enqueue workflows it has not registered.
 */
/**
 * Start options as given: null is "not given" (Python's None), except that a null
 * `timeoutSeconds` or `deadlineEpochMs` means no deadline at all, not even a parent's.
 */
export type Start = Given<StartOptions, "timeoutSeconds" | "deadlineEpochMs">;
export const startOptions = (method: string, options: StartOptions | null | undefined): Start =>
  checkOptions(method, options, KEYS.start, ["timeoutSeconds", "deadlineEpochMs"]);

export async function start(engine: Engine, name: string, args: unknown[], given: StartOptions): Promise<string> {
  const options = startOptions("startWorkflow", given);
  const workflow = engine.workflows.get(name);
  if (!workflow && !engine.client) throw new InvalidArgumentError(`No workflow named "${name}" is registered on this Duro instance.`);
  if (engine.client && !options.queueName) throw new InvalidArgumentError("A client can only enqueue: give a queueName.");
  validateStart(engine, options);
  const { parent, functionId, recorded } = childOperation(engine, name);
  if (recorded) {
    if (recorded.error) throw errorOf(recorded);
    return recorded.childWorkflowId!;
  }
  const workflowId = options.workflowId ?? (parent ? `${parent.workflowId}-${functionId}` : uuidv7());
  const row = newRow(engine, workflowId, name, args, options, workflow?.options.serialization);
  const ownerToken = randomUUID();
  const childRecord = (fields: Partial<OperationRow>): Write[] =>
    parent && functionId !== undefined
      ? [{ kind: "recordOperation", op: operation(parent.workflowId, functionId, name, { startedAt: row.createdAt, ...fields }), executorId: engine.executorId }]
      : [];
  // A child that may be refused (its queue's deduplication ID, or an ID of its own, which another
  // workflow may hold) must record the refusal instead of a child ID, so it takes two commits.
  const together = !(parent && (row.deduplicationId || options.workflowId !== undefined));
  const recordNow = together ? childRecord({ childWorkflowId: workflowId }) : [];
  // Enqueued here with a free slot here: insert it already claimed, saving the claim's round trip.
  const queue = workflow && !parent ? engine.queues.get(row.queueName ?? "") : undefined;
  const claimed = queue?.reserve(row) ? dequeued(engine, row) : undefined;
  // Until it runs here, no look for orphans takes it for one (see Recovery.adoptOrphans).
  const [inserted, parentRecord] = await engine.recovery.takingHere([workflowId], async () => {
    let written: WriteResult[];
    try {
      written = await engine.committer.submit([{ kind: "insertWorkflow", row, ownerToken, claimed }, ...recordNow]);
    } catch (error) {
      if (claimed) queue!.release(false);
      throw error;
    }
    const inserted = written[0] as Extract<WriteResult, { kind: "insertWorkflow" }>;
    if (claimed) {
      const ran = inserted.inserted && inserted.claimed === true;
      queue!.release(ran);
      if (ran) engine.execute(claimed, [], workflow!);
    }
    // A workflow inserted here runs whatever became of the parent that started it meanwhile
    // (cancelled, say): it exists now, and a replay of the parent finds it rather than starting it.
    if (inserted.inserted && workflow && row.status === "PENDING") engine.execute(row, [], workflow);
    return [inserted, written[1]] as const;
  });
  if (inserted.inserted && row.queueName && row.deadlineEpochMs !== null) engine.deadlines.watchQueued(workflowId, row.deadlineEpochMs);
  const keep = async (write: Write[], written: WriteResult | undefined) =>
    write.length ? keptBefore(engine, parent!, write[0] as Write & { kind: "recordOperation" }, written) : undefined;
  await keep(recordNow, parentRecord);
  const refusal = refusalOf(row, inserted);
  if (!refusal && !inserted.inserted) warnOtherQueue(engine, inserted.existing!, row);
  if (!together) {
    const write = childRecord(refusal ? { error: serializeError(refusal, "default"), serialization: "default" } : { childWorkflowId: workflowId });
    const [recorded] = await engine.committer.submit(write);
    const earlier = await keep(write, recorded);
    if (earlier) return replayed(earlier) as never;
  }
  if (refusal) throw refusal;
  return workflowId;
}

/**
 * The operation that starting `name` takes in the calling workflow, if there is one: its number,
 * and its record when this is a replay (else the run must not have been stopped meanwhile).
 */
function childOperation(engine: Engine, name: string) {
  const parent = currentRun(engine);
  const functionId = parent?.allocate();
  const recorded = parent && functionId !== undefined ? parent.replay(functionId, name) : undefined;
  if (parent && !recorded) parent.checkStopped();
  return { parent, functionId, recorded };
}

/** `row`, enqueued, as a claim by this executor would leave it. */
function dequeued(engine: Engine, row: WorkflowRow): WorkflowRow {
  const now = Date.now();
  return {
    ...row, status: "PENDING", executorId: engine.executorId, startedAt: now, updatedAt: now, recoveryAttempts: row.recoveryAttempts + 1,
    deadlineEpochMs: row.deadlineEpochMs ?? (row.timeoutMs !== null ? storedMs(now + row.timeoutMs) : null),
  };
}

/**
 * Enqueues one workflow per argument list in one all-or-nothing transaction. Inside a workflow
 * this is one operation, recorded in the same transaction, whose output is the IDs: children
 * `<parent>-<N>-1`, `<parent>-<N>-2`, … by default, so a replay enqueues nothing again.
 */
export async function enqueueMany(engine: Engine, name: string, argsList: readonly (readonly unknown[])[], given: StartOptions): Promise<string[]> {
  const options = startOptions("enqueueMany", given);
  if (!engine.workflows.has(name) && !engine.client) throw new InvalidArgumentError(`No workflow named "${name}" is registered on this Duro instance.`);
  if (!options.queueName) throw new InvalidArgumentError("enqueueMany() needs a queueName.");
  if (!Array.isArray(argsList) || !argsList.every(Array.isArray)) throw new InvalidArgumentError("enqueueMany() takes an array of argument arrays.");
  if (options.workflowId !== undefined && argsList.length > 1) throw new InvalidArgumentError("workflowId cannot be shared by several workflows; leave it unset.");
  if (options.deduplicationId !== undefined && argsList.length > 1) throw new InvalidArgumentError("deduplicationId cannot be shared by several workflows.");
  validateStart(engine, options);
  const { parent, functionId, recorded } = childOperation(engine, name);
  if (recorded) return replayed(recorded) as string[];
  const serialization = engine.workflows.get(name)?.options.serialization;
  // One time and one owner token for the whole batch: columns that do not vary are sent once.
  const now = Date.now();
  const ownerToken = randomUUID();
  const idOf = (i: number) => options.workflowId ?? (parent ? `${parent.workflowId}-${functionId}-${i + 1}` : uuidv7());
  const rows = argsList.map((args, i) => newRow(engine, idOf(i), name, args, options, serialization, now));
  const ids = rows.map((r) => r.workflowId);
  const idsRecord: Write[] = parent && functionId !== undefined
    ? [{
      kind: "recordOperation", executorId: engine.executorId,
      op: operation(parent.workflowId, functionId, name, { startedAt: now, completedAt: now, output: serialize(ids, "default"), serialization: "default" }),
    }]
    : [];
  const inserts = rows.map((row): Write => ({ kind: "insertWorkflow", row, ownerToken }));
  let results: WriteResult[];
  try {
    results = await engine.store.write([...inserts, ...idsRecord], { allOrNothing: true });
  } catch (error) {
    // Refused (a taken deduplication ID or workflow ID): inside a workflow the refusal is the
    // operation's outcome, recorded so that a replay throws it again rather than enqueueing.
    const refused = error instanceof DuplicateWorkflowError || error instanceof WorkflowConflictError;
    if (parent && failedHere(error)) parent.stop("interrupted"); // as interruptible does
    if (!refused || !parent || functionId === undefined) throw error;
    return (await record(engine, parent, functionId, name, now, { error })) as string[];
  }
  for (const [i, result] of results.entries()) {
    if (result.kind !== "insertWorkflow") continue;
    if (result.inserted && rows[i].deadlineEpochMs !== null) engine.deadlines.watchQueued(rows[i].workflowId, rows[i].deadlineEpochMs!);
    if (!result.inserted && result.existing) warnOtherQueue(engine, result.existing, rows[i]);
  }
  const earlier = parent && recordedBefore(engine, parent, results[rows.length]);
  if (earlier) return replayed(earlier) as string[];
  // The keys the committer would announce for these inserts (the queue, or when the delay is due).
  engine.announce(new Set(inserts.flatMap(wakeKeysOf)));
  return ids;
}

export function validateStart(engine: Engine, options: Start): void {
  checkStartOptions(options);
  const { queueName, priority, deduplicationId, partitionKey, delaySeconds } = options;
  if (queueName === undefined) {
    const queued = { priority, deduplicationId, partitionKey, delaySeconds };
    const set = Object.entries(queued).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (set.length) throw new InvalidArgumentError(`${set.join(", ")} only appl${set.length === 1 ? "ies" : "y"} to enqueued workflows: give a queueName too.`);
    return;
  }
  const queue = queueOf(engine, queueName);
  if (priority !== undefined && !(Number.isInteger(priority) && priority >= 1 && priority <= 2 ** 31 - 1)) {
    throw new InvalidArgumentError(`priority must be an integer from 1 to 2147483647 (lower runs first), got ${shown(priority)}.`);
  }
  if (deduplicationId !== undefined) checkKey("deduplicationId", deduplicationId);
  if (partitionKey !== undefined) checkKey("partitionKey", partitionKey);
  if (deduplicationId !== undefined && (partitionKey !== undefined || queue?.options.partitionQueue)) {
    throw new InvalidArgumentError("Deduplication is not supported on partitioned queues (as in the reference library): drop deduplicationId or partitionKey.");
  }
  if (queue?.options.partitionQueue && partitionKey === undefined) throw new InvalidArgumentError(`Queue "${queueName}" is partitioned: give a partitionKey.`);
  if (queue && !queue.options.partitionQueue && partitionKey !== undefined) throw new InvalidArgumentError(`Queue "${queueName}" is not partitioned; partitionKey is not allowed.`);
  if (delaySeconds !== undefined) checkSeconds("delaySeconds", delaySeconds);
}

/** The queue `queueName` names: declared here, or (on a client, which declares none) undefined. */
export function queueOf(engine: Engine, queueName: string) {
  checkKey("queueName", queueName);
  const queue = engine.queues.get(queueName);
  if (!queue && !engine.client) throw new InvalidArgumentError(`No queue named "${queueName}" is registered on this Duro instance; create it with new WorkflowQueue(duro, "${queueName}").`);
  return queue;
}

/** The row of a new workflow; serializes the arguments first, so bad input writes nothing. */
export function newRow(
  engine: Engine, workflowId: string, name: string, args: unknown[], options: Start, registered?: SerializationFormat, now = Date.now(),
): WorkflowRow {
  const parent = currentRun(engine);
  const serialization = options.serialization ?? registered ?? "default";
  const inputs = serializeInputs(args, serialization);
  const queued = options.queueName !== undefined;
  const delayed = queued && options.delaySeconds !== undefined && options.delaySeconds > 0;
  const timeoutMs = options.timeoutSeconds != null ? storedMs(options.timeoutSeconds * 1000) : null;
  // Direct starts get their deadline now; queued ones when dequeued (unless given or inherited).
  // A parent's is inherited unless either option is given, even as null ("none").
  const given = options.deadlineEpochMs != null ? storedMs(options.deadlineEpochMs) : undefined;
  const inherited = options.timeoutSeconds === undefined && options.deadlineEpochMs === undefined ? parent?.deadlineEpochMs : undefined;
  const deadline = given ?? (timeoutMs !== null ? (queued ? null : storedMs(now + timeoutMs)) : inherited ?? null);
  return {
    workflowId, status: queued ? (delayed ? "DELAYED" : "ENQUEUED") : "PENDING", name,
    authenticatedUser: options.authenticatedUser ?? parent?.authenticatedUser ?? null, inputs, output: null, error: null, serialization,
    executorId: queued ? null : engine.executorId, appVersion: options.appVersion ?? (engine.client ? null : engine.appVersion),
    createdAt: now, updatedAt: now, startedAt: queued ? null : now, completedAt: null, recoveryAttempts: queued ? 0 : 1,
    queueName: options.queueName ?? null, priority: options.priority ?? 0, deduplicationId: options.deduplicationId ?? null,
    partitionKey: options.partitionKey ?? null, timeoutMs, deadlineEpochMs: deadline,
    delayUntilEpochMs: delayed ? secondsAfter(now, options.delaySeconds!) : null, parentWorkflowId: parent?.workflowId ?? null,
    forkedFrom: null, wasForkedFrom: false,
  };
}

function checkStartOptions(options: Start): void {
  const { workflowId, timeoutSeconds, deadlineEpochMs, serialization } = options;
  if (workflowId !== undefined && (typeof workflowId !== "string" || workflowId.trim() === "")) {
    throw new InvalidArgumentError(`workflowId must be a string with at least one non-space character, got ${shown(workflowId)}.`);
  }
  if (workflowId !== undefined) checkKey("workflowId", workflowId);
  if (typeof options.authenticatedUser === "string") checkText("authenticatedUser", options.authenticatedUser);
  // No executor has the empty version (the constructor refuses it too).
  if (options.appVersion != null) checkKey("appVersion", options.appVersion);
  checkPositive("timeoutSeconds", timeoutSeconds ?? undefined);
  if (deadlineEpochMs != null && !(typeof deadlineEpochMs === "number" && Number.isFinite(deadlineEpochMs) && deadlineEpochMs >= 0)) {
    throw new InvalidArgumentError(`deadlineEpochMs must be a non-negative epoch time in milliseconds, got ${shown(deadlineEpochMs)}.`);
  }
  checkFormat(serialization);
}

/** As the reference: starting an existing ID returns that workflow, on the queue (or none) it already had. */
function warnOtherQueue(engine: Engine, existing: WorkflowRow, asked: WorkflowRow): void {
  if (existing.queueName === asked.queueName) return;
  const label = (queueName: string | null) => (queueName === null ? "no queue" : `queue "${queueName}"`);
  engine.logger.warn(`Workflow ${asked.workflowId} already exists on ${label(existing.queueName)}; this start asked for ${label(asked.queueName)}. ` +
    `Its handle is returned and its queue is not changed: give a new start its own workflow ID.`);
}
