/**
 * Logging. The default logger writes warnings and errors to stderr (info and debug too when
 * DURO_LOG_LEVEL says so). `contextLogger` adds the current workflow and step IDs to each line.
 */
import type { Logger } from "../types.js";
import { als } from "./context.js";

const LEVELS = ["debug", "info", "warn", "error"] as const;
const toldUnknown = new Set<string>();

export function consoleLogger(level = process.env.DURO_LOG_LEVEL ?? "warn"): Logger {
  const given = LEVELS.indexOf(level.trim().toLowerCase() as (typeof LEVELS)[number]);
  // Unknown: the default, said once, rather than everything down to debug.
  if (given < 0 && !toldUnknown.has(level)) {
    toldUnknown.add(level);
    console.error(`[duro] WARN DURO_LOG_LEVEL=${JSON.stringify(level)} is not one of ${LEVELS.join(", ")}; logging warnings and errors.`);
  }
  const min = given < 0 ? LEVELS.indexOf("warn") : given;
  const line = (lvl: (typeof LEVELS)[number]) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS.indexOf(lvl) < min) return;
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : "";
    console.error(`[duro] ${lvl.toUpperCase()} ${message}${extra}`);
  };
  return { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") };
}

/**
 * The application's logger, kept from failing duro's work: a call that throws (or a promise it
 * returns that rejects) must not fail a write, a retry or a recovery, nor crash the process. Its
 * warnings and errors then go to stderr, as the default logger's do; its debug and info lines are
 * dropped, after saying once that the logger failed.
 */
export function guardedLogger(base: Logger): Logger {
  let told = false;
  const failed = (level: (typeof LEVELS)[number], message: string, error: unknown) => {
    const why = shownSafely(error);
    if (level === "warn" || level === "error") console.error(`[duro] ${level.toUpperCase()} ${message} (the logger given failed: ${why})`);
    else if (!told) console.error(`[duro] WARN The logger given failed (${why}); its debug and info lines are dropped while it does.`);
    told ||= level === "debug" || level === "info";
  };
  const guard = (level: (typeof LEVELS)[number]) => (message: string, fields?: Record<string, unknown>) => {
    try {
      const returned = base[level](message, fields) as unknown;
      // Any thenable: a promise of another realm (a vm context, a test runner's) is no `instanceof Promise`.
      if (typeof (returned as PromiseLike<unknown> | null)?.then === "function") {
        Promise.resolve(returned).catch((error: unknown) => failed(level, message, error));
      }
    } catch (error) {
      failed(level, message, error);
    }
  };
  return { debug: guard("debug"), info: guard("info"), warn: guard("warn"), error: guard("error") };
}

/** A logger whose lines carry `workflowId` and `stepId` when called inside a workflow. */
export function contextLogger(base: Logger): Logger {
  const withContext = (fields?: Record<string, unknown>) => {
    const ctx = als.getStore();
    if (!ctx) return fields;
    return { workflowId: ctx.run.workflowId, ...(ctx.step ? { stepId: ctx.step.stepId } : {}), ...fields };
  };
  return {
    debug: (m, f) => base.debug(m, withContext(f)),
    info: (m, f) => base.info(m, withContext(f)),
    warn: (m, f) => base.warn(m, withContext(f)),
    error: (m, f) => base.error(m, withContext(f)),
  };
}

/** `String(value)`, or a stand-in when even that throws (an object without a prototype, say). */
function shownSafely(value: unknown): string {
  try {
    return String(value);
  } catch {
    return "a value that cannot be shown";
  }
}

/**
 * A failure that recurs at every poll while the database is unreachable: warned of once, then
 * logged at debug level until it passes, which is said at info level.
 */
export class Recurring {
  private failing = false;

  constructor(private readonly logger: () => Logger) {}

  failed(message: string): void {
    if (this.failing) this.logger().debug(`${message}.`);
    else this.logger().warn(`${message}; until it works again, its failures are logged at debug level.`);
    this.failing = true;
  }

  passed(message: string): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger().info(message);
  }
}
