/**
 * Streams: writeStream / closeStream append to a workflow's stream (recorded operations in a
 * workflow, plain writes from a step), readStream yields its values in order, each recorded
 * when read by a workflow. Durable operations like those of operations.ts, whose helpers they use.
 */
import { InvalidArgumentError, NonDeterminismError, NotInWorkflowError, StreamTimeoutError, WorkflowNotFoundError } from "../errors.js";
import { wakeKeysOfKey, type StoredValue } from "../storage/store.js";
import type { ValueOptions } from "../types.js";
import { checkpoint, operation, recordedLate, recordOf } from "./checkpoint.js";
import { currentContext, currentRun, type WorkflowRun } from "./context.js";
import type { Engine } from "./engine.js";
import { checkKey, checkOptions, checkSeconds, KEYS, shown } from "./checks.js";
import { formatOf, read, stored } from "./operations.js";

export async function writeStream(engine: Engine, key: string, value: unknown, options?: ValueOptions | null): Promise<void> {
  checkKey("key", key);
  const serialization = formatOf(checkOptions("writeStream", options, KEYS.value));
  const ctx = currentContext(engine);
  if (!ctx) throw new NotInWorkflowError("writeStream", true);
  await appendStream(engine, ctx, "duro.writeStream", key, stored(value, serialization ?? ctx.run.serialization));
}

export async function closeStream(engine: Engine, key: string): Promise<void> {
  checkKey("key", key);
  const ctx = currentContext(engine);
  if (!ctx || ctx.step) throw new NotInWorkflowError("closeStream");
  await appendStream(engine, ctx, "duro.closeStream", key, null);
}

async function appendStream(engine: Engine, { run, step }: NonNullable<ReturnType<typeof currentContext>>, name: string, key: string, value: StoredValue | null) {
  if (step) {
    await engine.committer.submitOne({ kind: "writeStream", workflowId: run.workflowId, key, functionId: step.stepId, once: false, value });
    return;
  }
  const functionId = run.allocate();
  if (run.replay(functionId, name)) return;
  run.checkStopped();
  const now = Date.now();
  const record = recordOf(engine, run, operation(run.workflowId, functionId, name, { startedAt: now, completedAt: now }));
  const [, recorded] = await engine.committer.submit([{ kind: "writeStream", workflowId: run.workflowId, key, functionId, once: true, value }, record]);
  await recordedLate(engine, run, record, recorded);
}

/**
 * Yields a stream's values in order until it is closed or its workflow has finished. Inside a
 * workflow each value read is recorded, so a replay yields the same values.
 */
export async function* readStream(
  engine: Engine,
  workflowId: string,
  key: string,
  options?: { offset?: number | null; timeoutSeconds?: number | null } | null,
): AsyncGenerator<unknown, void, undefined> {
  const { timeoutSeconds, offset: from = 0 } = checkOptions("readStream", options, ["offset", "timeoutSeconds"]);
  let offset = from;
  checkKey("workflowId", workflowId);
  checkKey("key", key);
  if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError(`offset must be a non-negative integer, got ${shown(offset)}.`);
  if (timeoutSeconds !== undefined) checkSeconds("timeoutSeconds", timeoutSeconds, true); // Infinity: no timeout, as recv's
  const run = currentRun(engine);
  const END = { end: true };
  // Values fetched past the current offset (and whether the end marker follows them), served
  // without another read: one query per batch of arrivals, not one per value.
  let buffered: StoredValue[] = [];
  let closedAfterBuffer = false;
  // A reader that starts past the end marker ends there too; from then on it reads offsets in
  // order, so it meets any end marker itself.
  let endBefore = offset > 0 ? undefined : false;
  const next = async (): Promise<{ value: unknown } | typeof END> => {
    if (buffered.length) return { value: read(buffered.shift()!) };
    if (closedAfterBuffer) return END;
    endBefore ??= await engine.store.streamClosedBefore(workflowId, key, offset);
    if (endBefore) return END;
    let found: { value: unknown } | typeof END | undefined;
    const look = async () => {
      const { values, closed } = await engine.store.readStream(workflowId, key, offset);
      if (values.length) {
        found = { value: read(values[0]) };
        buffered = values.slice(1);
        closedAfterBuffer = closed;
      } else if (closed) found = END;
      else {
        const [row] = await engine.store.listWorkflows({ workflowIds: [workflowId], loadInput: false, loadOutput: false });
        if (!row) throw new WorkflowNotFoundError(workflowId, "readStream");
        if (["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"].includes(row.status)) {
          const drained = await engine.store.readStream(workflowId, key, offset); // a last write may have raced the status
          found = drained.values.length ? { value: read(drained.values[0]) } : END;
        }
      }
      return found !== undefined;
    };
    const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
    const arrived = await engine.waiters.wait([...wakeKeysOfKey("stream", workflowId, key), `status:${workflowId}`], look, deadline, run?.signal);
    if (!arrived) throw new StreamTimeoutError(workflowId, key, timeoutSeconds!);
    return found!;
  };
  for (;;) {
    const item = run ? await readInWorkflow(engine, run, workflowId, key, next) : await next();
    if ("end" in (item as object) && (item as typeof END).end === true) return;
    yield (item as { value: unknown }).value;
    offset++;
  }
}

/**
 * One value of a stream read by a workflow, recorded as its own operation. A second read in
 * flight at once is refused: both would be numbered by arrival, so a replay could hand one
 * reader's values to the other (the reference refuses it too).
 */
async function readInWorkflow<T>(engine: Engine, run: WorkflowRun, workflowId: string, key: string, next: () => Promise<T>): Promise<T> {
  if (run.readingStream) throw NonDeterminismError.concurrentStreamReads(run.workflowId, workflowId, key);
  run.readingStream = true;
  try {
    return await checkpoint(engine, run, "duro.readStream", next);
  } finally {
    run.readingStream = false;
  }
}
