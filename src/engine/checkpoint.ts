/**
 * "Look up the checkpoint, or run and save it": the recording helpers every durable operation
 * is built from. A record is written only while the workflow is PENDING on this executor, so a
 * run that was cancelled or taken over stops at its next operation without recording anything
 * more — except the outcome of an operation that was already under way when the cancel came:
 * what it did stays done, and a resume does not run it again (as in the reference library).
 * Operations that only look at other workflows (keep `"unlessCancelled"`) are the exception: what
 * they saw may be the cancel's own doing (a child cancelled with its parent), so a cancelled run
 * drops it and a resume looks again, as the reference reads a child's row again on replay.
 */
import { DatabaseError, WorkflowCancelledError } from "../errors.js";
import { deserialize, deserializeThrown, registerErrorClass, serialize, serializeError } from "../serialization.js";
import type { OperationRow, Write, WriteResult } from "../storage/store.js";
import type { WorkflowRun } from "./context.js";
import type { Engine } from "./engine.js";

/** Decodes what a recorded operation threw. */
export function errorOf(op: OperationRow): unknown {
  return deserializeThrown(op.error!, op.serialization ?? "default");
}

/** Errors that are a recorded outcome (a step's own DatabaseError, say, or a finished workflow's), as decoded. */
const outcomes = new WeakSet<object>();
export const asOutcome = (error: unknown) => (typeof error === "object" && error !== null && outcomes.add(error), error);

/** Whether `error` is a failure of the database under way, rather than a recorded outcome that is a DatabaseError. */
export const failedHere = (error: unknown) => error instanceof DatabaseError && !outcomes.has(error);

/**
 * Runs `fn`, a durable call's use of the database for `run`: a `DatabaseError` is the database's
 * failure, not the call's, and stops the run, to run again from its checkpoints once it answers.
 */
export async function interruptible<T>(run: WorkflowRun | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (run && failedHere(error)) run.stop("interrupted");
    throw error;
  }
}

/** The recorded outcome of an operation: returns its output or throws its error. */
export function replayed(op: OperationRow): unknown {
  if (op.error !== null) throw asOutcome(errorOf(op));
  return deserialize(op.output, op.serialization ?? "default");
}

/** Whether an operation's outcome is kept when its workflow is cancelled while it is under way (see above). */
export type Keep = "always" | "unlessCancelled";

/** Records an operation's outcome; returns what is recorded (ours, or a concurrent run's). */
export async function record(
  engine: Engine, run: WorkflowRun, functionId: number, name: string, startedAt: number, result: { output?: unknown; error?: unknown },
  extra: Partial<OperationRow> = {}, keep: Keep = "always",
): Promise<unknown> {
  if (keep === "unlessCancelled") run.checkStopped();
  let output: string | null = null;
  let error: string | null = null;
  let failed = "error" in result;
  let thrown = result.error;
  if (!failed) {
    try {
      output = serialize(result.output, "default");
    } catch (serializationError) {
      failed = true;
      thrown = serializationError;
    }
  }
  if (failed) {
    if (thrown instanceof Error) registerErrorClass(thrown.constructor as new () => Error);
    error = serializeError(thrown, "default");
  }
  const op = operation(run.workflowId, functionId, name, { output, error, serialization: "default", startedAt, completedAt: Date.now(), ...extra });
  // Cancelled here while it ran: keep its outcome, then stop. Finished: kept too (see keptBefore).
  const afterCancel = run.stopped === "cancelled" || run.stopped === "finished";
  const write = { kind: "recordOperation", op, executorId: engine.executorId, afterCancel } as const;
  const written = await engine.committer.submitOne(write);
  if (afterCancel) run.checkStopped();
  const existing = await keptBefore(engine, run, write, written, keep);
  if (existing) return replayed(existing);
  // As recorded, which is what a replay gets: an instance of a class of its own is its fields,
  // and an error's fields that cannot be stored are left out.
  if (failed) throw asOutcome(deserializeThrown(error!, "default"));
  return deserialize(output, "default");
}

/**
 * `recordedBefore`, but when the store fenced the record off because the workflow was cancelled
 * (or resumed onto a queue) while the operation was under way, its outcome is kept all the same:
 * what it did stays done, and the next run does not do it again. The run stops either way.
 */
export async function keptBefore(
  engine: Engine, run: WorkflowRun, write: Write & { kind: "recordOperation" }, written: WriteResult | undefined, keep: Keep = "always",
): Promise<OperationRow | undefined> {
  let kept = written;
  // A write already made that way (the run was cancelled or finished when it was recorded) is not made twice.
  if (keep === "always" && !write.afterCancel && written?.kind === "recordOperation" && !written.recorded && !written.existing) {
    kept = await engine.committer.submitOne({ ...write, afterCancel: true });
  }
  if (run.stopped === "finished") {
    // The workflow returned while this ran: it was not awaited. Its outcome is kept all the same,
    // so a fork does not run it again, and its caller gets it (there is no run left to stop).
    engine.logger.warn(
      `${write.op.functionName} (function ID ${write.op.functionId}) of workflow ${run.workflowId} finished after the workflow returned: ` +
        `it was not awaited, so the workflow's result did not wait for it. Await every step a workflow starts.`,
    );
    return kept?.kind === "recordOperation" && !kept.recorded ? kept.existing ?? undefined : undefined;
  }
  return recordedBefore(engine, run, written);
}

/** The record of a write-and-record operation (setEvent, writeStream) of `run`: written late too if the run has returned. */
export function recordOf(engine: Engine, run: WorkflowRun, op: OperationRow): Write & { kind: "recordOperation" } {
  return { kind: "recordOperation", op, executorId: engine.executorId, afterCancel: run.stopped === "finished" };
}

/**
 * `recordedBefore` for a write-and-record operation, except when its workflow returned without
 * awaiting it: then, as for a step, it is recorded all the same (see keptBefore) rather than
 * refused with a rejection nobody handles.
 */
export async function recordedLate(engine: Engine, run: WorkflowRun, write: Write & { kind: "recordOperation" }, written: WriteResult | undefined): Promise<void> {
  if (run.stopped === "finished") await keptBefore(engine, run, write, written);
  else recordedBefore(engine, run, written);
}

/**
 * Checks the result of recording an operation of `run`: returns the record that was there
 * first (a previous run's, to be adopted), or nothing when ours went in. When the store fenced
 * the write off — the workflow was cancelled, or another executor took it over — the run stops.
 */
export function recordedBefore(engine: Engine, run: WorkflowRun, result: WriteResult | undefined): OperationRow | undefined {
  if (result?.kind !== "recordOperation" || result.recorded) return undefined;
  if (result.existing) return result.existing;
  engine.logger.info(`Workflow ${run.workflowId} is no longer PENDING on this executor (cancelled or taken over); stopping this run.`);
  engine.stopRun(run.workflowId, "cancelled");
  throw new WorkflowCancelledError(run.workflowId);
}

/** A step records every error its code throws; other operations none of the database's. */
export const everyError = () => true;
const notTheDatabase = (error: unknown) => !failedHere(error);

/**
 * The shape of every simple durable operation: answer from the record, or check for a stop,
 * run `body`, record its outcome with `extra` columns, and return it. Its errors are recorded
 * too, those `recordsError` keeps (management calls keep none, as in the reference library: the
 * error is thrown, nothing is recorded, and a later run makes the call again). A `DatabaseError`
 * it does not keep is the database's failure, not the operation's: the run stops, to run again
 * from its checkpoints once the database answers, as after a write that could not be made.
 */
export async function checkpoint<T>(
  engine: Engine, run: WorkflowRun, name: string, body: (functionId: number) => Promise<T>, extra: Partial<OperationRow> = {},
  keep: Keep = "always", recordsError: (error: unknown) => boolean = notTheDatabase,
): Promise<T> {
  const functionId = run.allocate();
  const recorded = run.replay(functionId, name);
  if (recorded) return replayed(recorded) as T;
  // This run may be another executor's now.
  if (engine.recovery.leaseInDoubt) await interruptible(run, () => engine.recovery.confirmLease());
  run.checkStopped();
  const startedAt = Date.now();
  let result: { output?: unknown; error?: unknown };
  try {
    result = { output: await body(functionId) };
  } catch (error) {
    const kept = recordsError(error);
    if (failedHere(error) && !kept) run.stop("interrupted");
    if (error instanceof WorkflowCancelledError || (run.stopped && run.stopped !== "cancelled" && run.stopped !== "finished") || !kept) throw error;
    result = { error };
  }
  if (run.stopped !== "cancelled") run.checkStopped(); // a cancelled run records first (see record)
  return (await record(engine, run, functionId, name, startedAt, result, extra, keep)) as T;
}

/** An operation's row: `fields` over an empty record. */
export function operation(workflowId: string, functionId: number, functionName: string, fields: Partial<OperationRow> = {}): OperationRow {
  return {
    workflowId, functionId, functionName, output: null, error: null, serialization: null, childWorkflowId: null, startedAt: null, completedAt: null,
    ...fields,
  };
}

