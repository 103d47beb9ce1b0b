/**
 * The durable context operations. Each one inside a workflow takes the next function ID when it
 * is called, answers from the record on replay, and otherwise does its work and records it —
 * in the same transaction where the work is itself a write (setEvent, writeStream, recv).
 * Outside a workflow (or inside a step) they do their work plainly, or throw NotInWorkflowError
 * where only a workflow can call them. Streams are in streams.ts.
 */
import { randomUUID as uuid } from "node:crypto";
import { setMaxListeners } from "node:events";
import { InvalidArgumentError, MaxStepRetriesExceededError, NonDeterminismError, NotInWorkflowError, WorkflowNotFoundError } from "../errors.js";
import { deserialize, inspectable, serialize, textOf, type SerializationFormat } from "../serialization.js";
import { wakeKeysOfKey, type OperationRow, type StoredValue } from "../storage/store.js";
import type { ReturnWhen, SendOptions, StepOptions, ValueOptions, WaitOptions, WorkflowHandle } from "../types.js";
import { als, currentContext, currentRun, type WorkflowRun } from "./context.js";
import type { Engine } from "./engine.js";
import { checkpoint, everyError, failedHere, interruptible, operation, record, recordedBefore, recordedLate, recordOf, replayed } from "./checkpoint.js";
import { checkFormat, checkKey, checkKeys, checkOptions, checkSeconds, isOptions, KEYS, shown, type Given } from "./checks.js";
import { MAX_TIMEOUT_MS, secondsAfter } from "./timers.js";

const NULL_TOPIC = "__null__topic__";
const MAX_RETRY_DELAY_S = 3600;

function requireRun(engine: Engine, method: string): WorkflowRun {
  const run = currentRun(engine);
  if (!run) throw new NotInWorkflowError(method);
  return run;
}

/**
 * recv/getEvent's timeout, in seconds or as `{ timeoutSeconds }`; 60 when left out. As in the
 * reference library, one already past (negative) times out at once.
 */
function waitSeconds(method: string, timeout: number | WaitOptions | null | undefined): number {
  if (isOptions(timeout)) checkKeys(method, timeout, ["timeoutSeconds"]);
  const value = isOptions(timeout) ? timeout.timeoutSeconds : timeout;
  if (value === undefined || value === null) return 60;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new InvalidArgumentError(`${method}()'s timeoutSeconds must be a number of seconds (0 or less: do not wait), got ${shown(value)}.`);
  }
  return Math.max(0, value);
}

/** The format asked for by `serialization` or its other name `serializationType` (undefined: neither). */
export function formatOf(options: Given<ValueOptions>): SerializationFormat | undefined {
  const { serialization, serializationType } = options;
  if (serialization !== undefined && serializationType !== undefined && serialization !== serializationType) {
    throw new InvalidArgumentError(`serialization "${serialization}" and serializationType "${serializationType}" disagree: give one of them.`);
  }
  return checkFormat(serialization ?? serializationType, serialization !== undefined ? "serialization" : "serializationType");
}

/** Whether a handle may be handed out for a workflow not created yet: retrieveWorkflow's `existingWorkflow`, positional (as the reference has it) or in an options object. */
export async function allowsMissing(engine: Engine, workflowId: string, existing: boolean | { existingWorkflow?: boolean | null } | null | undefined): Promise<boolean> {
  checkKey("workflowId", workflowId);
  if (isOptions(existing)) checkKeys("retrieveWorkflow", existing, ["existingWorkflow"]);
  const must = existing === null ? true : isOptions(existing) ? (existing.existingWorkflow ?? true) : existing;
  if (typeof must !== "boolean") throw new InvalidArgumentError("retrieveWorkflow(id, existingWorkflow) takes true or false (or { existingWorkflow }).");
  if (must && (await interruptible(currentRun(engine), () => engine.getStatus(workflowId))) === null) throw new WorkflowNotFoundError(workflowId);
  return !must;
}

export function stored(value: unknown, format: SerializationFormat): StoredValue {
  return { value: serialize(value, format), serialization: format };
}

export const read = (v: StoredValue | null) => (v ? deserialize(v.value, v.serialization) : null);

// ——— steps ———

/** A step's retry policy, checked. */
export type StepPolicy = { retriesAllowed: boolean; intervalSeconds: number; maxAttempts: number; backoffRate: number };

export function stepPolicy(method: string, given: StepOptions | null | undefined): StepPolicy & { name?: string } {
  const { name, retriesAllowed = false, intervalSeconds = 1, maxAttempts = 3, backoffRate = 2 } = checkOptions(method, given, KEYS.step);
  if (typeof retriesAllowed !== "boolean") throw new InvalidArgumentError("retriesAllowed must be a boolean.");
  checkSeconds("intervalSeconds", intervalSeconds);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new InvalidArgumentError(`maxAttempts must be an integer ≥ 1, got ${shown(maxAttempts)}.`);
  if (typeof backoffRate !== "number" || !Number.isFinite(backoffRate) || backoffRate < 1) {
    throw new InvalidArgumentError(`backoffRate must be a number ≥ 1, got ${shown(backoffRate)}.`);
  }
  return { name, retriesAllowed, intervalSeconds, maxAttempts, backoffRate };
}

/** Runs `fn` as a checkpointed step (plainly outside a workflow or inside another step). */
export async function runStep<T>(engine: Engine, name: string, fn: (...args: any[]) => T | Promise<T>, args: unknown[], policy: StepPolicy): Promise<T> {
  const run = currentRun(engine);
  if (!run) return fn(...args);
  return checkpoint(engine, run, name, async (stepId) => {
    const attempts = policy.retriesAllowed ? policy.maxAttempts : 1;
    const errors: unknown[] = [];
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0 && engine.recovery.leaseInDoubt) await interruptible(run, () => engine.recovery.confirmLease());
      run.checkStopped();
      const step = { stepId, currentAttempt: policy.retriesAllowed ? attempt : null, maxAttempts: policy.retriesAllowed ? attempts : null };
      try {
        return await als.run({ run, step }, async () => fn(...args));
      } catch (thrown) {
        const error = inspectable(thrown);
        errors.push(error);
        if (attempt < attempts - 1) {
          const delay = Math.min(policy.intervalSeconds * policy.backoffRate ** attempt, MAX_RETRY_DELAY_S);
          engine.logger.warn(`Step "${name}" failed (attempt ${attempt + 1} of ${attempts}); retrying in ${Number(delay.toFixed(3))}s.`, {
            workflowId: run.workflowId, stepId, error: textOf(error),
          });
          await engine.timers.until(Date.now() + delay * 1000, run.signal);
        }
      }
    }
    throw policy.retriesAllowed ? new MaxStepRetriesExceededError(name, attempts, errors) : errors[0];
  }, {}, "always", everyError);
}

// ——— time and randomness ———

export async function sleep(engine: Engine, seconds: number): Promise<void> {
  if (typeof seconds !== "number" || Number.isNaN(seconds)) throw new InvalidArgumentError(`seconds must be a number, got ${shown(seconds)}.`);
  if (seconds <= 0) return; // at once, anywhere, and takes no function ID, as in the reference
  const ctx = currentContext(engine);
  if (!ctx) throw new NotInWorkflowError("sleep", true);
  if (ctx.step) return new Promise((resolve) => setTimeout(resolve, Math.min(seconds * 1000, MAX_TIMEOUT_MS)));
  const wakeAt = await durableDeadline(engine, ctx.run, seconds);
  await engine.timers.until(wakeAt, ctx.run.signal);
}

/**
 * Records (or reads back) the wake-up time of a durable wait as operation "duro.sleep": a sleep's
 * is completed at the wake-up time, a timeout's (`functionId` given: recv, getEvent) now, as in
 * the reference.
 */
async function durableDeadline(engine: Engine, run: WorkflowRun, seconds: number, functionId?: number): Promise<number> {
  const id = functionId ?? run.allocate();
  const recorded = run.replay(id, "duro.sleep");
  if (recorded) return replayed(recorded) as number;
  run.checkStopped();
  const now = Date.now();
  const wakeAt = secondsAfter(now, seconds);
  return (await record(engine, run, id, "duro.sleep", now, { output: wakeAt }, { completedAt: functionId === undefined ? wakeAt : now })) as number;
}

/**
 * The wake-up time of a timeout (recv, getEvent) at `functionId`: recorded already (a replay), or
 * the operation to record it with, written together with the wait's first look.
 */
function timeoutDeadline(run: WorkflowRun, functionId: number, seconds: number, now: number): { wakeAt: number; record?: OperationRow } {
  const recorded = run.replay(functionId, "duro.sleep");
  if (recorded) return { wakeAt: replayed(recorded) as number };
  const wakeAt = secondsAfter(now, seconds);
  const output = serialize(wakeAt, "default");
  return { wakeAt, record: operation(run.workflowId, functionId, "duro.sleep", { output, serialization: "default", startedAt: now, completedAt: now }) };
}

export async function now(engine: Engine): Promise<number> {
  const run = currentRun(engine);
  return run ? checkpoint(engine, run, "duro.now", async () => Date.now()) : Date.now();
}

export async function randomUUID(engine: Engine): Promise<string> {
  const run = currentRun(engine);
  return run ? checkpoint(engine, run, "duro.randomUUID", async () => uuid()) : uuid();
}

// ——— results ———

const unlessMissing = (error: unknown) => !(error instanceof WorkflowNotFoundError) && !failedHere(error);

/**
 * Waits for a workflow's outcome (recorded inside a workflow); `untilCreated`: a missing workflow
 * is awaited, not an error. Outside a workflow, `signal` gives the wait up. A missing workflow's
 * error is not recorded (as the reference library's getResult step): a later run asks again.
 */
export async function getResult(engine: Engine, workflowId: string, untilCreated = false, signal?: AbortSignal): Promise<unknown> {
  checkKey("workflowId", workflowId);
  const run = currentRun(engine);
  const wait = () => engine.outcomes.wait(workflowId, run?.signal ?? signal, untilCreated);
  return run ? checkpoint(engine, run, "duro.getResult", wait, { childWorkflowId: workflowId }, "unlessCancelled", unlessMissing) : wait();
}

/**
 * A handle: its calls are the durable getResult / getWorkflowStatus operations. Its getResult
 * takes a signal that `wait` (not the public type) passes, to give up the waits it no longer needs.
 */
export function handleOf<R>(engine: Engine, workflowId: string, untilCreated = false): WorkflowHandle<R> {
  return {
    workflowId,
    getResult: (signal?: unknown) => getResult(engine, workflowId, untilCreated, signal instanceof AbortSignal ? signal : undefined) as Promise<R>,
    getStatus: () => getWorkflowStatus(engine, workflowId),
  };
}

export async function getWorkflowStatus(engine: Engine, workflowId: string) {
  checkKey("workflowId", workflowId);
  const run = currentRun(engine);
  return run ? checkpoint(engine, run, "duro.getStatus", () => engine.getStatus(workflowId), {}, "unlessCancelled") : engine.getStatus(workflowId);
}

/** Waits for the first of several workflows to finish; returns its ID (recorded in a workflow). */
export async function waitFirst(engine: Engine, workflowIds: string[]): Promise<string> {
  if (!Array.isArray(workflowIds) || workflowIds.length === 0) throw new InvalidArgumentError("waitFirst() needs at least one workflow handle.");
  for (const id of workflowIds) {
    if (typeof id !== "string" || id === "") throw new InvalidArgumentError("waitFirst() needs workflow handles (from startWorkflow or retrieveWorkflow).");
  }
  if (new Set(workflowIds).size !== workflowIds.length) throw new InvalidArgumentError("waitFirst() was given the same workflow twice.");
  const run = currentRun(engine);
  const first = async () => {
    let winner = "";
    const terminal = ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"] as const;
    await engine.waiters.wait(workflowIds.map((id) => `status:${id}`), async () => {
      const rows = await engine.store.listWorkflows({ workflowIds, status: [...terminal], loadInput: false, loadOutput: false, limit: 1 });
      winner = rows[0]?.workflowId ?? "";
      return winner !== "";
    }, Infinity, run?.signal);
    return winner;
  };
  return run ? checkpoint(engine, run, "duro.waitFirst", first, {}, "unlessCancelled") : first();
}

/** An item of `wait`: its settling, and the first look that tells whether it had settled already. */
export interface Watched {
  settled: Promise<unknown>;
  /** Resolves once it is known whether the item was done at the call (and, if so, after `settled`). */
  looked: Promise<unknown>;
  /** Whether a rejection of `settled` is the wait's failure (the database, a shutdown), not the item's outcome. */
  lost?: (error: unknown) => boolean;
}

/**
 * The durable counterpart of asyncio.wait: which of `items` settled is recorded, so a replay
 * returns the same split. Every item is looked at before anything is decided, so items done
 * already at the call are all in `done`, even with FIRST_COMPLETED or a timeout of 0. The
 * function ID is taken before any item is awaited.
 */
export async function wait<T>(
  engine: Engine,
  items: T[],
  watch: (item: T, signal: AbortSignal) => Watched,
  options?: { returnWhen?: ReturnWhen | null; timeoutSeconds?: number | null } | null,
): Promise<{ done: T[]; pending: T[] }> {
  const { returnWhen = "ALL_COMPLETED", timeoutSeconds } = checkOptions("wait", options, ["returnWhen", "timeoutSeconds"]);
  if (!["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"].includes(returnWhen)) {
    throw new InvalidArgumentError(`returnWhen must be "ALL_COMPLETED", "FIRST_COMPLETED" or "FIRST_EXCEPTION", got ${JSON.stringify(returnWhen)}.`);
  }
  if (timeoutSeconds !== undefined) checkSeconds("timeoutSeconds", timeoutSeconds, true); // Infinity: no timeout, as recv's
  const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
  const run = currentRun(engine);
  const functionId = run?.allocate();
  const recorded = run && functionId !== undefined ? run.replay(functionId, "duro.wait") : undefined;
  // Aborted once the split is known: what `watch` waits on for pending items, it may give up.
  const decided = new AbortController();
  setMaxListeners(0, decided.signal); // one listener per item, by design: no leak to warn of
  const watched = items.map((item) => watch(item, decided.signal));
  const split = (indices: number[]) => {
    decided.abort();
    return { done: indices.map((i) => items[i]), pending: items.filter((_, i) => !indices.includes(i)) };
  };
  if (recorded) {
    const indices = replayed(recorded) as number[];
    // As on the first run, every item is watched: one still pending that fails later (a step cut
    // off when its workflow ended) must not be an unhandled rejection, which ends the process.
    for (const w of watched) w.settled.catch(() => {});
    await Promise.allSettled(indices.map((i) => watched[i].settled));
    return split(indices);
  }
  // A handle whose wait failed (the database out, the instance shut down) is not done: the whole wait fails.
  const state = await new Promise<number[]>((resolve, reject) => {
    const settled: number[] = [];
    let failed = false;
    let looking = true;
    let expired = false;
    let timer: { cancel(): void } | undefined;
    const decide = () => {
      if (looking) return;
      const over = settled.length === items.length || expired ||
        (returnWhen === "FIRST_COMPLETED" && settled.length > 0) || (returnWhen === "FIRST_EXCEPTION" && failed);
      if (!over) return;
      timer?.cancel();
      resolve([...settled]);
    };
    watched.forEach((w, i) =>
      w.settled.then(
        () => (settled.push(i), decide()),
        (error) => {
          if (w.lost?.(error)) return void (timer?.cancel(), reject(error));
          settled.push(i);
          failed = true;
          decide();
        },
      ),
    );
    void Promise.allSettled(watched.map((w) => w.looked)).then(() => ((looking = false), decide()));
    if (deadline !== Infinity) timer = engine.timers.at(deadline, () => ((expired = true), decide()));
  }).catch((error: unknown) => {
    decided.abort();
    throw error;
  });
  if (run && functionId !== undefined) await record(engine, run, functionId, "duro.wait", Date.now(), { output: state }, {}, "unlessCancelled");
  return split(state);
}

// ——— messages ———

/** A topic is a non-empty string, or none; the name stored for "none" is not one a caller may use. */
function checkTopic(topic: string | null | undefined): void {
  if (topic === undefined || topic === null) return;
  checkKey("topic", topic);
  if (topic === NULL_TOPIC) throw new InvalidArgumentError(`The topic ${JSON.stringify(NULL_TOPIC)} is reserved for messages sent without a topic: send and recv with no topic (null) instead.`);
}

/**
 * A topic and what follows it, where options may take the place of a left-out topic (the
 * reference's keywords after it): `send(id, message, options)`, `recv({ timeoutSeconds })`.
 */
function afterTopic<O extends object, R>(method: string, topic: string | null | undefined | O, rest: R | undefined): [string | null | undefined, O | R | undefined] {
  if (!isOptions(topic)) return [topic, rest];
  if (rest !== undefined && rest !== null) throw new InvalidArgumentError(`${method}(): the topic must be a string or null when another argument follows it.`);
  return [null, topic];
}

export async function send(
  engine: Engine,
  destinationId: string,
  message: unknown,
  topicOrOptions: string | null | undefined | SendOptions,
  sendOptions?: SendOptions | null,
): Promise<void> {
  const [topic, given] = afterTopic("send", topicOrOptions, sendOptions);
  const options = checkOptions("send", given, ["idempotencyKey", "serialization", "serializationType"]);
  const { idempotencyKey } = options;
  const serialization = formatOf(options);
  checkKey("destinationId", destinationId);
  checkTopic(topic);
  if (idempotencyKey !== undefined) checkKey("idempotencyKey", idempotencyKey);
  const run = currentRun(engine);
  const value = stored(message, serialization ?? run?.serialization ?? "default");
  const deliver = async (messageId: string) => {
    const result = await engine.committer.submitOne({
      kind: "send", messageId, destinationId, topic: topic ?? NULL_TOPIC, message: value, createdAt: Date.now(),
    });
    if (!result.destinationExists) throw new WorkflowNotFoundError(destinationId, "send destination");
  };
  // A keyed message's ID is (key, destination); in a workflow an unkeyed one is derived from the
  // operation, so a replayed send delivers once. JSON arrays keep the parts from running together.
  const keyed = () => JSON.stringify(["key", idempotencyKey, destinationId]);
  if (!run) return deliver(idempotencyKey !== undefined ? keyed() : uuid());
  // Recorded with a null output, as the other operations that return nothing are.
  await checkpoint(engine, run, "duro.send", async (functionId) => {
    await deliver(idempotencyKey !== undefined ? keyed() : JSON.stringify(["op", run.workflowId, functionId, destinationId]));
    return null;
  });
}

/** `recv(topic?, timeout?)`, or `recv({ timeoutSeconds })` for no topic. */
export async function recv(engine: Engine, topicOrOptions: string | null | undefined | WaitOptions, timeoutOrOptions?: number | WaitOptions | null): Promise<unknown> {
  const [topic, timeout] = afterTopic("recv", topicOrOptions, timeoutOrOptions);
  checkTopic(topic);
  const timeoutSeconds = waitSeconds("recv", timeout);
  const run = requireRun(engine, "recv");
  const functionId = run.allocate();
  const sleepId = run.allocate();
  const recorded = run.replay(functionId, "duro.recv");
  if (recorded) return replayed(recorded);
  run.checkStopped();
  const inbox = topic ?? NULL_TOPIC;
  if (run.receiving.has(inbox)) throw NonDeterminismError.concurrentRecvs(run.workflowId, functionId, topic ?? null);
  run.receiving.add(inbox);
  try {
    return await receive(engine, run, functionId, sleepId, inbox, timeoutSeconds);
  } finally {
    run.receiving.delete(inbox);
  }
}

async function receive(engine: Engine, run: WorkflowRun, functionId: number, sleepId: number, topic: string, timeoutSeconds: number): Promise<unknown> {
  const startedAt = Date.now();
  const op = operation(run.workflowId, functionId, "duro.recv", { startedAt, completedAt: startedAt });
  // The first look also records the timeout's wake-up time (in the same write).
  const timeout = timeoutDeadline(run, sleepId, timeoutSeconds, startedAt);
  let deadline = timeout.record;
  let received: { value: unknown } | undefined;
  const take = async () => {
    const result = await engine.committer.submitOne({
      kind: "recv", destinationId: run.workflowId, topic, op: { ...op, completedAt: Date.now() }, executorId: engine.executorId, deadline,
    });
    deadline = undefined;
    if (result.fenced) recordedBefore(engine, run, { kind: "recordOperation", recorded: false, existing: null });
    if (result.existing) received = { value: replayed(result.existing) };
    else if (result.message) received = { value: read(result.message) };
    return received !== undefined;
  };
  // The wait's first check is the first look (one write, which a message already there answers).
  await engine.waiters.wait(`message:${run.workflowId}`, take, timeout.wakeAt, run.signal);
  if (received) return received.value;
  return record(engine, run, functionId, "duro.recv", startedAt, { output: null });
}

// ——— events ———

export async function setEvent(engine: Engine, key: string, value: unknown, options?: ValueOptions | null): Promise<void> {
  const serialization = formatOf(checkOptions("setEvent", options, KEYS.value));
  checkKey("key", key);
  const ctx = currentContext(engine);
  if (!ctx) throw new NotInWorkflowError("setEvent", true);
  const { run, step } = ctx;
  const event = stored(value, serialization ?? run.serialization);
  if (step) {
    await engine.committer.submitOne({ kind: "setEvent", workflowId: run.workflowId, key, functionId: step.stepId, value: event });
    return;
  }
  const functionId = run.allocate();
  if (run.replay(functionId, "duro.setEvent")) return;
  run.checkStopped();
  const now = Date.now();
  const record = recordOf(engine, run, operation(run.workflowId, functionId, "duro.setEvent", { startedAt: now, completedAt: now }));
  const [, recorded] = await engine.committer.submit([{ kind: "setEvent", workflowId: run.workflowId, key, functionId, value: event }, record]);
  await recordedLate(engine, run, record, recorded);
}

export async function getEvent(engine: Engine, workflowId: string, key: string, timeout?: number | WaitOptions | null): Promise<unknown> {
  checkKey("workflowId", workflowId);
  checkKey("key", key);
  const timeoutSeconds = waitSeconds("getEvent", timeout);
  const run = currentRun(engine);
  let value: StoredValue | null = null;
  const look = async () => (value = await engine.store.getEvent(workflowId, key)) !== null;
  if (!run) {
    await engine.waiters.wait(wakeKeysOfKey("event", workflowId, key), look, timeoutSeconds === Infinity ? Infinity : Date.now() + timeoutSeconds * 1000);
    return read(value);
  }
  const functionId = run.allocate();
  const sleepId = run.allocate();
  const recorded = run.replay(functionId, "duro.getEvent");
  if (recorded) return replayed(recorded);
  run.checkStopped();
  const startedAt = Date.now();
  if (await interruptible(run, look)) {
    // Found at once: the timeout's wake-up time is recorded all the same. Submitted in the same
    // tick as the value's record below, it joins the same batch (one statement, one commit), which
    // reports any failure through that record.
    const { record: deadline } = timeoutDeadline(run, sleepId, timeoutSeconds, startedAt);
    if (deadline) void engine.committer.submitOne({ kind: "recordOperation", op: deadline, executorId: engine.executorId }).catch(() => undefined);
  } else {
    const deadline = await durableDeadline(engine, run, timeoutSeconds, sleepId);
    await interruptible(run, () => engine.waiters.wait(wakeKeysOfKey("event", workflowId, key), look, deadline, run.signal));
  }
  return record(engine, run, functionId, "duro.getEvent", startedAt, { output: read(value) });
}

export async function getAllEvents(engine: Engine, workflowId: string): Promise<Record<string, unknown>> {
  checkKey("workflowId", workflowId);
  const all = async () => Object.fromEntries([...(await engine.store.getAllEvents(workflowId))].map(([k, v]) => [k, read(v)]));
  const run = currentRun(engine);
  return run ? checkpoint(engine, run, "duro.getAllEvents", all) : all();
}

// ——— patching ———

/** True on the patched path: a new run, or one that recorded this patch; false for older runs. */
export async function patch(engine: Engine, name: string): Promise<boolean> {
  checkKey("patch name", name);
  const run = requireRun(engine, "patch");
  const marker = `duro.patch-${name}`;
  const next = run.peekNext();
  if (next && next.functionName !== marker) return false;
  const functionId = run.allocate();
  if (!next) {
    const now = Date.now();
    await record(engine, run, functionId, marker, now, { output: null });
  }
  return true;
}

/** Always true; skips this patch's marker where an older run recorded it. */
export async function deprecatePatch(engine: Engine, name: string): Promise<boolean> {
  checkKey("patch name", name);
  const run = requireRun(engine, "deprecatePatch");
  if (run.peekNext()?.functionName === `duro.patch-${name}`) run.allocate();
  return true;
}
