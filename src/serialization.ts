/**
 * How values are stored. Every stored value records its format next to it.
 *
 * - `"default"`: JSON with tagged values, so `Date`, `Map`, `Set`, `BigInt`, `undefined`,
 *   non-finite numbers, byte arrays, `RegExp` and `Error` (class, message, stack, own fields,
 *   cause) come back exactly. A tag is an object `{ "$duro": type, … }`; a user object that
 *   itself has a `$duro` key is escaped, so no input is ambiguous.
 * - `"portable"`: plain JSON that any language can read and write. `Date` becomes an ISO
 *   string and `Set` an array; values JSON cannot hold (`BigInt`, `Map`, byte arrays, `RegExp`,
 *   functions) are refused.
 *   Errors are `{ name, message, code?, data? }`; inputs are `{ positionalArgs, namedArgs }`.
 */
import { InvalidArgumentError, SerializationError } from "./errors.js";
import * as duroErrors from "./errors.js";

export type SerializationFormat = "default" | "portable";

/** Stored values of this size or more are refused: they belong in blob storage, not a checkpoint. */
export const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;

const TAG = "$duro";
/** How much of an oversized error's message and stack is kept. */
const MAX_ERROR_TEXT = 64 * 1024;
const cut = (text: unknown) => (typeof text === "string" && text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}… (truncated)` : text);

type ErrorClass = new (...args: any[]) => Error;
/** JavaScript's error classes, and those of the application (registered, or stored here). */
const errorClasses = new Map<string, ErrorClass>();
for (const ctor of [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError]) {
  errorClasses.set(ctor.name, ctor);
}
/**
 * duro's own, kept apart: its errors are stored marked `own`, and an application class of the
 * same name (pg's `DatabaseError`, say) marked `foreign`, which comes back as itself, or as an
 * Error, never as duro's.
 */
const duroClasses = new Map<string, ErrorClass>();
for (const value of Object.values(duroErrors)) {
  if (typeof value === "function" && value.prototype instanceof Error) duroClasses.set(value.name, value as ErrorClass);
}
/** How a stored error's class is marked: duro's own, an application's named like one of duro's, or neither. */
function marks(ctor: unknown): { own?: true; foreign?: true } {
  if (typeof ctor !== "function" || !duroClasses.has(ctor.name)) return {};
  return duroClasses.get(ctor.name) === ctor ? { own: true } : { foreign: true };
}
/**
 * The class to revive a stored error as. Unmarked (a portable error's name, a record of an older
 * duro): the application's class of that name, else duro's, but never duro's DatabaseError, which
 * interrupts the workflow that meets it (duro records none of its own: it interrupts instead).
 */
function classOf(name: string, mark: { own?: unknown; foreign?: unknown } = {}): ErrorClass | undefined {
  if (mark.own === true) return duroClasses.get(name);
  if (mark.foreign === true) return errorClasses.get(name);
  return errorClasses.get(name) ?? (name === "DatabaseError" ? undefined : duroClasses.get(name));
}

/**
 * Makes errors of this class come back from storage as instances of it (same prototype,
 * message, stack and own fields). Error classes this process has stored an error of (thrown, or
 * as a value) are registered automatically; register the others (e.g. in a process that only reads results).
 */
export function registerErrorClass(ctor: ErrorClass): void {
  if (duroClasses.get(ctor.name) !== ctor) errorClasses.set(ctor.name, ctor);
}

const toldUnknown = new Set<string>();
/**
 * A stored error of a class this process does not know comes back as an Error (its name, message
 * and fields kept): said once per class, since workflow code that tests it with `instanceof`
 * would take another branch when it replays after a restart than when it ran.
 */
function unknownClass(name: string): void {
  if (toldUnknown.has(name)) return;
  toldUnknown.add(name);
  process.emitWarning(
    `duro: a stored error of class ${name} comes back as an Error (its name, message and fields kept): this process does not know that class. ` +
      `Call registerErrorClass(${name}) at start-up, so that instanceof checks hold, in workflow code that replays it too.`,
  );
}

export function assertFormat(format: unknown): asserts format is SerializationFormat {
  if (format !== "default" && format !== "portable") {
    throw new InvalidArgumentError(`serialization must be "default" or "portable", got ${JSON.stringify(format)}.`);
  }
}

export function serialize(value: unknown, format: SerializationFormat): string {
  let text: string;
  try {
    const walk = new Walk();
    text = JSON.stringify(format === "portable" ? toPortable(value, walk) : toTagged(value, walk));
  } catch (error) {
    if (error instanceof SerializationError) throw error;
    const deep = error instanceof RangeError && /call stack/.test(error.message);
    throw new SerializationError(`Value cannot be serialized: ${deep ? "it is nested too deeply" : (error as Error).message}`, { cause: error });
  }
  checkSize(text);
  return text;
}

export function deserialize(text: string | null, format: SerializationFormat): unknown {
  if (text === null) return format === "portable" ? null : undefined;
  try {
    const parsed = JSON.parse(text);
    return format === "portable" ? parsed : fromTagged(parsed);
  } catch (error) {
    throw new SerializationError(`A stored ${format} value could not be read back: ${(error as Error).message}`, { cause: error });
  }
}

/** `String(value)`, or what can be said of a value that throws when turned into a string (no prototype, a throwing toString). */
export function textOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return "[a value that cannot be shown]";
    }
  }
}

/**
 * A thrown value that can be looked at: one that throws when asked for its class (a revoked
 * Proxy, a Proxy whose traps throw) is replaced by an Error that says so, rather than throwing
 * again wherever duro handles it.
 */
export function inspectable(thrown: unknown): unknown {
  try {
    void (thrown instanceof Error);
    return thrown;
  } catch (error) {
    return new TypeError(`A value was thrown that cannot be inspected (${textOf(error)}).`);
  }
}

export function serializeError(error: unknown, format: SerializationFormat): string {
  if (format === "portable") {
    const e = error instanceof Error ? error : new Error(textOf(error));
    const { code, data } = e as { code?: unknown; data?: unknown };
    try {
      return serialize({ name: e.name, message: e.message, ...(code === undefined ? {} : { code }), ...(data === undefined ? {} : { data }) }, "portable");
    } catch {
      return serialize({ name: e.name, message: cut(e.message) }, "portable");
    }
  }
  try {
    // Not only Errors: a body may throw a string or an object, and its callers get that back.
    return serialize(error, "default");
  } catch {
    if (!(error instanceof Error)) return serialize(new Error(cut(textOf(error)) as string), "default");
    // An error with a field that cannot be stored keeps its class, the start of its message and
    // stack, and the fields that can be (errors among them, such as a failed step's attempts, in part too).
    const text = JSON.stringify(inPart(error));
    return text.length < MAX_PAYLOAD_BYTES ? text : JSON.stringify({ ...inPart(error, false), fields: {} });
  }
}

/** An error as stored when not all of it can be: the tagged form, with what of its fields can be kept. */
function inPart(error: Error, fields = true): Record<string, unknown> {
  const tagged: Record<string, unknown> = {
    [TAG]: "Error", class: error.constructor?.name ?? "Error", ...marks(error.constructor), name: error.name, message: cut(error.message), stack: cut(error.stack), fields: {},
  };
  if (!fields) return tagged;
  for (const [key, value] of Object.entries(error)) {
    const kept = keptInPart(value);
    if (kept !== undefined) (tagged.fields as Record<string, unknown>)[key] = kept;
  }
  for (const hidden of ["cause", "errors"] as const) {
    if (!(hidden in error)) continue;
    const kept = keptInPart((error as Error & { errors?: unknown })[hidden]);
    if (kept !== undefined) tagged[hidden] = kept;
  }
  return tagged;
}

/** A value as tagged for storage; an error or a list of them in part where it cannot be whole; otherwise nothing. */
function keptInPart(value: unknown): unknown {
  try {
    return JSON.parse(serialize(value, "default"));
  } catch {
    if (value instanceof Error) return inPart(value);
    if (Array.isArray(value)) return value.map((item) => keptInPart(item) ?? null);
    return undefined;
  }
}

/** What was thrown, as it was thrown: an Error, or (format "default") whatever else a body threw. */
export function deserializeThrown(text: string, format: SerializationFormat): unknown {
  return format === "default" ? deserialize(text, format) : deserializeError(text, format);
}

/** What was thrown, as an Error (for status and step listings): other values are wrapped. */
export function deserializeError(text: string, format: SerializationFormat): Error {
  const value = deserialize(text, format);
  if (value instanceof Error) return value;
  if (format === "portable" && value && typeof value === "object") {
    const { name, message, code, data } = value as Record<string, unknown>;
    const error = rebuildError(classOf(String(name)), String(name ?? "Error"), String(message ?? ""), undefined, {});
    if (code !== undefined) (error as any).code = code;
    if (data !== undefined) (error as any).data = data;
    return error;
  }
  return new Error(String(value));
}

export function serializeInputs(args: unknown[], format: SerializationFormat): string {
  return serialize(format === "portable" ? { positionalArgs: args, namedArgs: {} } : args, format);
}

export function deserializeInputs(text: string | null, format: SerializationFormat): unknown[] {
  const value = deserialize(text, format);
  if (format === "portable") return ((value as { positionalArgs?: unknown[] } | null)?.positionalArgs ?? []) as unknown[];
  return (value ?? []) as unknown[];
}

function checkSize(text: string): void {
  if (text.length * 3 >= MAX_PAYLOAD_BYTES && Buffer.byteLength(text) >= MAX_PAYLOAD_BYTES) tooLarge(`is ${Buffer.byteLength(text)} bytes serialized`);
}

function tooLarge(size: string): never {
  throw new SerializationError(`Value ${size}; the limit is ${MAX_PAYLOAD_BYTES}. Store large data elsewhere and pass a reference.`);
}

/**
 * One value's walk: the objects on the path (a circular reference is refused) and a lower bound
 * of the JSON's size so far. An object reached by many paths is written once per path, so a small
 * graph of shared references can stand for gigabytes: the bound stops the walk at the limit,
 * before anything that large is built.
 */
class Walk {
  private readonly path = new Set<object>();
  private size = 0;

  /** Counts `chars` more characters of output (each at least a byte). */
  grow(chars: number): void {
    this.size += chars;
    if (this.size >= MAX_PAYLOAD_BYTES) tooLarge(`serializes to ${this.size} bytes or more`);
  }

  /** Runs `visit` with `object` on the path. */
  enter<T>(object: object, visit: () => T): T {
    if (this.path.has(object)) refuse("a circular reference");
    this.path.add(object);
    this.grow(2);
    try {
      return visit();
    } finally {
      this.path.delete(object);
    }
  }

  /** Counts an object's key, with its quotes and colon (commas are not counted: a lower bound). */
  key(key: string): string {
    this.grow(key.length + 3);
    return key;
  }

  text<T>(value: T): T {
    if (typeof value === "string") this.grow(value.length + 2);
    return value;
  }
}

function refuse(what: string): never {
  throw new SerializationError(`Value cannot be serialized: ${what}. Pass plain data (objects, arrays, strings, numbers, …).`);
}

function toTagged(value: unknown, walk: Walk): unknown {
  switch (typeof value) {
    case "string":
      return walk.text(value);
    case "boolean":
      walk.grow(4);
      return value;
    case "number":
      walk.grow(1);
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return { [TAG]: "Number", v: Object.is(value, -0) ? "-0" : String(value) };
    case "undefined":
      return { [TAG]: "undefined" };
    case "bigint":
      return { [TAG]: "BigInt", v: walk.text(value.toString()) };
    case "function":
      return refuse(`a function (${value.name || "anonymous"})`);
    case "symbol":
      return refuse("a symbol");
  }
  if (value === null) return null;
  return walk.enter(value as object, () => {
    const object = value as object;
    if (Array.isArray(object)) return Array.from(object, (item) => toTagged(item, walk));
    if (object instanceof Date) return { [TAG]: "Date", v: Number.isNaN(object.getTime()) ? null : object.getTime() };
    if (object instanceof Map) return { [TAG]: "Map", v: Array.from(object, ([k, v]) => [toTagged(k, walk), toTagged(v, walk)]) };
    if (object instanceof Set) return { [TAG]: "Set", v: Array.from(object, (item) => toTagged(item, walk)) };
    if (object instanceof RegExp) return { [TAG]: "RegExp", source: walk.text(object.source), flags: object.flags };
    if (object instanceof Uint8Array) {
      walk.grow(Math.ceil(object.byteLength / 3) * 4);
      return { [TAG]: "Bytes", buffer: Buffer.isBuffer(object), v: Buffer.from(object.buffer, object.byteOffset, object.byteLength).toString("base64") };
    }
    if (object instanceof Error) {
      // Own enumerable fields (a `name` set in a constructor among them) come back as they were;
      // `cause` and an AggregateError's `errors` are own fields too, but not enumerable.
      const { message, stack, cause, ...rest } = object as Error & Record<string, unknown>;
      // Its class is known here now: stored errors of it come back as instances of it.
      const ctor = object.constructor as ErrorClass | undefined;
      if (typeof ctor === "function" && ctor.name && duroClasses.get(ctor.name) !== ctor) errorClasses.set(ctor.name, ctor);
      const fields: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(rest)) fields[walk.key(key)] = toTagged(field, walk);
      return {
        [TAG]: "Error",
        class: ctor?.name ?? "Error",
        ...marks(ctor),
        name: object.name,
        message: walk.text(message),
        stack: walk.text(stack),
        fields,
        ...("cause" in object ? { cause: toTagged(cause, walk) } : {}),
        ...(object instanceof AggregateError ? { errors: toTagged(object.errors, walk) } : {}),
      };
    }
    refuseOpaque(object);
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(object)) put(out, walk.key(key), toTagged(field, walk));
    return TAG in out ? { [TAG]: "Object", v: out } : out;
  });
}

/** Objects whose state is not in their own fields: written as JSON, they would come back as something else. */
function refuseOpaque(object: object, hint = ""): void {
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer || object instanceof RegExp || object instanceof WeakMap || object instanceof WeakSet || object instanceof Promise) {
    refuse(`a ${object.constructor.name}${hint}`);
  }
}

function fromTagged(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(fromTagged);
  const object = value as Record<string, any>;
  switch (object[TAG]) {
    case undefined:
      break;
    case "undefined":
      return undefined;
    case "Number":
      return object.v === "-0" ? -0 : Number(object.v);
    case "BigInt":
      return BigInt(object.v);
    case "Date":
      return new Date(object.v ?? NaN);
    case "Map":
      return new Map((object.v as [unknown, unknown][]).map(([k, v]) => [fromTagged(k), fromTagged(v)]));
    case "Set":
      return new Set((object.v as unknown[]).map(fromTagged));
    case "RegExp":
      return new RegExp(object.source, object.flags);
    case "Bytes": {
      const bytes = Buffer.from(object.v, "base64");
      return object.buffer ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    case "Error": {
      const fields: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(object.fields ?? {})) fields[key] = fromTagged(field);
      const hidden: Record<string, unknown> = {};
      if ("cause" in object) hidden.cause = fromTagged(object.cause);
      if ("errors" in object) hidden.errors = fromTagged(object.errors);
      const ctor = classOf(object.class, object);
      if (object.class && !ctor) unknownClass(object.class);
      return rebuildError(ctor, object.name, object.message, object.stack, fields, hidden);
    }
    case "Object":
      return Object.fromEntries(Object.entries(object.v).map(([k, v]) => [k, fromTagged(v)]));
    default:
      throw new Error(`unknown tag ${JSON.stringify(object[TAG])}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(object)) put(out, key, fromTagged(field));
  return out;
}

/** Sets an own property: `out[key] = value` would set the prototype for an own "__proto__" key (JSON.parse makes those). */
function put(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
  else out[key] = value;
}

/**
 * A real Error (what `util.types.isNativeError` and `Object.prototype.toString` recognize) of the
 * recorded class, without running that class's constructor: its arguments are unknown, and
 * constructing may have effects. `hidden`: own fields that are not enumerable (cause, errors).
 */
function rebuildError(
  ctor: ErrorClass | undefined, name: string, message: string, stack: string | undefined, fields: Record<string, unknown>, hidden: Record<string, unknown> = {},
): Error {
  const error = new Error(message);
  if (ctor) {
    Object.setPrototypeOf(error, ctor.prototype);
    try {
      void error.name;
    } catch {
      // A class whose getters take only its own instances (DOMException, as fetch's aborts throw): an Error.
      Object.setPrototypeOf(error, Error.prototype);
    }
  }
  if (stack !== undefined) Object.defineProperty(error, "stack", { value: stack, writable: true, configurable: true, enumerable: false });
  if (error.name !== name) Object.defineProperty(error, "name", { value: name, writable: true, configurable: true, enumerable: false });
  for (const [key, field] of Object.entries(hidden)) Object.defineProperty(error, key, { value: field, writable: true, configurable: true, enumerable: false });
  for (const [key, field] of Object.entries(fields)) Object.defineProperty(error, key, { value: field, writable: true, configurable: true, enumerable: true });
  return error;
}

/** Portable JSON: what JSON.stringify would write, but refusing what it would silently mangle. */
function toPortable(value: unknown, walk: Walk): unknown {
  switch (typeof value) {
    case "string":
      return walk.text(value);
    case "boolean":
      walk.grow(4);
      return value;
    case "number":
      walk.grow(1);
      return Number.isFinite(value) ? value : refuse(`${value} (portable JSON has no non-finite numbers)`);
    case "undefined":
      walk.grow(4);
      return null;
    case "bigint":
      return refuse("a BigInt (use default serialization, or pass it as a string)");
    case "function":
    case "symbol":
      return refuse(`a ${typeof value}`);
  }
  if (value === null) return null;
  return walk.enter(value as object, () => {
    const object = value as object;
    if (Array.isArray(object) || object instanceof Set) return Array.from(object as Iterable<unknown>, (item) => toPortable(item, walk));
    if (object instanceof Date) return walk.text(object.toISOString());
    if (object instanceof Map) refuse("a Map (portable JSON has only string-keyed objects; use a plain object)");
    if (object instanceof Error) return { name: walk.text(object.name), message: walk.text(object.message) };
    refuseOpaque(object, " (portable JSON holds plain data: pass bytes as a base64 string, a pattern as its source)");
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(object)) if (field !== undefined) put(out, walk.key(key), toPortable(field, walk));
    return out;
  });
}
