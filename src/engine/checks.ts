/** Checks of the arguments the public methods take: each failure is an InvalidArgumentError saying what was expected. */
import { InvalidArgumentError } from "../errors.js";
import { textOf, type SerializationFormat } from "../serialization.js";
import type { ClientConfig } from "../client/client.js";
import type {
  DuroConfig, ForkOptions, ListWorkflowsFilter, QueueOptions, ScheduleOptions, StartOptions, StepOptions, ValueOptions, WorkflowOptions,
} from "../types.js";

/** A value as an error message shows it: a string quoted, so that "3" is not taken for 3. */
export const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : textOf(value));

export function checkSeconds(name: string, value: unknown, allowInfinity = false): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new InvalidArgumentError(`${name} must be a non-negative number of seconds, got ${shown(value)}.`);
  }
  return value;
}

export const optionalBoolean = (name: string, value: unknown) => {
  if (value !== undefined && typeof value !== "boolean") throw new InvalidArgumentError(`${name} must be true or false, got ${shown(value)}.`);
};

/** An optional positive number (an integer if `integer`), at most `max`. */
export function checkPositive(name: string, value: unknown, { integer = false, max = Infinity } = {}): void {
  if (value !== undefined && !(typeof value === "number" && value > 0 && value <= max && Number.isFinite(value) && (!integer || Number.isInteger(value)))) {
    throw new InvalidArgumentError(`${name} must be a positive ${integer ? "integer" : "number"}${max < Infinity ? ` no larger than ${max}` : ""}, got ${shown(value)}.`);
  }
}

/** The numeric settings of `new Duro` and `new DuroClient`, checked before anything connects. */
export function checkConfig(config: DuroConfig): void {
  checkPositive("poolSize", config.poolSize, { integer: true });
  // Heartbeats and PostgreSQL's idle-in-transaction timeout take the lease in milliseconds, as a 32-bit integer.
  checkPositive("executorLeaseSeconds", config.executorLeaseSeconds, { max: 2_147_483 });
  checkPositive("safetyPollSeconds", config.safetyPollSeconds);
  if (config.connectTimeoutSeconds !== undefined) checkSeconds("connectTimeoutSeconds", config.connectTimeoutSeconds);
}

/** A plain object (`{ … }`): an options object in a place that also takes a string or a number. */
export const isOptions = (value: unknown): value is object =>
  typeof value === "object" && value !== null && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** An options object with no keys but `allowed`: a misspelt one would otherwise be silently ignored. */
export function checkKeys(method: string, options: object, allowed: readonly string[]): void {
  const unknown = Object.keys(options).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new InvalidArgumentError(`${method}() options take ${allowed.join(", ")}; got ${unknown.join(", ")}.`);
}

/** The keys an options type takes, listed as an object so that the compiler keeps them in step with the type. */
export const keysOf = <T>(keys: { [K in keyof Required<T>]: true }): readonly string[] => Object.keys(keys);

/** The keys of each options type the public methods take. */
export const KEYS = {
  config: keysOf<DuroConfig>({
    databaseUrl: true, executorId: true, appVersion: true, maxRecoveryAttempts: true, logger: true, poolSize: true, connectTimeoutSeconds: true,
    executorLeaseSeconds: true, safetyPollSeconds: true,
  }),
  client: keysOf<ClientConfig>({ databaseUrl: true, logger: true, poolSize: true, connectTimeoutSeconds: true, createSchema: true }),
  workflow: keysOf<WorkflowOptions>({ serialization: true }),
  start: keysOf<StartOptions>({
    workflowId: true, queueName: true, timeoutSeconds: true, deadlineEpochMs: true, priority: true, deduplicationId: true, partitionKey: true,
    delaySeconds: true, authenticatedUser: true, appVersion: true, serialization: true,
  }),
  step: keysOf<StepOptions>({ name: true, retriesAllowed: true, intervalSeconds: true, maxAttempts: true, backoffRate: true }),
  queue: keysOf<QueueOptions>({
    concurrency: true, workerConcurrency: true, rateLimit: true, priorityEnabled: true, partitionQueue: true, pollingIntervalSeconds: true,
  }),
  schedule: keysOf<ScheduleOptions>({ catchUp: true, queueName: true, timezone: true }),
  fork: keysOf<ForkOptions>({ newWorkflowId: true, workflowId: true, appVersion: true, queueName: true, partitionKey: true, timeoutSeconds: true }),
  filter: keysOf<ListWorkflowsFilter>({
    workflowIds: true, status: true, startTime: true, endTime: true, name: true, appVersion: true, forkedFrom: true, parentWorkflowId: true,
    user: true, queueName: true, executorId: true, workflowIdPrefix: true, limit: true, offset: true, sortDesc: true, loadInput: true,
    loadOutput: true, queuesOnly: true, wasForkedFrom: true, hasParent: true,
  }),
  value: keysOf<ValueOptions>({ serialization: true, serializationType: true }),
};

/**
 * An options object as given: Python's `None` is `null`, so an option set to null is an option
 * not given (except those in `keep`, where null means something of its own).
 */
export type Given<T, Keep extends keyof T = never> = { [K in keyof T]?: K extends Keep ? T[K] : Exclude<T[K], null> };

/** An optional options object (undefined or null: none) with no keys but `allowed`, returned without its null options. */
export function checkOptions<T extends object, Keep extends keyof T & string = never>(
  method: string, options: T | null | undefined, allowed: readonly string[], keep: readonly Keep[] = [],
): Given<T, Keep> {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new InvalidArgumentError(`${method}() options must be an object with any of ${allowed.join(", ")}; got ${shown(options)}.`);
  }
  checkKeys(method, options, allowed);
  // An option given as null or undefined is one not given (unless kept: null may mean something there).
  return Object.fromEntries(
    Object.entries(options).filter(([k, v]) => v !== undefined && (v !== null || (keep as readonly string[]).includes(k))),
  ) as Given<T, Keep>;
}

export const MAX_KEY_BYTES = 1024;
/** A lone surrogate: both databases would store U+FFFD instead, so the value could not be found again. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A non-empty string the database keeps exactly (IDs, names, keys, topics). */
export function checkKey(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw new InvalidArgumentError(`${name} must be a non-empty string, got ${JSON.stringify(value)}.`);
  return checkText(name, value);
}

/**
 * A string the database keeps exactly and can index: no NUL character (PostgreSQL refuses it), no
 * lone surrogate, at most MAX_KEY_BYTES (two fit in a PostgreSQL index entry, 2,704 bytes at most).
 */
export function checkText(name: string, value: string): string {
  if (value.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(value) > MAX_KEY_BYTES) {
    throw new InvalidArgumentError(`${name} is ${Buffer.byteLength(value)} bytes as UTF-8 (${JSON.stringify(value.slice(0, 40))}…); the limit is ${MAX_KEY_BYTES}.`);
  }
  if (value.includes("\u0000") || LONE_SURROGATE.test(value)) {
    throw new InvalidArgumentError(`${name} ${JSON.stringify(value)} holds a NUL character or a lone surrogate, which the database cannot store as they are.`);
  }
  return value;
}

/** A `serialization` option: undefined, "default" or "portable". */
export function checkFormat(value: unknown, name = "serialization"): SerializationFormat | undefined {
  if (value !== undefined && value !== "default" && value !== "portable") {
    throw new InvalidArgumentError(`${name} must be "default" or "portable", got ${JSON.stringify(value)}.`);
  }
  return value;
}
