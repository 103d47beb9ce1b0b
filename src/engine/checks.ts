/** Checks of the arguments the public methods take: each failure is an InvalidArgumentError saying what was expected. */
import { InvalidArgumentError } from "../errors.js";
import type { SerializationFormat } from "../serialization.js";

export function checkSeconds(name: string, value: unknown, allowInfinity = false): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new InvalidArgumentError(`${name} must be a non-negative number of seconds, got ${String(value)}.`);
  }
  return value;
}

/** A plain object (`{ … }`): an options object in a place that also takes a string or a number. */
export const isOptions = (value: unknown): value is object =>
  typeof value === "object" && value !== null && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** An options object with no keys but `allowed`: a misspelt one would otherwise be silently ignored. */
export function checkKeys(method: string, options: object, allowed: readonly string[]): void {
  const unknown = Object.keys(options).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new InvalidArgumentError(`${method}() options take ${allowed.join(", ")}; got ${unknown.join(", ")}.`);
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
